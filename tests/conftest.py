"""Test-wide set-up: a throwaway AIRFLOW_HOME and real PostgreSQL databases made and dropped here.

Airflow reads its configuration when first imported, so the environment is set at
the top of this file, before any test module imports Airflow. The metadata database
is a real PostgreSQL database (as in production), created and migrated once per
test session; every results database is created by the test that needs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_DSN = os.environ.get("VEEAM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN_ID = uuid.uuid4().hex[:8]

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="veeam-airflow-home-"))
METADATA_DB = f"veeam_test_airflow_{RUN_ID}"
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": PG_ADMIN_DSN.rsplit("/", 1)[0].replace(
        "postgresql://", "postgresql+psycopg://"
    )
    + f"/{METADATA_DB}",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(_AIRFLOW_HOME / "logs"),
    # A test that changes the DAG (its deadline, say) and syncs it soon after another test did
    # must read its own version: the dag-processor skips a DAG serialized < 30 s ago by default.
    "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
    # The tests replay collector files: chosen here as a deployment would (the product has no
    # default collector). Tests of the ssh and local collectors choose theirs in the run's conf.
    "VEEAM_COLLECTOR": "replay",
}
os.environ.update(AIRFLOW_ENV)
os.environ.pop("VEEAM_RUN_DEADLINE_MINUTES", None)  # the DAG as shipped: no deadline unless a test sets one


def admin_connect(autocommit: bool = True):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_DSN, autocommit=autocommit)


def create_database(name: str) -> str:
    """Create database ``name`` and return its DSN."""
    from psycopg import sql

    with admin_connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"


def drop_database(name: str) -> None:
    from psycopg import sql

    with admin_connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# A test needs the PostgreSQL server when it uses one of these fixtures or carries one of
# these marks; tests/unit needs neither, so it runs with no database reachable.
POSTGRES_FIXTURES = frozenset({"results_db", "airflow_db"})
POSTGRES_MARKS = ("postgres", "airflow")


def needs_postgres(item: pytest.Item) -> bool:
    return bool(POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ()))) or any(
        item.get_closest_marker(mark) for mark in POSTGRES_MARKS
    )


def postgres_unreachable() -> str | None:
    """Why the shared PostgreSQL server does not answer, or None when it does."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return str(exc).strip() or type(exc).__name__
    return None


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: only the tests that will run count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail the whole run, loudly and before any test, when a selected test needs PostgreSQL and it is down."""
    needing = [item for item in items if needs_postgres(item)]
    if needing and (problem := postgres_unreachable()):
        raise pytest.UsageError(
            f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({problem}), and {len(needing)} selected test(s) "
            f"need it (e.g. {needing[0].nodeid}). Start it: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
            "(only tests/unit runs without it)"
        )


def pytest_configure(config: pytest.Config) -> None:
    from tests.support.pg_cluster import stop_orphaned_clusters

    for root in stop_orphaned_clusters():  # left running by a killed test run
        print(f"stopped the private PostgreSQL cluster a killed test run left in {root}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this session's AIRFLOW_HOME (logs, config): nothing is left in the temp directory."""
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture
def results_db(request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty results database for one test; its DSN. Dropped afterwards."""
    name = f"veeam_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    dsn = create_database(name)
    yield dsn
    drop_database(name)


@pytest.fixture
def other_results_db(results_db: str) -> Iterator[str]:
    """A second one, for a test that compares two histories (an incremental and a fresh full run)."""
    name = f"veeam_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    dsn = create_database(name)
    yield dsn
    drop_database(name)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[dict[str, str]]:
    """A migrated Airflow metadata database (PostgreSQL) for the whole session; the env to use it."""
    from veeam_efficiency.settings import create_pool_argv

    create_database(METADATA_DB)
    # the collector pool too, as whoever starts Airflow creates it (the DAG's first task checks it)
    for argv in (["db", "migrate"], create_pool_argv()):
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *argv],
            env={**os.environ, **AIRFLOW_ENV},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow {argv[:2]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    yield AIRFLOW_ENV
    drop_database(METADATA_DB)


@pytest.fixture
def private_pg() -> Iterator[object]:
    """A PostgreSQL server of the test's own (tests/support/pg_cluster.py) that it may stop or kill."""
    from tests.support.pg_cluster import private_cluster

    with private_cluster() as cluster:
        yield cluster
