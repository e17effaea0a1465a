"""A user's first command: the stock `airflow dags test` on the DAG as shipped exits 0.

No VEEAM_* settings in the environment (no collector, no deadline): only the run's conf
chooses the collector, as the README tells a new user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
from dag_runner import fetch, write_document

from tools.synthetic import generate_document

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]


def test_airflow_dags_test_of_the_shipped_dag_exits_0(airflow_db, results_db, tmp_path):
    replay = tmp_path / "replay"
    document = generate_document(
        vbr_host="vbr01.example.local", jobs=3, sessions=300, seed=5,
        window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=datetime(2026, 11, 27, tzinfo=UTC),
    )  # fmt: skip
    write_document(replay, "vbr01", document)
    env = {key: value for key, value in os.environ.items() if not key.startswith("VEEAM_")}
    env.update(airflow_db, AIRFLOW_CONN_POSTGRES_DEFAULT=results_db, VEEAM_REPLAY_DIR=str(replay))
    env.pop("VEEAM_COLLECTOR", None)

    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "veeam_storage_efficiency", "2026-11-27",
         "-c", json.dumps({"collector": "replay"})],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "state=success" in output and "Traceback" not in output, output[-5000:]
    assert fetch(results_db, "SELECT count(*) > 0 FROM feature3.metrics_storage_efficiency") == [(True,)]
