"""A test run leaves nothing behind: its AIRFLOW_HOME is removed, and a private PostgreSQL cluster
that a killed run left running is found and stopped by the next run.

Both are checked on a real nested pytest run in a temporary directory of its own (``TMPDIR``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg_cluster import PG_BIN

pytestmark = [pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[1]
LEAVE_A_CLUSTER = (
    "from tests.support.pg_cluster import PrivateCluster\n"
    "cluster = PrivateCluster()\n"
    "cluster.start()\n"
    "print(cluster.root)\n"  # and exit without destroying it, as a killed run would
)


@pytest.fixture
def temp_dir() -> Iterator[Path]:
    """A TMPDIR the postgres OS user can traverse (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="veeam-leftovers-"))
    path.chmod(0o755)
    yield path
    for data in path.glob("veeam-pg-*/data"):  # whatever happened above, no server stays up
        if (data / "postmaster.pid").exists():
            user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            subprocess.run([*user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False)
    shutil.rmtree(path, ignore_errors=True)


def test_next_run_stops_an_orphaned_cluster_and_no_airflow_home_is_left(temp_dir: Path) -> None:
    env = {**os.environ, "TMPDIR": str(temp_dir)}
    left = subprocess.run(
        [sys.executable, "-c", LEAVE_A_CLUSTER], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert left.returncode == 0, left.stderr
    orphan = Path(left.stdout.strip())
    assert (orphan / "data" / "postmaster.pid").exists()  # running, and its owner is gone

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", "tests/unit/test_window.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"stopped the private PostgreSQL cluster a killed test run left in {orphan}" in run.stdout
    assert not orphan.exists()
    assert sorted(path.name for path in temp_dir.iterdir()) == []  # no veeam-airflow-home-*, no cluster
