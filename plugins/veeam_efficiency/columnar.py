"""The collector document validated in chunks straight into columns, for large servers.

:func:`~veeam_efficiency.contract.parse_document` returns a dict per session: for a
million sessions that is about 1.75 GiB of small Python objects, on top of the JSON
text. Here ``msgspec`` only splits the JSON into the header and one raw slice per
session; pydantic then validates the slices against the same ``Session`` contract,
``CHUNK`` at a time, and each chunk goes straight into typed columns (numpy arrays;
repeated text such as job ids is stored once). Accepts exactly what ``parse_document``
accepts: whenever anything is wrong, the whole document is parsed again by
``parse_document``, so a broken document fails with the very same ``ContractError``.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import msgspec
import numpy as np
import pandas as pd
from pydantic import ValidationError

from veeam_efficiency.contract import (
    DOCUMENT_ADAPTER,
    SESSION_FIELDS,
    SESSIONS_ADAPTER,
    CollectorDocument,
    check_document,
    parse_document,
)
from veeam_efficiency.tables import SESSION_RECORD

CHUNK = 50_000
KINDS = SESSION_RECORD.kinds
# every text but the session's own id has few distinct values per server: each is kept once
REPEATED_TEXT = frozenset(name for name, kind in KINDS.items() if kind == "text" and name not in SESSION_RECORD.key)
DTYPES: dict[str, Any] = {"time": "datetime64[us]", "int": np.int64, "bool": bool, "text": object}

_FIELD_VALUES = itemgetter(*SESSION_FIELDS)


def parse_document_columns(text: str | bytes) -> CollectorDocument:
    """Like :func:`~veeam_efficiency.contract.parse_document`, with ``sessions`` as columns.

    ``sessions`` is ``{field: numpy array}`` (times as UTC ``datetime64[us]``, NaT for a
    missing ``end_time``), which :func:`veeam_efficiency.sessions.sessions_frame` reads.

    Raises
    ------
    ContractError
        Exactly as ``parse_document`` does, with the same message.
    """
    try:
        # from a str, a bytes copy that is freed on return: letting msgspec encode it would
        # keep a UTF-8 copy attached to the caller's string for as long as the caller holds it
        data = text.removeprefix("\ufeff").encode() if isinstance(text, str) else text.removeprefix(b"\xef\xbb\xbf")
        document = _columns_or_none(data)
    except (msgspec.DecodeError, ValidationError, UnicodeError):
        document = None
    if document is None:
        return _from_records(parse_document(text))  # raises the same ContractError, or agrees
    check_document(document)
    return document


def _columns_or_none(data: bytes) -> CollectorDocument | None:
    top = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
    if "sessions" not in top:
        return None
    sessions = msgspec.json.decode(top.pop("sessions"), type=list[msgspec.Raw])
    header = b",".join(msgspec.json.encode(key) + b":" + bytes(raw) for key, raw in top.items())
    document = DOCUMENT_ADAPTER.validate_json(b"{" + header + (b"," if header else b"") + b'"sessions":[]}')
    del top, data
    builder = _ColumnBuilder()
    for start in range(0, len(sessions), CHUNK):
        chunk = SESSIONS_ADAPTER.validate_json(b"[" + b",".join(sessions[start : start + CHUNK]) + b"]")
        builder.add(chunk)
        del chunk
    del sessions
    document["sessions"] = builder.columns()  # type: ignore[typeddict-item]
    return document


def _from_records(document: CollectorDocument) -> CollectorDocument:
    builder = _ColumnBuilder()
    builder.add(document["sessions"])
    document["sessions"] = builder.columns()  # type: ignore[typeddict-item]
    return document


class _ColumnBuilder:
    """Validated session dicts in, one typed array per field out."""

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in SESSION_FIELDS}
        self._distinct: dict[str, dict[str, str]] = {name: {} for name in REPEATED_TEXT}

    def add(self, sessions: list[Any]) -> None:
        if not sessions:
            return
        rows = list(map(_FIELD_VALUES, sessions))
        for name, values in zip(SESSION_FIELDS, zip(*rows, strict=True), strict=True):
            self._parts[name].append(self._array(name, values))

    def _array(self, name: str, values: tuple[Any, ...]) -> np.ndarray:
        kind = KINDS[name]
        if kind == "time":
            times = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
            return times.dt.tz_localize(None).to_numpy("datetime64[us]")
        if kind != "text":
            return np.array(values, dtype=DTYPES[kind])
        if name in REPEATED_TEXT:
            seen = self._distinct[name]
            values = tuple(map(seen.setdefault, values, values))
        column = np.empty(len(values), dtype=object)
        column[:] = values
        return column

    def columns(self) -> dict[str, np.ndarray]:
        return {
            name: np.concatenate(parts) if parts else np.empty(0, dtype=DTYPES[KINDS[name]])
            for name, parts in self._parts.items()
        }
