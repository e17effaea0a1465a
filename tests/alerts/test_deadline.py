"""The run deadline: the DAG carries it with the configured interval, and its callback sends the alert."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from dag_runner import load_dag
from metadata import sync_dags_and_unpause

pytestmark = [pytest.mark.airflow]

DEADLINE_ENV = "VEEAM_RUN_DEADLINE_MINUTES"


def test_deadline_interval_comes_from_the_environment(monkeypatch):
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline

    monkeypatch.setenv(DEADLINE_ENV, "90")
    monkeypatch.setenv("VEEAM_ALERT_RECIPIENTS", "oncall@example.com, backup-admins@example.com")
    (alert,) = load_dag().deadline

    assert alert.interval == timedelta(minutes=90)
    assert isinstance(alert.reference, DagRunQueuedAtDeadline)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "veeam_efficiency.airflow.notifiers.RunDeadlineMissed"
    assert alert.callback.kwargs == {
        "smtp_conn_id": "smtp_default",
        "recipients": ["oncall@example.com", "backup-admins@example.com"],
    }


def test_deadline_is_off_unless_configured_and_zero_turns_it_off(monkeypatch):
    """Off by default: `airflow dags test` of a DAG with a deadline exits 1 on Airflow 3.3 (apache/airflow#73428)."""
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    assert not load_dag().deadline
    monkeypatch.setenv(DEADLINE_ENV, "360")
    assert [alert.interval for alert in load_dag().deadline] == [timedelta(hours=6)]
    monkeypatch.setenv(DEADLINE_ENV, "0")
    assert not load_dag().deadline


@pytest.mark.usefixtures("airflow_db")
def test_serialized_dag_stores_the_deadline_for_the_scheduler(monkeypatch):
    """What the scheduler reads: the deadline alert row of the DAG version in the metadata DB."""
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    monkeypatch.setenv(DEADLINE_ENV, "75")
    sync_dags_and_unpause("veeam_storage_efficiency", paused=True)
    with create_session() as session:
        stored = SerializedDagModel.get("veeam_storage_efficiency", session=session).dag
        (alert_id,) = stored.deadline
        row = DeadlineAlertModel.get_by_id(alert_id, session=session)
        assert row.name == "veeam_run_deadline"
        assert row.reference["reference_type"] == "DagRunQueuedAtDeadline"
        assert row.interval["__data__"] == 75 * 60
        assert row.callback_def["__data__"]["path"] == "veeam_efficiency.airflow.notifiers.RunDeadlineMissed"


def test_missed_deadline_callback_mails_the_run(monkeypatch, smtp_sink):
    """The callback as the triggerer runs it (CallbackTrigger), with the context the scheduler builds."""
    from airflow.triggers.callback import CallbackTrigger

    monkeypatch.setenv(DEADLINE_ENV, "45")
    monkeypatch.setenv("VEEAM_ALERT_RECIPIENTS", "oncall@example.com")
    (alert,) = load_dag().deadline
    context = {
        "dag_run": {
            "dag_id": "veeam_storage_efficiency",
            "dag_run_id": "scheduled__2026-11-27T00:00:00+00:00",
            "state": "running",
            "queued_at": "2026-11-28T00:00:05+00:00",
            "conf": {"alert_recipients": ["night-shift@example.com"]},  # a run's own recipients win
        },
        "deadline": {"id": "0", "deadline_time": "2026-11-28T00:45:05+00:00"},
    }
    trigger = CallbackTrigger(
        callback_path=alert.callback.path, callback_kwargs={**alert.callback.kwargs, "context": context}
    )

    async def run() -> list:
        return [event.payload async for event in trigger.run()]

    payloads = asyncio.run(run())

    assert payloads[-1]["state"] == "success", payloads
    assert len(smtp_sink.mails) == 1
    mail = smtp_sink.mails[0]
    assert mail.recipients == ["night-shift@example.com"]
    assert (
        "run not finished by its deadline: veeam_storage_efficiency scheduled__2026-11-27T00:00:00+00:00"
        in mail.subject
    )
    assert "Deadline:  2026-11-28T00:45:05+00:00" in mail.text
    assert "Queued at: 2026-11-28T00:00:05+00:00" in mail.text
