"""Delivery: e-mail and the alert hook are independent, and a missing connection is not an error."""

from __future__ import annotations

import json

import pytest
from hook_recorder import recorded
from smtp_sink import free_port

from veeam_efficiency.airflow.notifiers import deliver
from veeam_efficiency.alerts import Alert
from veeam_efficiency.settings import AlertSettings

ALERT = Alert(subject="[Veeam storage efficiency] test", text="body\n")


def test_email_and_hook_both_hear(smtp_sink, hook_log):
    sent = deliver(ALERT, settings=AlertSettings(alert_recipients=["ops@example.com"]), context={})
    assert sent == ["email:ops@example.com", "hook:hook_recorder.record"]
    assert [mail.subject for mail in smtp_sink.mails] == [ALERT.subject]
    assert smtp_sink.mails[0].text == "body\n"
    assert [alert["subject"] for alert in recorded(str(hook_log))] == [ALERT.subject]


def test_a_dead_smtp_server_still_lets_the_hook_hear_then_fails(monkeypatch, hook_log):
    connection = {"conn_type": "smtp", "host": "127.0.0.1", "port": free_port(), "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 2, "retry_limit": 1}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(connection))
    with pytest.raises(Exception, match=r"(?i)connect|refused"):
        deliver(ALERT, settings=AlertSettings(alert_recipients=["ops@example.com"]), context={})
    assert [alert["subject"] for alert in recorded(str(hook_log))] == [ALERT.subject]


def test_no_connection_and_no_hook_sends_nothing_and_does_not_raise(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    monkeypatch.delenv("VEEAM_ALERT_HOOK", raising=False)
    assert deliver(ALERT, settings=AlertSettings(alert_recipients=["ops@example.com"]), context={}) == []


def test_no_recipients_no_mail(smtp_sink):
    assert deliver(ALERT, settings=AlertSettings(alert_recipients=[]), context={}) == []
    assert smtp_sink.mails == []
