"""A real SMTP server (aiosmtpd) on a free loopback port, and the SMTP connection pointing at it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))  # dag_runner, shared with the e2e tests

from smtp_sink import SmtpSink, free_port


@pytest.fixture
def smtp_sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    """An SMTP server on 127.0.0.1, registered as the ``smtp_default`` connection (env)."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    connection = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": sink.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@ops.example.com", "timeout": 10},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(connection))
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def hook_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The alert hook (VEEAM_ALERT_HOOK) set to a recorder writing one JSON line per alert."""
    path = tmp_path / "alert-hook.jsonl"
    monkeypatch.setenv("VEEAM_ALERT_HOOK", "hook_recorder.record")
    monkeypatch.setenv("VEEAM_TEST_ALERT_HOOK_LOG", str(path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    return path
