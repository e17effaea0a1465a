"""``storage.write_run`` cut off in the middle of its COPY: all or nothing, then all exactly once.

No Airflow here: the writer itself on a private PostgreSQL (tests/support/pg_cluster.py) that is
stopped (fast shutdown) or killed (SIGKILL, crash recovery on restart) after the first
chunk of the session history has been streamed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest

from tools.synthetic import generate_document
from veeam_efficiency import payload, pipeline, storage
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.window import analysis_window

pytestmark = [pytest.mark.postgres]

RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)
HOST = "vbr01.example.local"


def frames() -> tuple[Any, Any]:
    """One day's history and scorecards, as the load task builds them."""
    document = generate_document(
        vbr_host=HOST, jobs=6, sessions=3000, seed=31,
        window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=RUN_DATE,
    )  # fmt: skip
    settings = AnalysisSettings()
    validated = pipeline.validate(json.dumps(document), analysis_window(RUN_DATE, 30), settings)
    analysis = pipeline.analyze(validated, settings)
    optimized = pipeline.scored(analysis, pipeline.optimize(analysis, settings))
    return pipeline.history_table(validated, optimized), payload.from_records(
        optimized["scorecards"], storage.SCORECARD_COLUMNS
    )


def table_counts(dsn: str) -> tuple[int, int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM feature3.storage_efficiency_history), "
            "(SELECT count(DISTINCT session_id) FROM feature3.storage_efficiency_history), "
            "(SELECT count(*) FROM feature3.metrics_storage_efficiency)"
        ).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize("fault", ["stop", "kill"])
def test_write_run_cut_mid_copy_writes_nothing_then_everything_once(private_pg, monkeypatch, fault):
    dsn = private_pg.dsn()
    history, scorecards = frames()
    with psycopg.connect(dsn) as conn:
        storage.ensure_schema(conn)
    original = storage.binary_copy
    streamed: list[int] = []

    def cut_after_first_rows(frame: Any, pg_types: dict[str, str], rows: int = 50_000) -> tuple[list[str], Any]:
        order, chunks = original(frame, pg_types, rows=250)

        def cut() -> Iterator[bytes]:
            for number, chunk in enumerate(chunks):  # chunk 0 is the header, 1 the first 250 rows
                streamed.append(number)
                if number == 2:  # the server has the first 250 rows of this COPY
                    getattr(private_pg, fault)()
                yield chunk

        return order, cut()

    monkeypatch.setattr(storage, "binary_copy", cut_after_first_rows)
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.OperationalError):
        storage.write_run(conn, vbr_host=HOST, analysis_date=date(2026, 11, 26), history=history, scorecards=scorecards)
    assert streamed[:3] == [0, 1, 2]  # cut after one chunk of rows (psycopg notices the lost server a few writes later)
    assert not private_pg.is_running()

    private_pg.start()
    assert table_counts(dsn) == (0, 0, 0)  # nothing half-written

    monkeypatch.setattr(storage, "binary_copy", original)
    with psycopg.connect(dsn) as conn:
        written = storage.write_run(
            conn, vbr_host=HOST, analysis_date=date(2026, 11, 26), history=history, scorecards=scorecards
        )
    assert len(history) > 500 and len(scorecards) > 1
    assert written["history_rows"] == len(history) and written["scorecard_rows"] == len(scorecards)
    assert table_counts(dsn) == (len(history), len(history), len(scorecards))
