"""The one builder of collector documents for tests: a valid session record and a valid document.

Each test states only what it changes (``session(..., result="Failed")``,
``document(sessions, window_end=...)``); the rest is a plausible, contract-valid default.
Large seeded documents come from ``tools.synthetic`` instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

HOST = "vbr01.example.test"
VBR_VERSION = "12.3.1.1139"
DAY_START = datetime(2026, 11, 26, tzinfo=UTC)
DAY_END = datetime(2026, 11, 27, tzinfo=UTC)


def iso(moment: Any) -> Any:
    """``YYYY-MM-DDTHH:MM:SSZ``; anything but a datetime is passed through, so a test can send any value."""
    if not isinstance(moment, datetime):
        return moment
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def session(
    session_id: str = "s-1",
    created: datetime | str = DAY_START + timedelta(hours=1),
    *,
    minutes: float | None = 30,
    **overrides: Any,
) -> dict[str, Any]:
    """One session record; ended ``minutes`` after it was created (``None``: still running)."""
    if minutes is None:
        ended: str | None = None
    elif isinstance(created, str):
        ended = iso(datetime.fromisoformat(created.replace("Z", "+00:00")) + timedelta(minutes=minutes))
    else:
        ended = iso(created + timedelta(minutes=minutes))
    return {
        "session_id": session_id,
        "job_id": "job-1",
        "job_name": "SQL Daily",
        "job_type": "Backup",
        "algorithm": "Increment",
        "result": "Success",
        "is_retry": False,
        "creation_time": iso(created),
        "end_time": ended,
        "data_size_bytes": 1_000_000,
        "backup_size_bytes": 400_000,
        "read_size_bytes": 900_000,
        "transferred_size_bytes": 450_000,
        "dedup_ratio_raw": 96,
        "compress_ratio_raw": 33,
    } | overrides


def document(
    sessions: list[dict[str, Any]] | None = None,
    *,
    window_start: Any = DAY_START,
    window_end: Any = DAY_END,
    **overrides: Any,
) -> dict[str, Any]:
    """A document over ``[window_start, window_end)``, collected 6 h after it ends; one session by default."""
    collected = window_end + timedelta(hours=6) if isinstance(window_end, datetime) else DAY_END + timedelta(hours=6)
    return {
        "schema_version": 1,
        "vbr_host": HOST,
        "vbr_version": VBR_VERSION,
        "collected_at": iso(collected),
        "window_start": iso(window_start),
        "window_end": iso(window_end),
        "sessions": [session()] if sessions is None else sessions,
    } | overrides


def document_text(sessions: list[dict[str, Any]] | None = None, *, ensure_ascii: bool = False, **overrides: Any) -> str:
    """:func:`document` as the JSON text a collector prints (``ensure_ascii``: non-ASCII as ``\\u`` escapes)."""
    return json.dumps(document(sessions, **overrides), ensure_ascii=ensure_ascii)


def newest_session(document: dict[str, Any]) -> dict[str, Any]:
    """The document's most recent session: inside any window a run asks for (collectors answer with
    the asked window only), so a test that breaks it breaks what the run reads."""
    return max(document["sessions"], key=lambda record: record["creation_time"])
