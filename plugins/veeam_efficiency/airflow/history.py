"""The session history as the steps after ``collect`` ask it: through the results connection, opened on first use.

A run's validated payload carries only the sessions the server reported. ``validate``
counts the window's stored rest where it is (its job tally), ``analyze`` reads it (``load``,
on its own connection, only when the analysis was skipped;
:func:`veeam_efficiency.pipeline.stored_rest`). A read of the indexed history is cheaper than
carrying the month through XCom from task to task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

import pandas as pd

from veeam_efficiency.pipeline import ReadStored, TallyStored
from veeam_efficiency.settings import AnalysisSettings


class StoredHistory(NamedTuple):
    """What the steps after ``collect`` ask of the session history: its rows, or (``validate``) their job tally."""

    read: ReadStored
    tally: TallyStored


@contextmanager
def stored_history(postgres_conn_id: str) -> Iterator[StoredHistory]:
    """The session history on the results database; no connection unless it is asked."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from veeam_efficiency.history_reads import stored_sessions, stored_tally

    opened: list[Any] = []

    def connection() -> Any:
        if not opened:
            opened.append(PostgresHook(postgres_conn_id=postgres_conn_id).get_conn())
        return opened[0]

    def read(vbr_host: str, start: datetime, end: datetime, *, results: bool = False) -> pd.DataFrame:
        return stored_sessions(connection(), vbr_host, start, end, results=results)

    def tally(
        vbr_host: str, start: datetime, end: datetime, reported: Sequence[str], settings: AnalysisSettings
    ) -> tuple[pd.DataFrame, int]:
        return stored_tally(connection(), vbr_host, start, end, reported, settings)

    try:
        yield StoredHistory(read, tally)
    finally:
        for conn in opened:
            conn.close()
