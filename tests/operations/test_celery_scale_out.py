"""Scale-out on the CeleryExecutor, on real processes: two workers share a run, and a worker that dies loses nothing.

One private stack (tests/operations/airflow_stack.py: scheduler, dag-processor, api-server,
two ``airflow celery worker`` processes, Redis broker on a database index of its own, result
backend in the stack's PostgreSQL metadata database, prefetch 1) serves both scenarios:

1. a run over one large server, into a results database of its own: while its ``load``
   transaction is open, the worker running it is SIGKILLed with its whole process group, and
   started again (as compose's restart policy would). The scheduler finds the task without
   heartbeat (timeout shortened to 30 s), retries it on a live worker (retry delay shortened
   through ``VEEAM_RETRY_DELAY_SECONDS``), and the tables hold each session once;
2. meanwhile (triggered once the worker is killed, so the large run reaches its load without
   competing for slots), a run over 20 VBR servers (replay files): task instances ran on both
   workers, every server's scorecards were written once, one asset event per server.

A manually triggered run's data interval is inferred from when it was triggered (the day
before it), not from its logical date: the replay files cover the lookback before today,
and the expected sessions are those of the run's own interval.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from bench.xcom_payload import xcom_env
from tests.e2e.dag_runner import fetch, write_document
from tests.operations.airflow_stack import DAG_ID, AirflowStack, airflow_stack, create_database, drop_database
from tools.synthetic import generate_document
from veeam_efficiency import pipeline
from veeam_efficiency.payload import column
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.window import analysis_window

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.postgres]

RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)  # the large server's run (a logical date: see below)
FLEET_DATE = RUN_DATE - timedelta(days=1)  # the 20 servers' run (one run per logical date)
HOSTS = [f"vbr{number:02d}.example.local" for number in range(1, 21)]
LARGE = "vbr-large.example.local"
LOOKBACK = timedelta(days=AnalysisSettings().lookback_days)


def _tis(stack: AirflowStack, run_id: str) -> list[tuple[Any, ...]]:
    return stack.query(
        "SELECT task_id, map_index, state, try_number, hostname FROM task_instance "
        "WHERE dag_id = %s AND run_id = %s ORDER BY task_id, map_index",
        DAG_ID,
        run_id,
    )


def _run_state(stack: AirflowStack, run_id: str) -> str | None:
    rows = stack.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", DAG_ID, run_id)
    return rows[0][0] if rows else None


def _trigger(stack: AirflowStack, run_id: str, logical_date: datetime, conf: dict[str, str]) -> None:
    conf = json.dumps(conf)
    stack.cli("dags", "trigger", DAG_ID, "--run-id", run_id, "--logical-date", logical_date.isoformat(), "-c", conf)


def _wait_finished(stack: AirflowStack, run_id: str, timeout: float) -> None:
    stack.wait_for(f"run {run_id} to finish", lambda: _run_state(stack, run_id) in {"success", "failed"}, timeout)
    assert _run_state(stack, run_id) == "success", f"{_tis(stack, run_id)}\n{stack.diagnostics()}"


def _open_transactions(results_dsn: str) -> int:
    """Transactions open on the results database (other than this query's): a ``load`` mid-write."""
    with psycopg.connect(results_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND xact_start IS NOT NULL "
            "AND pid <> pg_backend_pid()",
            (urlsplit(results_dsn).path.lstrip("/"),),
        ).fetchone()
    return int(row[0]) if row else 0


def test_two_celery_workers_share_a_run_and_a_killed_worker_loses_nothing(results_db, tmp_path: Path):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)  # the runs' interval end
    replay = tmp_path / "replay"
    for number, host in enumerate(HOSTS):
        document = generate_document(
            vbr_host=host, jobs=3, sessions=240, seed=100 + number, window_start=today - LOOKBACK,
            window_end=today,
        )  # fmt: skip
        write_document(replay / "fleet", host, document)
    large = generate_document(
        vbr_host=LARGE, jobs=100, sessions=120_000, seed=7, window_start=today - LOOKBACK, window_end=today
    )
    write_document(replay / "large", LARGE, large)

    clock = time.monotonic()

    def phase(name: str) -> None:  # shown when the test fails: where the time went
        print(f"{time.monotonic() - clock:6.1f} s  {name}", flush=True)

    large_db = f"veeam_test_large_{uuid.uuid4().hex[:12]}"
    large_dsn = create_database(large_db)
    env = {
        "AIRFLOW_CONN_POSTGRES_DEFAULT": results_db,
        "AIRFLOW_CONN_RESULTS_LARGE": large_dsn,
        "VEEAM_REPLAY_DIR": str(replay),
        "VEEAM_RETRY_DELAY_SECONDS": "1",
        # short, but not so short that a busy machine's late heartbeat fails a live task (retries=0 ones too)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        # as docker-compose.yaml: the large server's tens of MB of XCom never pass through the
        # api-server's one worker, where they would hold up every task's heartbeat
        **xcom_env(tmp_path),
    }
    try:
        with airflow_stack(env, celery_workers=2, worker_concurrency=2) as stack:
            phase("stack started (metadata database migrated, pool created)")
            stack.wait_for(
                "the dag-processor to serialise the DAG",
                lambda: bool(stack.query("SELECT 1 FROM serialized_dag WHERE dag_id = %s", DAG_ID)),
                timeout=120,
            )
            stack.cli("dags", "unpause", DAG_ID)
            _trigger(stack, "large", RUN_DATE, {"replay_path": "large", "postgres_conn_id": "results_large"})

            # SIGKILL the worker running the large server's load, mid-transaction
            victim: str | None = None
            deadline = time.monotonic() + 300
            while victim is None:
                assert time.monotonic() < deadline, f"load never ran\n{_tis(stack, 'large')}\n{stack.diagnostics()}"
                load = [row for row in _tis(stack, "large") if row[0] == "score_vbr_host.load"]
                assert not load or load[0][2] != "success", "load finished before it could be interrupted"
                if load and load[0][2] == "running" and load[0][4] and _open_transactions(large_dsn):
                    victim = str(load[0][4])
                else:
                    time.sleep(0.1)
            stack.kill_worker(victim)
            phase(f"worker {victim} killed during load")
            stack.start_worker(victim)  # restarted, as compose's restart policy or Kubernetes would
            # the 20 servers while the scheduler notices the dead task (the large run alone reaches load sooner)
            _trigger(stack, "fleet", FLEET_DATE, {"replay_path": "fleet"})

            # the retried load shares 4 task slots with the 20-server run: 240 s ran out once on a slow hour
            _wait_finished(stack, "large", timeout=420)
            phase("large-server run finished")
            load = next(row for row in _tis(stack, "large") if row[0] == "score_vbr_host.load")
            assert load[2] == "success" and load[4] in {"w1", "w2"} and load[3] >= 2, load  # retried by a live worker
            earlier = stack.query(
                "SELECT try_number, state, hostname FROM task_instance_history "
                "WHERE dag_id = %s AND run_id = %s AND task_id = 'score_vbr_host.load' ORDER BY try_number",
                DAG_ID,
                "large",
            )
            assert earlier and earlier[0][1:] == ("failed", victim), earlier
            window_end = stack.query("SELECT data_interval_end FROM dag_run WHERE run_id = %s", "large")[0][0]

            _wait_finished(stack, "fleet", timeout=300)
            phase("20-server run finished")
            fleet = _tis(stack, "fleet")
            assert {row[4] for row in fleet} == {"w1", "w2"}, fleet  # both workers ran the fleet's tasks
            assert sum(row[0] == "score_vbr_host.load" for row in fleet) == len(HOSTS)
            assert {row[2] for row in fleet} == {"success"}, fleet
            events = stack.query(
                "SELECT a.uri, e.extra ->> 'vbr_host', e.source_task_id FROM asset_event AS e "
                "JOIN asset AS a ON a.id = e.asset_id WHERE e.source_run_id = %s",
                "fleet",
            )
            for table in ("metrics_storage_efficiency", "storage_efficiency_history"):  # one event per host and table
                announced = sorted(host for uri, host, _ in events if uri.endswith(f"/feature3/{table}"))
                assert announced == HOSTS, events
            assert {task for _, _, task in events} == {"announce_loaded"}

        cards = fetch(
            results_db,
            "SELECT vbr_host, count(*), count(DISTINCT job_id), count(*) FILTER (WHERE scope = 'host') "
            "FROM feature3.metrics_storage_efficiency GROUP BY vbr_host ORDER BY vbr_host",
        )
        assert [row[0] for row in cards] == HOSTS  # every server's scorecards, written once
        assert all(total == distinct == 4 and host_rows == 1 for _, total, distinct, host_rows in cards), cards
        history = fetch(
            results_db,
            "SELECT count(*), count(DISTINCT (vbr_host, session_id)) FROM feature3.storage_efficiency_history",
        )
        assert history[0][0] == history[0][1] > 0, history

        settings = AnalysisSettings()
        validated = pipeline.validate(json.dumps(large), analysis_window(window_end, settings.lookback_days), settings)
        sessions = set(column(validated["sessions"], "session_id"))
        stored = fetch(
            large_dsn,
            "SELECT count(*), count(DISTINCT session_id) FROM feature3.storage_efficiency_history WHERE vbr_host = %s",
            LARGE,
        )
        assert stored == [(len(sessions), len(sessions))] and len(sessions) > 50_000, stored  # each session once
        jobs = fetch(
            large_dsn,
            "SELECT count(*), count(DISTINCT job_id) FROM feature3.metrics_storage_efficiency "
            "WHERE vbr_host = %s AND scope = 'job'",
            LARGE,
        )
        assert jobs == [(len(validated["qualifying_job_ids"]),) * 2] and jobs[0][0] > 0, jobs
    finally:
        drop_database(large_db)
