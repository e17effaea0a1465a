"""Scale-out: one run of the real DAG over many VBR servers through 1 and through 2 Celery workers.

Each configuration gets a fresh private stack (tests/operations/airflow_stack.py: scheduler,
dag-processor, api-server, N ``airflow celery worker``s, Redis broker, PostgreSQL metadata)
and a fresh results database; the same replay files (one per server) are scored by one
triggered run. Wall time is the run's own, from queued to its end in the metadata database,
so stack start-up and DAG parsing are not counted. Every worker runs ``concurrency`` tasks.
A triggered run's data interval ends at today's midnight (Airflow infers it from when the run
was triggered), so the documents cover the lookback before today.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import LOOKBACK_DAYS, PLUGINS, REPO, WINDOW_END, drop_database, new_database

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

DAG_ID = "veeam_storage_efficiency"


def generate(replay: Path, hosts: int, sessions: int, jobs: int) -> None:
    """``hosts`` seeded documents of ``sessions`` sessions, one per server, in one fresh interpreter."""
    replay.mkdir(parents=True, exist_ok=True)
    code = (
        "import json, sys\n"
        "from datetime import datetime, timedelta\n"
        "from tools.synthetic import generate_document\n"
        "replay, hosts, sessions, jobs, end, days = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5], int(sys.argv[6])\n"
        "end = datetime.fromisoformat(end)\n"
        "for number in range(hosts):\n"
        "    host = f'vbr{number:03d}.bench.local'\n"
        "    doc = generate_document(vbr_host=host, jobs=jobs, sessions=sessions, seed=number,\n"
        "                            window_start=end - timedelta(days=days), window_end=end)\n"
        "    open(f'{replay}/{host}.json', 'w').write(json.dumps(doc))\n"
    )
    argv = [str(replay), str(hosts), str(sessions), str(jobs), TODAY.isoformat(), str(LOOKBACK_DAYS)]
    subprocess.run(
        [sys.executable, "-c", code, *argv],
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{PLUGINS}{os.pathsep}{REPO}"},
    )


def run_once(replay: Path, workers: int, concurrency: int, timeout_s: float) -> dict[str, Any]:
    from tests.operations.airflow_stack import airflow_stack

    results, results_dsn = new_database("veeam_bench_celery")
    from bench.xcom_payload import xcom_env

    env = {
        "AIRFLOW_CONN_POSTGRES_DEFAULT": results_dsn, "VEEAM_REPLAY_DIR": str(replay), "VEEAM_COLLECTOR": "replay",
        **xcom_env(replay.parent / f"xcom_{workers}_workers"),  # as docker-compose.yaml: XComs in object storage
    }  # fmt: skip
    try:
        with airflow_stack(env, celery_workers=workers, worker_concurrency=concurrency) as stack:
            stack.wait_for(
                "the DAG to be serialised",
                lambda: bool(stack.query("SELECT 1 FROM serialized_dag WHERE dag_id = %s", DAG_ID)),
                timeout=300,
            )
            stack.cli("dags", "unpause", DAG_ID)
            conf = json.dumps({"lookback_days": LOOKBACK_DAYS})
            stack.cli(
                "dags", "trigger", DAG_ID, "--run-id", "bench", "--logical-date", WINDOW_END.isoformat(), "-c", conf
            )
            started = time.perf_counter()
            stack.wait_for(
                "the run to finish",
                lambda: stack.query("SELECT state FROM dag_run WHERE run_id = 'bench'")[0][0] in ("success", "failed"),
                timeout=timeout_s,
            )
            polled_s = time.perf_counter() - started
            state, wall = stack.query(
                "SELECT state, extract(epoch FROM end_date - queued_at) FROM dag_run WHERE run_id = 'bench'"
            )[0]
            per_worker = dict(
                stack.query(
                    "SELECT hostname, count(*) FROM task_instance WHERE run_id = 'bench' GROUP BY hostname ORDER BY 1"
                )
            )
            tasks = stack.query("SELECT count(*) FROM task_instance WHERE run_id = 'bench'")[0][0]
        return {
            "workers": workers, "concurrency": concurrency, "state": state, "wall_s": float(wall),
            "polled_s": polled_s, "tasks": tasks, "per_worker": per_worker,
        }  # fmt: skip
    finally:
        drop_database(results)


def measure(hosts: int, sessions: int, jobs: int, docs: Path, concurrency: int = 2) -> dict[str, Any]:
    replay = docs / f"celery_{hosts}x{sessions}"
    print(f"celery: generating {hosts} servers x {sessions:,} sessions ...", flush=True)
    generate(replay, hosts, sessions, jobs)
    runs = []
    for workers in (1, 2):
        print(f"celery: one run over {hosts} servers through {workers} worker(s) ...", flush=True)
        runs.append(run_once(replay, workers, concurrency, timeout_s=max(600.0, hosts * 60.0)))
    return {"hosts": hosts, "sessions": sessions, "jobs": jobs, "runs": runs}


def report(celery: dict[str, Any], nproc: str) -> tuple[list[str], list[str]]:
    runs = celery["runs"]
    lines = [
        "## Scale-out: Celery workers",
        "",
        f"One run of the DAG over {celery['hosts']} VBR servers of {celery['sessions']:,} sessions "
        f"({celery['jobs']} jobs) each over the {LOOKBACK_DAYS} days before today (a triggered run's interval), "
        "replayed; a fresh private stack per configuration (scheduler, "
        "dag-processor, api-server, Redis broker, PostgreSQL metadata and results, XComs in object storage as "
        "compose), each worker running "
        f"{runs[0]['concurrency']} tasks at once, prefetch 1. Wall: the run's queued-to-end in the metadata database.",
        "",
        "| workers | run state | task instances | wall | per worker |",
        "|---:|---|---:|---:|---|",
    ]
    for run in runs:
        share = ", ".join(f"{name}: {count}" for name, count in run["per_worker"].items())
        lines.append(f"| {run['workers']} | {run['state']} | {run['tasks']} | {run['wall_s']:.1f} s | {share} |")
    ratio = runs[0]["wall_s"] / runs[1]["wall_s"] if len(runs) == 2 and runs[1]["wall_s"] else float("nan")
    lines += [
        "",
        f"2 workers finish in 1/{ratio:.2f} of 1 worker's time on this machine ({nproc} cores shared by all "
        "processes): a second worker on the same cores adds task slots, not CPU; on its own machine it adds both.",
        "",
    ]
    targets = [f"**INFO** scale-out: 1 -> 2 Celery workers on {nproc} cores: {ratio:.2f}x faster (wall)"]
    return lines, targets


if __name__ == "__main__":  # a quick look without the rest of the bench
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(4, 2_000, 20, Path(tmp)), indent=1, default=str))
