"""Run the real DAG with ``dag.test()`` against a real results database, and read what it wrote."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "veeam_storage_efficiency"


def load_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[DAG_ID]


def run_dag(
    monkeypatch: pytest.MonkeyPatch,
    *,
    results_dsn: str,
    replay_dir: Path,
    logical_date: datetime,
    conf: dict[str, Any] | None = None,
) -> dict[str, str]:
    """One ``dag.test()`` run; returns ``{task_id[map_index]: state}`` and the run's own state as ``run``."""
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", results_dsn)
    monkeypatch.setenv("VEEAM_REPLAY_DIR", str(replay_dir))
    dag = load_dag()
    run = dag.test(logical_date=logical_date, run_conf=conf or {})
    from airflow.utils.session import create_session

    with create_session() as session:
        states = {
            f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state)
            for ti in run.get_task_instances(session=session)
        }
    return {**states, "run": str(run.state)}


def write_document(directory: Path, name: str, document: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def fetch(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def table_dump(dsn: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``feature3.<table>`` in key order, for comparing whole tables."""
    keys = {
        "metrics_storage_efficiency": "vbr_host, job_id, analysis_date",
        "storage_efficiency_history": "vbr_host, session_id",
    }[table]
    return fetch(dsn, f"SELECT * FROM feature3.{table} ORDER BY {keys}")


def tables_exist(dsn: str) -> bool:
    return bool(fetch(dsn, "SELECT to_regclass('feature3.storage_efficiency_history') IS NOT NULL")[0][0])
