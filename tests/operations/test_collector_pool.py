"""The collector pool: a run whose pool is missing fails at once saying how to create it (Airflow would wait forever)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tests.e2e.dag_runner import DAG_ID, fetch, last_run_id, run_dag, write_document
from tools.synthetic import generate_document
from veeam_efficiency.airflow.pools import POOLED_TASKS, WATCH_TASK, pool_evidence, pool_exists

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


class _Instances:
    """Task instances as the Task SDK's ``get_ti_count`` sees them (the watch's own ``ti``); ``later`` after a wait."""

    dag_id = DAG_ID

    def __init__(self, states: dict[tuple[str, str, str], str], later: dict[tuple[str, str, str], str] | None = None):
        self.states, self.later, self.slept = states, later or {}, 0.0
        self.task = SimpleNamespace(dag=SimpleNamespace(task_ids=[COLLECT, ANALYZE, WATCH_TASK]))

    def get_ti_count(self, dag_id: str, task_ids: list[str], run_ids: list[str] | None, states: list[str]) -> int:
        return sum(
            d == dag_id and t in task_ids and (run_ids is None or r in run_ids) and state in states
            for (d, t, r), state in self.states.items()
        )

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.states.update(self.later)


COLLECT, ANALYZE = "score_vbr_host.collect", "score_vbr_host.analyze"
WAITING = {(DAG_ID, COLLECT, "run-1"): "scheduled", (DAG_ID, WATCH_TASK, "run-2"): "running"}  # another watch


def _evidence(instances: _Instances, waited_s: float) -> str | None:
    return pool_evidence(
        "vbr_collectors", instances, "run-1", waited_s=waited_s, grace_s=60, exists=lambda _: None,
        sleep=instances.sleep,
    )  # fmt: skip


def test_the_watch_fails_after_the_grace_when_nothing_of_these_dags_is_queued_or_running():
    idle = _Instances({**WAITING, ("veeam_vbr_check", "diagnose", "run-9"): "success"})  # finished: no sign now
    assert _evidence(idle, waited_s=59) is None and idle.slept == 0  # look again later
    with pytest.raises(AirflowFailException, match=r"Airflow pool 'vbr_collectors' does not exist.*waited 60 s"):
        _evidence(idle, waited_s=60)
    assert idle.slept == 5  # looked once more after the deployment went idle


def test_the_watch_waits_on_while_the_executor_is_busy_or_the_scheduler_catches_up():
    busy = _Instances({**WAITING, (DAG_ID, ANALYZE, "run-0"): "running"})  # the executor may be full
    assert _evidence(busy, waited_s=3600) is None and busy.slept == 0
    catching_up = _Instances(dict(WAITING), later={(DAG_ID, COLLECT, "run-1"): "queued"})
    assert _evidence(catching_up, waited_s=3600) == "a collection of this run was let through"


@pytest.mark.parametrize(
    ("states", "reason"),
    [
        ({(DAG_ID, COLLECT, "run-1"): "queued"}, "a collection of this run was let through"),
        ({(DAG_ID, COLLECT, "run-1"): "up_for_retry"}, "a collection of this run was let through"),
        (
            {**WAITING, ("veeam_vbr_check", "diagnose", "run-9"): "running"},
            "a collection of another run holds a slot of the pool",
        ),
        ({(DAG_ID, COLLECT, "run-1"): "upstream_failed"}, "this run collects nothing"),
    ],
)
def test_the_watch_ends_at_the_first_sign_of_the_pool_even_after_the_grace(states, reason):
    assert _evidence(_Instances(states), waited_s=3600) == reason


def test_an_in_process_look_up_is_trusted():
    instances = _Instances(dict(WAITING))
    found = pool_evidence("vbr_collectors", instances, "run-1", waited_s=0, grace_s=1, exists=lambda _: True)
    assert found == "the pool exists"
    with pytest.raises(AirflowFailException, match="does not exist"):
        pool_evidence("vbr_collectors", instances, "run-1", waited_s=0, grace_s=1, exists=lambda _: False)


def test_the_pooled_tasks_the_watch_knows_are_the_dags_tasks_in_the_collector_pool():
    from airflow.dag_processing.dagbag import DagBag

    from tests.e2e.dag_runner import REPO

    bag = DagBag(dag_folder=str(REPO / "dags"))
    pooled = {
        dag_id: tuple(task.task_id for task in dag.tasks if task.pool == "vbr_collectors")
        for dag_id, dag in bag.dags.items()
        if dag_id in POOLED_TASKS or any(task.pool == "vbr_collectors" for task in dag.tasks)
    }
    assert pooled == POOLED_TASKS
    assert all(WATCH_TASK in bag.dags[dag_id].task_ids for dag_id in POOLED_TASKS)
