"""Schema setup is safe when several runs do it at once on an empty database (a first backfill)."""

from __future__ import annotations

import threading

import psycopg
import pytest

from veeam_efficiency.storage import ensure_schema
from veeam_efficiency.tables import WRITTEN

pytestmark = [pytest.mark.postgres]

RUNS = 8


@pytest.mark.parametrize("attempt", range(3))
def test_ensure_schema_from_several_connections_at_once(results_db: str, attempt: int) -> None:
    connections = [psycopg.connect(results_db) for _ in range(RUNS)]
    start = threading.Barrier(RUNS)
    errors: list[BaseException] = []

    def set_up(conn: psycopg.Connection) -> None:
        try:
            start.wait(timeout=30)
            ensure_schema(conn)
        except BaseException as exc:  # collected: every failure is reported, not only the first
            errors.append(exc)

    threads = [threading.Thread(target=set_up, args=(conn,)) for conn in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for conn in connections:
        conn.close()

    assert not errors, errors
    with psycopg.connect(results_db) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'feature3' ORDER BY tablename"
        ).fetchall()
    assert [name for (name,) in tables] == sorted(str(table.name) for table in WRITTEN)
