"""The one error a collector raises, and the check that turns a finished run into it.

Anything raised here is transient by design (exit code, timeout, empty or broken stdout,
SSH trouble): the task should be retried. A document that is well-formed JSON but breaks
the contract is the caller's business (``contract.parse_document``) and is not retried.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 4000  # one runaway line must not flood the task log


class CollectorConfigError(ValueError):
    """The collector cannot run as configured (e.g. an SSH connection that skips host key checks): do not retry."""


class CollectorError(RuntimeError):
    """Collection failed in a way a retry may fix (exit code, timeout, empty or non-JSON stdout, SSH failure)."""

    def __init__(self, message: str, *, exit_code: int | None = None, stderr_tail: str = "") -> None:
        self.message = message
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        super().__init__(self._render())

    def _render(self) -> str:
        code = "none" if self.exit_code is None else str(self.exit_code)
        tail = self.stderr_tail or "(empty)"
        return f"{self.message} [exit code: {code}]\nstderr (last {STDERR_TAIL_LINES} lines):\n{tail}"

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only arguments would otherwise be lost when the exception is pickled
        return (_rebuild, (self.message, self.exit_code, self.stderr_tail))


def _rebuild(message: str, exit_code: int | None, stderr_tail: str) -> CollectorError:
    return CollectorError(message, exit_code=exit_code, stderr_tail=stderr_tail)


def stderr_tail(stderr: bytes | str | None) -> str:
    """The last lines of stderr, decoded leniently, for error messages."""
    if not stderr:
        return ""
    text = stderr.decode("utf-8", errors="replace") if isinstance(stderr, bytes) else stderr
    tail = "\n".join(text.rstrip().splitlines()[-STDERR_TAIL_LINES:])
    return tail if len(tail) <= STDERR_TAIL_CHARS else "..." + tail[-STDERR_TAIL_CHARS:]


_OBJECT = object()


def _discard(_pairs: list[tuple[str, Any]]) -> object:
    return _OBJECT


def check_output(exit_code: int, stdout: bytes, stderr: bytes, where: str) -> str:
    """Return stdout as ASCII text (:mod:`~veeam_efficiency.collectors.ascii_text`) if the run
    succeeded and printed one JSON object, else raise.

    The JSON is only checked for well-formedness: every object is dropped as soon as it is
    parsed, so a million-session document costs little beyond its text. A collector killed
    mid-output leaves truncated JSON, which lands here rather than in the contract check.
    """
    from veeam_efficiency.collectors.ascii_text import ascii_json  # numpy: not at DAG parse time

    tail = stderr_tail(stderr)
    if exit_code != 0:
        raise CollectorError(f"collector on {where} failed", exit_code=exit_code, stderr_tail=tail)
    try:
        text = ascii_json(stdout.removeprefix(codecs.BOM_UTF8))  # Windows PowerShell 5.1 may write a BOM
    except UnicodeDecodeError as exc:
        raise CollectorError(
            f"collector on {where} wrote stdout that is not UTF-8 ({exc})", exit_code=exit_code, stderr_tail=tail
        ) from None
    if not text.strip():
        raise CollectorError(f"collector on {where} printed nothing on stdout", exit_code=exit_code, stderr_tail=tail)
    try:
        parsed = json.loads(text, object_pairs_hook=_discard)
    except ValueError as exc:
        raise CollectorError(
            f"collector on {where} printed stdout that is not JSON ({len(stdout)} bytes, truncated?): {exc}",
            exit_code=exit_code,
            stderr_tail=tail,
        ) from None
    if parsed is not _OBJECT:
        raise CollectorError(
            f"collector on {where} printed JSON that is not an object", exit_code=exit_code, stderr_tail=tail
        )
    return text
