"""One ``dag.test()`` run of the real DAG in a fresh interpreter: ``python -m bench.e2e_worker``.

The caller sets the Airflow environment (AIRFLOW_HOME, a migrated metadata database,
DAGS/PLUGINS folders), AIRFLOW_CONN_POSTGRES_DEFAULT (results) and VEEAM_REPLAY_DIR; optionally
BENCH_LOGICAL_DATE (default WINDOW_END) and BENCH_RUN_CONF (JSON; default the bench's lookback).
Prints the run's state, wall time and each task instance's state, start, end and duration.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from typing import Any

from bench.common import LOOKBACK_DAYS, WINDOW_END, emit, peak_kib

DAG_ID = "veeam_storage_efficiency"


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    os.environ["VEEAM_RUN_DEADLINE_MINUTES"] = "0"  # dag.test() of Airflow 3.3.2 fails on a DAG with a deadline
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[DAG_ID]
    start = time.perf_counter()
    logical_date = datetime.fromisoformat(os.environ.get("BENCH_LOGICAL_DATE") or WINDOW_END.isoformat())
    conf = json.loads(os.environ.get("BENCH_RUN_CONF") or json.dumps({"lookback_days": LOOKBACK_DAYS}))
    run = dag.test(logical_date=logical_date, run_conf=conf)
    wall = time.perf_counter() - start
    tasks: list[dict[str, Any]] = []
    with create_session() as session:
        for ti in run.get_task_instances(session=session):
            duration = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None
            tasks.append(
                {
                    "task": f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id,
                    "state": str(ti.state),
                    "start": ti.start_date.isoformat() if ti.start_date else None,
                    "end": ti.end_date.isoformat() if ti.end_date else None,
                    "duration_s": duration,
                    "try_number": ti.try_number,
                }
            )
    tasks.sort(key=lambda task: task["start"] or "")
    emit({"run_state": str(run.state), "wall_s": wall, "tasks": tasks, "process_peak_kib": peak_kib()})


if __name__ == "__main__":
    main()
