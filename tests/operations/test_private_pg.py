"""The private PostgreSQL the fault tests rely on really stops, dies and comes back with its data."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.postgres


def test_private_cluster_survives_kill_and_keeps_committed_rows(private_pg) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(private_pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    open_tx = psycopg.connect(private_pg.dsn())
    open_tx.execute("INSERT INTO t VALUES (2)")  # never committed
    private_pg.kill()
    assert not private_pg.is_running()
    private_pg.start()
    with psycopg.connect(private_pg.dsn()) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    private_pg.stop()
    assert not private_pg.is_running()
