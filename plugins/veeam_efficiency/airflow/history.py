"""The session history as the steps after ``collect`` read it: through the results connection, opened on first use.

A run's validated payload carries only the sessions the server reported; ``validate`` and
``analyze`` read the window's stored rest through this reader (``load``, on its own
connection, only when the analysis was skipped; :func:`veeam_efficiency.pipeline.stored_rest`).
A read of the indexed history is cheaper than carrying the month through XCom from task to task.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd

from veeam_efficiency.pipeline import ReadStored


@contextmanager
def stored_session_reader(postgres_conn_id: str) -> Iterator[ReadStored]:
    """A :data:`~veeam_efficiency.pipeline.ReadStored` on the results database; no connection unless it reads."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from veeam_efficiency.history_reads import stored_sessions

    opened: list[Any] = []

    def read(vbr_host: str, start: datetime, end: datetime, *, results: bool = False) -> pd.DataFrame:
        if not opened:
            opened.append(PostgresHook(postgres_conn_id=postgres_conn_id).get_conn())
        return stored_sessions(opened[0], vbr_host, start, end, results=results)

    try:
        yield read
    finally:
        for conn in opened:
            conn.close()
