"""Getting alerts out: Airflow notifiers for failed tasks and late runs, and the delivery they share.

Delivery (:func:`deliver`) uses the SMTP provider's ``SmtpNotifier`` when the SMTP
connection exists (looked up when the alert fires, never at parse time) and there are
recipients, then the optional alert hook: env ``VEEAM_ALERT_HOOK`` names a callable
``hook(alert, context)`` (``package.module.function``) that posts the same
:class:`~veeam_efficiency.alerts.Alert` to Slack, Teams or anything else. No SMTP
connection is not an error: the run is not disturbed, the alert is logged.

Imports stay light (the DAG file imports this module at parse time); providers are
imported when an alert is sent.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from veeam_efficiency import alerts
from veeam_efficiency.settings import AlertSettings

log = logging.getLogger(__name__)

HOOK_ENV = "VEEAM_ALERT_HOOK"
DEADLINE_ENV = "VEEAM_RUN_DEADLINE_MINUTES"
# Off unless configured (docker-compose.yaml sets 360: the midnight run finished by 06:00 UTC).
# Airflow 3.3's `airflow dags test` of a DAG with a Deadline Alert exits 1 after a successful
# run (apache/airflow#73428, fixed by #73430, not released): a user's first command must not.
DEFAULT_DEADLINE_MINUTES = 0
DEFAULT_FROM = "airflow-veeam-efficiency@localhost"


def alert_settings(params: Any) -> AlertSettings:
    """The run's alert Params; the defaults when they are missing or invalid (an alert must still go out)."""
    try:
        return AlertSettings.model_validate(dict(params or {}))
    except Exception:  # the run itself reports invalid Params; the alert uses the defaults
        log.warning("alert Params invalid, using the defaults", exc_info=True)
        return AlertSettings()


def smtp_connection(conn_id: str) -> Any | None:
    """The SMTP connection, or None when it is not configured."""
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or no secrets backend reachable
        log.info("no SMTP connection %r (%s): alert not e-mailed", conn_id, exc)
        return None


def deliver(alert: alerts.Alert, *, settings: AlertSettings, context: Any) -> list[str]:
    """Send ``alert`` by e-mail (when SMTP is configured) and to the alert hook (when set); the channels used.

    Both channels are tried; if one fails, its error is raised after the other was tried.
    """
    channels: list[str] = []
    errors: list[Exception] = []
    if not settings.alert_recipients:
        log.info("no alert recipients: alert not e-mailed")
    elif (conn := smtp_connection(settings.smtp_conn_id)) is not None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        try:
            SmtpNotifier(
                to=list(settings.alert_recipients),
                from_email=conn.extra_dejson.get("from_email") or DEFAULT_FROM,
                subject=alert.subject,
                html_content=alert.html,
                smtp_conn_id=settings.smtp_conn_id,
            ).notify(context)  # notify(), not __call__: the text is data, never a Jinja template
            channels.append(f"email:{','.join(settings.alert_recipients)}")
        except Exception as exc:
            log.exception("alert e-mail through %r failed", settings.smtp_conn_id)
            errors.append(exc)
    if hook_path := os.environ.get(HOOK_ENV, "").strip():
        try:
            module, _, name = hook_path.rpartition(".")
            getattr(importlib.import_module(module), name)(alert, context)
            channels.append(f"hook:{hook_path}")
        except Exception as exc:
            log.exception("alert hook %r failed", hook_path)
            errors.append(exc)
    log.info("alert %r sent to %s", alert.subject, channels or "nobody")
    if errors:
        raise errors[0]
    return channels


