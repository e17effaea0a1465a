"""A real SMTP server's message store, parsed the way a mail client shows the messages."""

from __future__ import annotations

import email
import email.policy
import html
import re
import socket
from dataclasses import dataclass, field
from typing import Any


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
