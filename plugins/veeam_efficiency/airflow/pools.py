"""Fail a run loudly when the collector pool is missing, instead of leaving it 'scheduled' forever.

On Airflow 3.3 the scheduler never queues a task whose pool does not exist: it logs a
warning and the run waits without end (the UI shows a DAG warning, nothing fails).

- In-process runs (``dag.test``, ``airflow dags test``, ``airflow tasks test``) can read the
  pool through Airflow's own model: :func:`require_pool` fails the run's first task at once.
- A task run by an executor cannot: the Task SDK has no pool routes and blocks the ORM in
  the task process. What it can read is task-instance states (the execution API's
  ``get_ti_count``), so a sensor (``watch_collector_pool``, reschedule mode: it holds no
  executor slot while it waits) pokes :func:`pool_evidence`. The pool exists once one of the
  run's collections is let through (queued or later), or while a pooled task of these DAGs
  is queued or running. Collections also wait in 'scheduled' for a full executor, so the
  watch fails only when, after ``grace_s`` seconds, nothing of these DAGs is queued or
  running and still none is a moment later: it says how to create the pool (missing, no
  slots, or other DAGs fill the deployment). Creating the pool then lets the collections run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

# a collection in one of these states got past the pool (or finished): the pool exists
LET_THROUGH = ["queued", "running", "success", "failed", "up_for_retry", "up_for_reschedule", "deferred", "restarting"]
NEVER_SCHEDULED = ["upstream_failed", "skipped", "removed"]
WATCH_TASK = "watch_collector_pool"
# the tasks of this package that take a slot of the collector pool, by DAG (tests hold it to the DAGs)
POOLED_TASKS: dict[str, tuple[str, ...]] = {
    "veeam_storage_efficiency": ("score_vbr_host.collect",),
    "veeam_vbr_check": ("diagnose",),
}


def watch_sensor_args(grace_s: float) -> dict[str, Any]:
    """The ``@task.sensor`` arguments of ``watch_collector_pool``, the same in both DAGs.

    Retries are for the scheduler's race with reschedule-mode sensors (apache/airflow#71172,
    fix open in #71194): the executor's "success" of one poke can arrive after the sensor is
    back in 'scheduled' for the next, and the scheduler then fails it as killed externally.
    A missing pool raises ``AirflowFailException``, which no retry repeats.
    """
    poke_s = min(30.0, grace_s / 4)
    return {
        "mode": "reschedule",
        "poke_interval": poke_s,
        "timeout": 2 * grace_s,  # a backstop: the grace is the watch's own
        "retries": 2,
        "retry_delay": timedelta(seconds=poke_s),
        "retry_exponential_backoff": False,
    }


def pool_exists(name: str) -> bool | None:
    """Whether pool ``name`` exists; None when this process may not read the metadata database."""
    from airflow.models.pool import Pool
    from sqlalchemy import select

    try:
        from airflow.utils.session import create_session

        with create_session() as session:
            return session.execute(select(Pool.slots).where(Pool.pool == name)).first() is not None
    except (RuntimeError, AttributeError):  # a task under an executor: the Task SDK blocked the ORM
        return None


def require_pool(name: str) -> None:
    """Raise ``AirflowFailException`` saying how to create pool ``name`` when it surely does not exist."""
    from airflow.sdk.exceptions import AirflowFailException

    from veeam_efficiency.settings import missing_pool_message

    if pool_exists(name) is False:
        raise AirflowFailException(missing_pool_message(name))


def pool_evidence(
    name: str,
    ti: Any,
    run_id: str,
    *,
    waited_s: float,
    grace_s: float,
    settle_s: float = 5.0,
    exists: Callable[[str], bool | None] = pool_exists,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Why pool ``name`` is known to exist (or there is nothing to watch); None to look again later.

    ``ti`` is the watching task's own instance (``dag_id``, ``task.dag`` and the Task SDK's
    ``get_ti_count``); ``waited_s`` is how long it has been watching. Raises
    ``AirflowFailException`` when the pool is missing, or looks missing after ``grace_s``.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from veeam_efficiency.settings import POOL_GRACE_ENV, missing_pool_message

    found = exists(name)
    if found is not None:
        if not found:
            raise AirflowFailException(missing_pool_message(name))
        return "the pool exists"
    own = list(POOLED_TASKS[ti.dag_id])
    working = {dag_id: list(tasks) for dag_id, tasks in POOLED_TASKS.items()}
    working[ti.dag_id] = [task_id for task_id in ti.task.dag.task_ids if task_id != WATCH_TASK]

    def count(dag_id: str, task_ids: list[str], states: list[str], run: str | None = None) -> int:
        return int(ti.get_ti_count(dag_id, task_ids=task_ids, run_ids=[run] if run else None, states=states))

    def sign() -> str | None:
        if count(ti.dag_id, own, LET_THROUGH, run_id):
            return "a collection of this run was let through"
        if any(count(dag_id, list(ids), ["queued", "running"]) for dag_id, ids in POOLED_TASKS.items()):
            return "a collection of another run holds a slot of the pool"
        if not count(ti.dag_id, own, ["scheduled"], run_id) and count(ti.dag_id, own, NEVER_SCHEDULED, run_id):
            return "this run collects nothing"
        return None

    def busy() -> bool:  # a full executor also keeps collections 'scheduled'
        return any(count(dag_id, ids, ["queued", "running"]) for dag_id, ids in working.items())

    if (reason := sign()) or waited_s < grace_s or busy():
        return reason
    sleep(settle_s)  # the deployment just went idle: the scheduler may be about to queue them
    if (reason := sign()) or busy():
        return reason
    raise AirflowFailException(
        f"{missing_pool_message(name)}. (This run's collections waited {waited_s:.0f} s in 'scheduled', and nothing "
        f"of these DAGs is queued or running: pool {name!r} is missing or has no slots, or other DAGs fill the "
        f"deployment; env {POOL_GRACE_ENV} sets the wait, {grace_s:.0f} s.)"
    )


def watch(name: str, run_id: str, grace_s: float) -> Any:
    """One poke of a DAG's ``watch_collector_pool`` sensor: a ``PokeReturnValue`` (done, and why)."""
    from datetime import UTC, datetime

    from airflow.sdk import PokeReturnValue, get_current_context

    context = get_current_context()
    ti = context["ti"]
    now = datetime.now(UTC)
    waited = (now - (ti.get_first_reschedule_date(context) or now)).total_seconds()
    reason = pool_evidence(name, ti, run_id, waited_s=waited, grace_s=grace_s)
    return PokeReturnValue(is_done=reason is not None, xcom_value=reason)
