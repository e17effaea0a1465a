"""The collector pool: a run whose pool is missing fails at once saying how to create it (Airflow would wait forever)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.e2e.dag_runner import DAG_ID, fetch, last_run_id, run_dag, write_document
from tools.synthetic import generate_document
from veeam_efficiency.airflow.pools import pool_exists

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.usefixtures("airflow_db")]

RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)


def test_a_missing_pool_fails_the_run_at_once_saying_how_to_create_it(monkeypatch, results_db, tmp_path, capfd):
    missing = f"no_such_pool_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("VEEAM_COLLECTOR_POOL", missing)  # read when the DAG is parsed
    replay = tmp_path / "replay"
    write_document(
        replay, "vbr01",
        generate_document(vbr_host="vbr01.example.local", jobs=2, sessions=100, seed=3,
                          window_start=datetime(2026, 10, 1, tzinfo=UTC), window_end=RUN_DATE),
    )  # fmt: skip

    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=RUN_DATE)

    assert states["ensure_results_schema"] == "failed" and states["run"] == "failed", states
    # in-process runs ignore pools, so the hosts are collected; nothing is loaded
    assert {state for key, state in states.items() if key.startswith("score_vbr_host.load")} == {"upstream_failed"}
    captured = capfd.readouterr()
    assert f"Airflow pool '{missing}' does not exist" in captured.out + captured.err
    assert f'airflow pools set {missing} 4 "Concurrent collections from VBR servers"' in captured.out + captured.err
    assert _tries("ensure_results_schema") == 1  # AirflowFailException: never retried
    assert fetch(results_db, "SELECT to_regclass('feature3.metrics_storage_efficiency')") == [(None,)]


def test_the_pool_the_session_created_is_found_and_another_is_not():
    assert pool_exists("vbr_collectors") is True  # tests/conftest.py created it, as a deployment does
    assert pool_exists(f"no_such_pool_{uuid.uuid4().hex[:8]}") is False


def _tries(task_id: str) -> int:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == last_run_id(), TaskInstance.task_id == task_id
            )
        ).first()
        assert ti is not None
        return int(ti.try_number)