class TaskFailureAlert(BaseNotifier):
    """``on_failure_callback``: says which task failed on which VBR host, at which try, and links its log.

    Never raises: a missing SMTP server must not hide the task's own error. Subclass and
    override :meth:`send` to route failures elsewhere.
    """

    def __init__(self, hosts_task_id: str = "list_vbr_hosts", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hosts_task_id = hosts_task_id

    def notify(self, context: Any) -> None:
        try:
            ti = context["ti"]
            alert = alerts.task_failure(
                dag_id=ti.dag_id,
                task_id=ti.task_id,
                vbr_host=self.vbr_host(ti),
                try_number=ti.try_number,
                max_tries=ti.max_tries,
                run_id=ti.run_id,
                log_url=ti.log_url,
                error=context.get("exception"),
            )
            self.send(alert, context)
        except Exception:
            log.exception("the task failure alert could not be sent")

    def send(self, alert: alerts.Alert, context: Any) -> None:
        deliver(alert, settings=alert_settings(context.get("params")), context=context)

    def vbr_host(self, ti: Any) -> str | None:
        """The mapped instance's VBR host: its rendered map index (collect sets it), else the host list."""
        if getattr(ti, "rendered_map_index", None):
            return str(ti.rendered_map_index)
        if ti.map_index is None or ti.map_index < 0:
            return None
        try:
            return str(ti.xcom_pull(task_ids=self.hosts_task_id)[ti.map_index]["vbr_host"])
        except Exception:
            return f"map index {ti.map_index}"


class RunDeadlineMissed(BaseNotifier):
    """Deadline Alert callback, run by the triggerer when a run is not finished in time.

    The triggerer hands over a small context (the DAG run, the deadline), not the task
    context: the recipients and SMTP connection come from the DAG's defaults, overridden
    by the run's conf when it sets them.
    """

    def __init__(self, smtp_conn_id: str, recipients: list[str], context: Any = None) -> None:
        super().__init__(context=context)
        self.smtp_conn_id = smtp_conn_id
        self.recipients = recipients

    def build(self, context: Any) -> tuple[alerts.Alert, AlertSettings]:
        run = context.get("dag_run") or {}
        deadline = context.get("deadline") or {}
        defaults = {"smtp_conn_id": self.smtp_conn_id, "alert_recipients": self.recipients}
        settings = alert_settings({**defaults, **(run.get("conf") or {})})
        alert = alerts.run_deadline_missed(
            dag_id=str(run.get("dag_id", "-")),
            run_id=str(run.get("dag_run_id") or run.get("run_id") or "-"),
            state=run.get("state"),
            queued_at=_text(run.get("queued_at")),
            deadline_time=_text(deadline.get("deadline_time")),
        )
        return alert, settings

    def notify(self, context: Any) -> None:
        alert, settings = self.build(context)
        deliver(alert, settings=settings, context=context)

    async def async_notify(self, context: Any) -> None:
        await asyncio.to_thread(self.notify, context)  # SMTP and the hook are blocking calls


def run_deadline(dag_params: dict[str, Any] | None = None) -> DeadlineAlert | None:
    """Alert when a run is not finished ``VEEAM_RUN_DEADLINE_MINUTES`` after it was queued; unset or 0: off.

    Measured from the queue time, not the logical date: with 360 the midnight run gets until
    06:00, and a backfill of an old day is not late by definition. Read from the environment,
    so parsing the DAG never touches the database. Off by default: Airflow 3.3's ``dag.test``
    / ``airflow dags test`` fails at the end of a successful run of a DAG with a deadline (it
    looks the deadline up by its definition instead of its database id, apache/airflow#73428).
    """
    minutes = int(os.environ.get(DEADLINE_ENV) or DEFAULT_DEADLINE_MINUTES)
    if minutes < 0:
        raise ValueError(f"{DEADLINE_ENV} must be 0 (off) or a number of minutes, got {minutes}")
    if minutes == 0:
        return None
    settings = alert_settings(dag_params)
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(
            RunDeadlineMissed,
            kwargs={"smtp_conn_id": settings.smtp_conn_id, "recipients": list(settings.alert_recipients)},
        ),
        name="veeam_run_deadline",
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def send_degradation_summary(loaded: Any, params: Any, context: Any) -> dict[str, Any]:
    """After the hosts loaded: one alert listing this run's flagged jobs; what was sent, for the XCom.

    ``loaded`` is what the mapped ``load`` returned: Airflow hands over a sequence, but a
    single dict when only one host loaded and None when none did.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from veeam_efficiency.flagged_jobs import job_scorecards
    from veeam_efficiency.settings import CollectionSettings

    settings = alert_settings(params)
    from veeam_efficiency.airflow.assets import loaded_runs

    pairs = [(str(run["vbr_host"]), str(run["analysis_date"])) for run in loaded_runs(loaded)]
    if not settings.alert_on_degradation:
        return {"hosts_loaded": len(pairs), "flagged_jobs": None, "sent_to": [], "reason": "alert_on_degradation off"}
    conn_id = CollectionSettings.model_validate(dict(params or {})).postgres_conn_id
    with PostgresHook(postgres_conn_id=conn_id).get_conn() as conn:
        cards = job_scorecards(conn, pairs, flagged_only=True)
    alert = alerts.degradation_summary(cards, dag_id=context["dag"].dag_id, run_id=context["run_id"])
    sent = deliver(alert, settings=settings, context=context) if alert else []
    return {"hosts_loaded": len(pairs), "flagged_jobs": len(cards), "sent_to": sent}
