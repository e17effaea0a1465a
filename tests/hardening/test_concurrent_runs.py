"""Two real DAG runs of the same data interval at once (a manual trigger during a backfill).

Two ``dag.test()`` processes start together against one results database, with logical dates
30 seconds apart: two dag runs (different run ids) whose data interval is the same day. Their
combined result must equal what a single run of that day writes. The runs overlap in time, but
whether their load tasks do depends on the machine; tests/hardening/test_faults.py forces two
loads of one host and day to start at the same moment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
from dag_runner import DAG_ID, run_dag, table_dump, write_document

from tools.synthetic import generate_document

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)
LOGICAL_DATES = ("2026-11-27T00:00:00+00:00", "2026-11-27T00:00:30+00:00")  # same interval [11-26, 11-27)
RUNNER = """
import json, sys
from datetime import datetime
from dag_runner import load_dag
from airflow.utils.session import create_session
run = load_dag().test(logical_date=datetime.fromisoformat(sys.argv[1]))
with create_session() as session:
    states = {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in run.get_task_instances(session=session)}
print("STATES " + json.dumps({"run_id": run.run_id, "states": states}))
"""


def test_two_runs_of_the_same_day_at_once_equal_one(monkeypatch, airflow_db, results_db, tmp_path):
    replay = tmp_path / "replay"
    for number, seed in ((1, 31), (2, 32)):
        host = f"vbr0{number}.example.local"
        write_document(
            replay, f"vbr0{number}",
            generate_document(
                vbr_host=host, jobs=6, sessions=800, seed=seed,
                window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=RUN_DATE,
            ),
        )  # fmt: skip
    # the reference: one run of the day, alone (this also stores the DAG in the metadata database)
    single = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=RUN_DATE)
    assert set(single.values()) == {"success"}, single
    reference = {
        table: table_dump(results_db, table) for table in ("metrics_storage_efficiency", "storage_efficiency_history")
    }
    with psycopg.connect(results_db) as conn:
        conn.execute("TRUNCATE feature3.metrics_storage_efficiency, feature3.storage_efficiency_history")

    env = {
        **os.environ,
        "AIRFLOW_CONN_POSTGRES_DEFAULT": results_db,
        "VEEAM_REPLAY_DIR": str(replay),
        "PYTHONPATH": os.pathsep.join(str(REPO / part) for part in ("plugins", ".", "tests/e2e")),
    }
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, logical_date],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for logical_date in LOGICAL_DATES
    ]
    results = []
    for process in runs:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.rsplit("STATES ", 1)[1]))

    for result in results:
        assert set(result["states"].values()) == {"success"}, result
    run_ids = [result["run_id"] for result in results]
    assert run_ids[0] != run_ids[1]
    with psycopg.connect(airflow_db["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg", "")) as conn:
        intervals = conn.execute(
            "SELECT DISTINCT data_interval_start, data_interval_end FROM dag_run WHERE dag_id = %s AND run_id = ANY(%s)",
            (DAG_ID, run_ids),
        ).fetchall()
        spans = conn.execute(
            "SELECT start_date, end_date FROM dag_run WHERE dag_id = %s AND run_id = ANY(%s)", (DAG_ID, run_ids)
        ).fetchall()
    assert intervals == [(datetime(2026, 11, 26, tzinfo=UTC), RUN_DATE)]
    assert max(start for start, _ in spans) < min(end for _, end in spans), f"the runs did not overlap: {spans}"
    both = {
        table: table_dump(results_db, table) for table in ("metrics_storage_efficiency", "storage_efficiency_history")
    }
    assert reference["metrics_storage_efficiency"] and reference["storage_efficiency_history"]
    assert both == reference
