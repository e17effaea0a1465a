"""A real SMTP server (aiosmtpd) on a free loopback port, and the SMTP connection pointing at it."""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))  # dag_runner, shared with the e2e tests


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    subject: str
    text: str  # the HTML body with tags removed and entities decoded


@dataclass
class SmtpSink:
    """Collects every message the server accepts."""

    port: int
    received: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd handler hook
        self.received.append(envelope)
        return "250 OK"

    @property
    def mails(self) -> list[Mail]:
        out = []
        for envelope in self.received:
            message = email.message_from_bytes(
                envelope.original_content or envelope.content, policy=email.policy.default
            )
            body = message.get_body(preferencelist=("html", "plain"))
            content = body.get_content() if body is not None else ""
            out.append(
                Mail(
                    sender=envelope.mail_from,
                    recipients=list(envelope.rcpt_tos),
                    subject=str(message["subject"]),
                    text=html.unescape(re.sub(r"<[^>]+>", "", content)),
                )
            )
        return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
