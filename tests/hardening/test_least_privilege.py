"""The DAG loads as the least-privilege role of include/sql/grants.sql, and that role can do no more.

The database is set up as the README tells a DBA (``psql -f include/sql/grants.sql``); the
DAG's connection logs in as ``veeam_efficiency_loader`` with its password.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.hardening.conftest import LOADER, OWNER, apply_grants
from tools.synthetic import generate_document
from veeam_efficiency import storage

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
from dag_runner import fetch, run_dag, write_document

pytestmark = [pytest.mark.postgres]

RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)


def _document(host: str, seed: int) -> dict:
    return generate_document(
        vbr_host=host, jobs=4, sessions=500, seed=seed,
        window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=RUN_DATE,
    )  # fmt: skip


def test_grants_give_a_plain_role_and_are_idempotent(loader_db):
    again = apply_grants(loader_db.admin_dsn)  # the DBA re-applies after an upgrade
    assert again.returncode == 0, again.stderr

    attributes = fetch(
        loader_db.admin_dsn,
        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
        "FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
        [LOADER, OWNER],
    )
    assert attributes == [
        (LOADER, False, False, False, False, False, True),
        (OWNER, False, False, False, False, False, False),
    ]
    owners = fetch(
        loader_db.admin_dsn,
        "SELECT DISTINCT relowner::regrole::text FROM pg_class WHERE relnamespace = 'feature3'::regnamespace "
        "UNION SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'feature3'",
    )
    assert owners == [(OWNER,)]
    assert fetch(loader_db.admin_dsn, "SELECT pg_has_role(%s, %s, 'MEMBER')", LOADER, OWNER) == [(False,)]
    table_rights = fetch(
        loader_db.admin_dsn,
        "SELECT DISTINCT privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = %s AND table_schema = 'feature3' ORDER BY 1",
        LOADER,
    )
    assert table_rights == [("DELETE",), ("INSERT",), ("SELECT",), ("UPDATE",)]


@pytest.mark.airflow
@pytest.mark.usefixtures("airflow_db")
def test_dag_loads_as_the_loader_role(monkeypatch, loader_db, tmp_path):
    replay = tmp_path / "replay"
    write_document(replay, "vbr01", _document("vbr01.example.local", 21))

    # min_sessions 60: one job (77 sessions) is scored, three (40) are not: the loader writes all three tables
    states = run_dag(
        monkeypatch, results_dsn=loader_db.loader_dsn, replay_dir=replay, logical_date=RUN_DATE,
        conf={"min_sessions": 60},
    )  # fmt: skip

    assert set(states.values()) == {"success"}, states
    assert fetch(
        loader_db.admin_dsn,
        "SELECT count(*) > 0, count(DISTINCT vbr_host) FROM feature3.storage_efficiency_history",
    ) == [(True, 1)]
    assert fetch(loader_db.admin_dsn, "SELECT count(*) > 0 FROM feature3.metrics_storage_efficiency") == [(True,)]
    assert fetch(loader_db.admin_dsn, "SELECT count(*) > 0 FROM feature3.unscored_jobs") == [(True,)]
    # the loader cannot log in without its password (pg_hba: scram), so the DAG used it
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(loader_db.loader_dsn.replace("Kx9", "Kx8"), connect_timeout=5).close()
    # it left nothing it owns behind (its TEMP staging tables go at commit)
    assert fetch(loader_db.admin_dsn, "SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", LOADER) == [(0,)]


DENIED = (
    "DROP TABLE feature3.storage_efficiency_history",
    "DROP SCHEMA feature3 CASCADE",
    "TRUNCATE feature3.metrics_storage_efficiency",
    "ALTER TABLE feature3.storage_efficiency_history ADD COLUMN x int",
    "CREATE INDEX ON feature3.storage_efficiency_history (job_name)",
    "CREATE TABLE feature3.extra (x int)",
    "CREATE TABLE public.extra (x int)",
    "CREATE SCHEMA extra",
    "SELECT * FROM other.secret",
    "INSERT INTO other.secret VALUES (1)",
    "SET ROLE veeam_efficiency_owner",
    "CREATE ROLE extra",
    "CREATE DATABASE extra",
    # the history's partitions only through the schema's functions
    "CREATE TABLE feature3.storage_efficiency_history_y2032m01 PARTITION OF feature3.storage_efficiency_history "
    "FOR VALUES FROM ('2032-01-01 00:00+00') TO ('2032-02-01 00:00+00')",
    "DROP TABLE feature3.storage_efficiency_history_y2031m01",
    "ALTER TABLE feature3.storage_efficiency_history DETACH PARTITION feature3.storage_efficiency_history_y2031m01",
    "CREATE OR REPLACE FUNCTION feature3.drop_history_partitions(horizon timestamptz) RETURNS integer "
    "LANGUAGE sql AS 'SELECT 0'",
)


def test_the_loader_may_do_nothing_else(loader_db):
    with psycopg.connect(loader_db.admin_dsn, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA other")
        admin.execute("CREATE TABLE other.secret (x int)")
    allowed = []
    with loader_db.loader_connect(autocommit=True) as conn:
        # control: the same connection may do its job, so a refusal below is about the statement
        conn.execute("CREATE TEMP TABLE staged (LIKE feature3.storage_efficiency_history)")
        conn.execute("SELECT count(*) FROM feature3.metrics_storage_efficiency")
        conn.execute("DELETE FROM feature3.metrics_storage_efficiency WHERE false")
        conn.execute("SELECT feature3.ensure_history_partitions('2031-01-05 00:00+00', '2031-01-06 00:00+00')")
        assert conn.execute("SELECT to_regclass('feature3.storage_efficiency_history_y2031m01')").fetchone()[0]
        for statement in DENIED:
            try:
                conn.execute(statement)
            except psycopg.errors.InsufficientPrivilege:
                continue
            allowed.append(statement)
    assert allowed == []


def test_ensure_schema_as_the_loader_checks_instead_of_creating(loader_db):
    with loader_db.loader_connect() as conn:
        storage.ensure_schema(conn)  # the DBA's schema is complete: nothing to do, no error
    with psycopg.connect(loader_db.admin_dsn, autocommit=True) as admin:
        admin.execute("DROP TABLE feature3.storage_efficiency_history")
        admin.execute("REVOKE DELETE ON feature3.metrics_storage_efficiency FROM veeam_efficiency_loader")
        admin.execute("REVOKE DELETE, INSERT ON feature3.unscored_jobs FROM veeam_efficiency_loader")
        admin.execute("REVOKE UPDATE ON feature3.metrics_storage_efficiency FROM veeam_efficiency_loader")
        admin.execute(
            "REVOKE EXECUTE ON FUNCTION feature3.drop_history_partitions(timestamptz) FROM veeam_efficiency_loader"
        )
    with loader_db.loader_connect() as conn, pytest.raises(storage.SchemaNotReady) as refused:
        storage.ensure_schema(conn)
    message = str(refused.value)
    assert "table feature3.storage_efficiency_history is missing" in message
    assert "no DELETE on feature3.metrics_storage_efficiency" in message
    assert "no DELETE on feature3.unscored_jobs" in message  # a re-run replaces the day's unscored jobs
    assert "no SELECT, INSERT and UPDATE on feature3.unscored_jobs;" in message
    assert (
        "no SELECT, INSERT and UPDATE on feature3.metrics_storage_efficiency;" in message
    )  # SELECT alone is not enough
    assert "no EXECUTE on feature3.drop_history_partitions(timestamptz)" in message
    assert "ensure_history_partitions" not in message
    assert "grants.sql" in message
    # the DBA's fix is re-applying the grants (which applies schema.sql too)
    assert apply_grants(loader_db.admin_dsn).returncode == 0
    with loader_db.loader_connect() as conn:
        storage.ensure_schema(conn)
    with psycopg.connect(loader_db.admin_dsn, autocommit=True) as admin:
        admin.execute("ALTER TABLE feature3.metrics_storage_efficiency DROP COLUMN trend_change")
    with (
        loader_db.loader_connect() as conn,
        pytest.raises(storage.SchemaNotReady, match=r"lacks column\(s\) trend_change"),
    ):
        storage.ensure_schema(conn)
