"""Fail a run at once when the collector pool is missing, instead of leaving it 'scheduled' forever.

On Airflow 3.3 the scheduler never queues a task whose pool does not exist: it logs a
warning and the run waits without end (the UI shows a DAG warning, nothing fails). So the
run's first task looks the pool up, with one query through Airflow's own model, where the
ORM is there: in-process runs (``dag.test``, ``airflow dags test``, ``airflow tasks test``).
A task run by an executor cannot look: the Task SDK has no pool routes, it blocks the ORM in
the task process and overwrites ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` there (so an
``airflow pools get`` subprocess fails too), and Celery's process titles overwrite the
worker's launch environment. There the check logs a warning, and the pool is guaranteed by
whoever starts Airflow (compose's airflow-init, ``make ui``, the tests) creating it.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


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
    """Raise ``AirflowFailException`` saying how to create pool ``name`` when it does not exist."""
    from airflow.sdk.exceptions import AirflowFailException

    from veeam_efficiency.settings import missing_pool_message

    exists = pool_exists(name)
    if exists is False:
        raise AirflowFailException(missing_pool_message(name))
    if exists is None:
        log.warning(
            "pool %r not checked (a task run by an executor may not read the metadata database); "
            "if collect stays 'scheduled', the pool is missing: %s",
            name,
            missing_pool_message(name),
        )
