"""A real backfill: ``airflow backfill create`` run by a real scheduler, then run again.

The stack (tests/operations/airflow_stack.py) is a private Airflow with its own metadata
database; the replayed document covers 2026-09-01..2026-11-27. Each backfill run must
score its own day's window, exactly as a ``dag.test`` of that day does, and a second
backfill with ``--reprocess-behavior completed`` must leave the same tables. Then, on the
same stack, a run whose collector pool was deleted fails its pool watch saying how to create it.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.dag_runner import fetch, run_dag, table_dump, write_document
from tests.operations.airflow_stack import DAG_ID, airflow_stack, create_database, drop_database
from tools.synthetic import generate_document
from veeam_efficiency.settings import POOL_GRACE_ENV, AnalysisSettings

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.postgres]

DAYS = [date(2026, 11, 20) + timedelta(days=offset) for offset in range(5)]  # the backfilled logical dates
HOST = "vbr01.example.local"


def _scorecards(dsn: str) -> list[tuple]:
    return table_dump(dsn, "metrics_storage_efficiency")


def _runs(stack) -> list[tuple]:  # type: ignore[no-untyped-def]
    return stack.query(
        "SELECT logical_date::date, data_interval_start, data_interval_end, state, clear_number FROM dag_run "
        "WHERE dag_id = %s AND run_type = 'backfill' ORDER BY logical_date",
        DAG_ID,
    )


def _state(stack, task_id: str) -> str | None:  # type: ignore[no-untyped-def]
    rows = stack.query(
        "SELECT state FROM task_instance WHERE dag_id = %s AND run_id = 'no-pool' AND task_id = %s", DAG_ID, task_id
    )
    return rows[0][0] if rows else None


def _backfill_done(stack, backfills: int) -> bool:  # type: ignore[no-untyped-def]
    done = stack.query("SELECT count(*) FROM backfill WHERE dag_id = %s AND completed_at IS NOT NULL", DAG_ID)
    return done[0][0] == backfills


def test_backfill_writes_each_days_scorecards_once(tmp_path: Path, results_db, airflow_db, monkeypatch):
    replay = tmp_path / "replay"
    document = generate_document(
        vbr_host=HOST, jobs=5, sessions=700, seed=11,
        window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=datetime(2026, 11, 27, tzinfo=UTC),
    )  # fmt: skip
    write_document(replay, "vbr01", document)

    clock = time.monotonic()

    def phase(name: str) -> None:  # shown when the test fails: where the time went
        print(f"{time.monotonic() - clock:6.1f} s  {name}", flush=True)

    reference = f"veeam_test_backfill_reference_{uuid.uuid4().hex[:12]}"
    reference_dsn = create_database(reference)
    try:
        env = {"AIRFLOW_CONN_POSTGRES_DEFAULT": results_db, "VEEAM_REPLAY_DIR": str(replay), POOL_GRACE_ENV: "10"}
        with airflow_stack(env) as stack:
            phase("stack started (metadata database migrated)")
            stack.wait_for(
                "the dag-processor to serialise the DAG",
                lambda: bool(stack.query("SELECT 1 FROM serialized_dag WHERE dag_id = %s", DAG_ID)),
                timeout=120,
            )
            stack.cli("dags", "unpause", DAG_ID)
            backfill = [
                "backfill", "create", "--dag-id", DAG_ID, "--from-date", str(DAYS[0]), "--to-date", str(DAYS[-1]),
            ]  # fmt: skip
            stack.cli(*backfill, "--max-active-runs", "5")
            phase("backfill created")

            stack.wait_for(
                "the first backfill's runs to finish",
                lambda: {row[3] for row in _runs(stack)} <= {"success", "failed"} and len(_runs(stack)) == len(DAYS),
                timeout=240,
            )
            phase("first backfill's runs finished")

            # while the scheduler marks the backfill complete (every 30 s), in this process: what a
            # dag.test of each day writes, into a database of its own
            for day in DAYS:  # dag.test(logical_date=T) runs the interval [T - 1 day, T)
                states = run_dag(
                    monkeypatch,
                    results_dsn=reference_dsn,
                    replay_dir=replay,
                    logical_date=datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC),
                )
                assert set(states.values()) == {"success"}, states
            phase("reference dag.test runs done")
            stack.wait_for("the first backfill to be marked complete", lambda: _backfill_done(stack, 1), timeout=60)
            runs = _runs(stack)
            assert [row[0] for row in runs] == DAYS, runs
            assert {row[3] for row in runs} == {"success"}, f"{runs}\n{stack.diagnostics()}"
            for day, start, end, _, _ in runs:  # each run covers its own day
                assert (start, end) == (
                    datetime.combine(day, datetime.min.time(), UTC),
                    datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC),
                )
            first = _scorecards(results_db)
            first_history = fetch(
                results_db, "SELECT count(*), count(DISTINCT session_id) FROM feature3.storage_efficiency_history"
            )

            stack.cli(*backfill, "--reprocess-behavior", "completed", "--max-active-runs", "5")
            stack.wait_for(  # every day run again (cleared once) and finished
                "the second backfill's runs to finish",
                lambda: [(row[3], row[4]) for row in _runs(stack)] == [("success", 1)] * len(DAYS),
                timeout=240,
            )
            phase("second backfill done")

            # under an executor, a run whose collector pool is missing fails its watch, saying how to create it
            stack.cli("pools", "delete", "vbr_collectors")
            stack.cli("dags", "trigger", DAG_ID, "--run-id", "no-pool", "--logical-date", "2026-11-28T00:00:00+00:00")
            stack.wait_for(
                "the pool watch to fail", lambda: _state(stack, "watch_collector_pool") == "failed", timeout=120
            )
            assert _state(stack, "score_vbr_host.collect") == "scheduled"  # Airflow alone would leave it so

            def watch_log() -> str:
                return "".join(
                    path.read_text(errors="replace")
                    for path in (stack.home / "logs").rglob("*.log")
                    if "run_id=no-pool" in str(path) and "task_id=watch_collector_pool" in str(path)
                )

            # the failed state and the task's last log lines travel apart: wait for the lines, then read them
            stack.wait_for(
                "the watch's failure in its log",
                lambda: "Airflow pool 'vbr_collectors' does not exist" in watch_log(),
                timeout=30,
            )
            assert "Airflow pool 'vbr_collectors' does not exist" in watch_log(), stack.diagnostics()
            assert "airflow pools set vbr_collectors 4" in watch_log()
            phase("missing pool reported")

        # one scorecard per job and day, each over the 30 days ending with its day
        per_day = fetch(
            results_db,
            "SELECT analysis_date, count(*) FILTER (WHERE scope = 'job'), count(*) FILTER (WHERE scope = 'host'), "
            "min(window_start), max(window_end), count(DISTINCT job_id) "
            "FROM feature3.metrics_storage_efficiency GROUP BY analysis_date ORDER BY analysis_date",
        )
        assert [row[0] for row in per_day] == DAYS
        for day, jobs, host_rollups, window_start, window_end, distinct_jobs in per_day:
            assert jobs >= 3 and host_rollups == 1 and distinct_jobs == jobs + 1, (day, jobs, host_rollups)
            assert window_end == datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
            assert window_start == window_end - timedelta(days=AnalysisSettings().lookback_days)

        # each day's scorecards are what a dag.test of that day writes
        assert _scorecards(reference_dsn) == first
        # the re-run changed nothing: same scorecards, each session still stored once
        assert _scorecards(results_db) == first
        history = fetch(
            results_db, "SELECT count(*), count(DISTINCT session_id) FROM feature3.storage_efficiency_history"
        )
        assert history == first_history and history[0][0] == history[0][1] > 0
    finally:
        drop_database(reference)
