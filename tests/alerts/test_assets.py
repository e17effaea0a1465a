"""Downstream consumers: ``announce_loaded`` emits one asset event per host and day loaded; the example consumer DAG is scheduled on them, and reads them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from dag_runner import fetch, run_dag, write_document
from metadata import sync_dags_and_unpause

from tools.synthetic import generate_document

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.usefixtures("airflow_db")]

RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)
PRODUCER = "veeam_storage_efficiency"
CONSUMER = "example_risk_analysis_consumer"


def asset_events(uri: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetModel.id == AssetEvent.asset_id).where(AssetModel.uri == uri)
        ).all()
        return [
            {
                "extra": event.extra,
                "source": (event.source_dag_id, event.source_task_id, event.source_map_index),
                "aliases": sorted(alias.name for alias in event.source_aliases),
                "asset_id": event.asset_id,
            }
            for event in events
        ]


def queued_for(dag_id: str, asset_id: int) -> bool:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return (
            session.scalar(
                select(AssetDagRunQueue).where(
                    AssetDagRunQueue.target_dag_id == dag_id, AssetDagRunQueue.asset_id == asset_id
                )
            )
            is not None
        )


def create_asset_triggered_run(dag_id: str) -> str:
    """What the scheduler does with a queued asset-scheduled DAG: one run consuming the queued events."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    with create_session() as session:
        due, _ = DagModel.dags_needing_dagruns(session)
        due = [model for model in due if model.dag_id == dag_id]
        assert due, f"{dag_id} is not due for an asset-triggered run"
        SchedulerJobRunner(job=Job())._create_dag_runs_asset_triggered(dag_models=due, session=session)
        session.flush()
        run = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == dag_id, DagRun.run_type == DagRunType.ASSET_TRIGGERED)
            .order_by(DagRun.id.desc())
        ).first()
        assert run is not None
        return run.run_id


def test_load_emits_asset_events_and_the_consumer_reads_their_flags(monkeypatch, results_db, tmp_path: Path):
    replay_dir = tmp_path / "replay"
    write_document(
        replay_dir,
        "vbr01",
        generate_document(
            vbr_host="vbr01.example.local", jobs=6, sessions=800, seed=1,
            window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=RUN_DATE,
        ),
    )  # fmt: skip
    sync_dags_and_unpause(CONSUMER)
    try:
        states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE)
        assert set(states.values()) == {"success"}, states

        database = urlsplit(results_db)
        prefix = f"postgres://127.0.0.1:5432{database.path}/feature3"
        scorecard_events = asset_events(f"{prefix}/metrics_storage_efficiency")
        history_events = asset_events(f"{prefix}/storage_efficiency_history")
        assert len(scorecard_events) == 1 and len(history_events) == 1, (scorecard_events, history_events)
        history_rows, scorecard_rows = fetch(
            results_db,
            "SELECT (SELECT count(*) FROM feature3.storage_efficiency_history), "
            "(SELECT count(*) FROM feature3.metrics_storage_efficiency)",
        )[0]
        expected_extra = {
            "vbr_host": "vbr01.example.local",
            "analysis_date": "2026-11-26",
            "history_rows": history_rows,
            "scorecard_rows": scorecard_rows,
            "stale_scorecards_deleted": 0,
        }
        for event, alias in (
            (scorecard_events[0], "veeam_feature3_scorecards"),
            (history_events[0], "veeam_feature3_history"),
        ):
            assert event["extra"] == expected_extra
            # announced by the one task after the hosts' loads (concurrent loads race on a new asset)
            assert event["source"] == (PRODUCER, "announce_loaded", -1)
            assert event["aliases"] == [alias]

        assert queued_for(CONSUMER, scorecard_events[0]["asset_id"]), "the consumer was not queued by the event"
        run_id = create_asset_triggered_run(CONSUMER)
        env = {**os.environ, "AIRFLOW_CONN_POSTGRES_DEFAULT": results_db}
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "tasks", "test", CONSUMER, "read_quality_flags", run_id],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        expected = fetch(
            results_db,
            "SELECT job_id, quality_flags FROM feature3.metrics_storage_efficiency WHERE scope = 'job' ORDER BY job_id",
        )
        assert any(any(flags.values()) for _, flags in expected), "the data must carry quality flags"
        read = consumer_result(run_id)
        assert sorted((card["job_id"], card["quality_flags"]) for card in read) == [tuple(row) for row in expected]
        assert {(card["vbr_host"], card["analysis_date"]) for card in read} == {("vbr01.example.local", "2026-11-26")}
    finally:
        sync_dags_and_unpause(CONSUMER, paused=True)


def consumer_result(run_id: str) -> list[dict]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == CONSUMER,
                XComModel.run_id == run_id,
                XComModel.task_id == "read_quality_flags",
                XComModel.key == "return_value",
            )
        )
    assert value is not None, "the consumer task pushed no result"
    return value
