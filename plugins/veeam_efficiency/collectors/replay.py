"""The replay collector: collector JSON files exported earlier, re-analysed as if collected now.

Asked for a window, it answers like the script does: the sessions created in it, and the
window in the document's ``window_start``/``window_end``.
"""

from __future__ import annotations

import codecs
import os
from datetime import UTC, datetime
from itertools import compress
from pathlib import Path

import msgspec
import pandas as pd

from veeam_efficiency.collectors.ascii_text import ascii_json
from veeam_efficiency.contract import ContractError

BUNDLED_SAMPLE_DIR = Path(__file__).resolve().parents[3] / "include" / "sample_data"


def replay_dir() -> Path:
    """The directory replay files must live in: env ``VEEAM_REPLAY_DIR``, else the bundled sample data."""
    return Path(os.environ.get("VEEAM_REPLAY_DIR") or BUNDLED_SAMPLE_DIR).resolve()


def replay_files(replay_path: str, root: Path | None = None) -> list[Path]:
    """The contract files ``replay_path`` names: one file, or every ``*.json`` in a directory.

    Refuses any path that resolves outside the replay directory (``..``, absolute
    paths, symlinks out), so a run-time Param cannot read arbitrary files.
    """
    root = (root or replay_dir()).resolve()
    target = (root / replay_path).resolve()
    if not target.is_relative_to(root):
        raise ContractError(f"replay_path {replay_path!r} is outside the replay directory {root}")
    if target.is_dir():
        files = sorted(path for path in target.glob("*.json") if path.resolve().is_relative_to(root))
        if not files:
            raise ContractError(f"no *.json collector files in {target}")
        return files
    if not target.is_file():
        raise ContractError(f"replay file {target} does not exist")
    return [target]


def read_replay_file(path: str, root: Path | None = None, window: tuple[datetime, datetime] | None = None) -> str:
    """The file's text (only the sessions created in ``window``, when given), after checking again
    that it is inside the replay directory."""
    root = (root or replay_dir()).resolve()
    target = Path(path).resolve()
    if not target.is_relative_to(root):
        raise ContractError(f"replay file {path!r} is outside the replay directory {root}")
    data = target.read_bytes().removeprefix(codecs.BOM_UTF8)
    return ascii_json(data if window is None else in_window(data, *window))  # as the script's output reaches validate


class _Created(msgspec.Struct, gc=False):  # a million of them: not tracked by the garbage collector
    creation_time: str | None = None


def in_window(text: bytes, start: datetime, end: datetime) -> bytes:
    """``text`` with only the sessions created in ``[start, end)`` and that window as its own.

    A document that is not a JSON object with a list of sessions comes back as it is, and so
    does a session whose creation time does not parse: validation says what is wrong with them.
    """
    try:
        document = msgspec.json.decode(text, type=dict[str, msgspec.Raw])
        sessions = document.get("sessions", msgspec.Raw(b"[]"))
        raws = msgspec.json.decode(sessions, type=list[msgspec.Raw])
        created = msgspec.json.decode(sessions, type=list[_Created])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return text
    times = pd.to_datetime(
        pd.Series([session.creation_time for session in created], dtype=object),
        utc=True,
        format="ISO8601",
        errors="coerce",
    )
    outside = ((times < pd.Timestamp(start)) | (times >= pd.Timestamp(end))).to_numpy()
    document["sessions"] = msgspec.Raw(b"[" + b",".join(compress(raws, ~outside)) + b"]")
    for name, value in (("window_start", start), ("window_end", end)):
        document[name] = msgspec.Raw(msgspec.json.encode(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return msgspec.json.encode(document)
