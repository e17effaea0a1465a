"""Fixtures for the fault and security tests: a results database set up the way a DBA would.

``loader_db`` is a private PostgreSQL cluster (tests/support/pg_cluster.py, so roles never leak into
the shared server) on which include/sql/grants.sql was applied with ``psql``, exactly as the
README tells a DBA, and whose pg_hba.conf makes the loader role authenticate with its
password (scram-sha-256): a DAG run that writes rows proves the password in the connection is
the one used.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from tests.collector.conftest import (  # noqa: F401  (fixtures of the collector tests, reused here)
    collector_script,
    fake_pwsh,
    ssh_hook,
    sshd,
)
from tests.support.pg_cluster import PG_BIN

REPO = Path(__file__).resolve().parents[2]
GRANTS_SQL = REPO / "include" / "sql" / "grants.sql"
LOADER = "veeam_efficiency_loader"
OWNER = "veeam_efficiency_owner"
DATABASE = "veeam_efficiency"
# distinctive, with characters that need URL quoting, so a leak of it in any form is found
LOADER_PASSWORD = "Kx9-zq7!LeakCanary#4711"


@dataclass
class LoaderDatabase:
    cluster: Any  # tests.support.pg_cluster.PrivateCluster
    admin_dsn: str  # superuser, for setting up and checking
    loader_dsn: str  # the DAG's connection: the loader role with its password
    password: str

    def loader_connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.loader_dsn, **kwargs)


def apply_grants(dsn: str, *extra: str, password: str | None = LOADER_PASSWORD) -> subprocess.CompletedProcess[str]:
    """``psql -f include/sql/grants.sql`` as the DBA runs it; the password only in the environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    if password is not None:
        env["VEEAM_LOADER_PASSWORD"] = password
    return subprocess.run(
        [str(PG_BIN / "psql"), "-X", "-q", "-d", dsn, "-f", str(GRANTS_SQL), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def loader_db(private_pg: Any) -> Iterator[LoaderDatabase]:
    with psycopg.connect(private_pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    admin_dsn = private_pg.dsn(DATABASE)
    applied = apply_grants(admin_dsn)
    assert applied.returncode == 0, applied.stderr
    # the loader must present its password; everyone else keeps initdb's trust
    hba = private_pg.data / "pg_hba.conf"
    hba.write_text(f"host all {LOADER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    loader_dsn = f"postgresql://{LOADER}:{quote(LOADER_PASSWORD, safe='')}@127.0.0.1:{private_pg.port}/{DATABASE}"
    yield LoaderDatabase(private_pg, admin_dsn, loader_dsn, LOADER_PASSWORD)
