"""The collector document validated in chunks straight into columns, for large servers.

:func:`~veeam_efficiency.contract.parse_document` returns a dict per session: for a
million sessions that is about 1.75 GiB of small Python objects and 10 s of pydantic.
Here ``msgspec`` splits the JSON into the header and one raw slice per session, and
decodes the sessions ``CHUNK`` at a time into ``Struct`` records built from the same
column registry, with the contract's rules (types, ranges, lengths, allowed values)
checked in C; each chunk then goes straight into typed columns (numpy arrays; repeated
text such as job ids is stored once). msgspec says a few things differently from
pydantic, so those are settled on the columns, the pydantic way:

- times: msgspec rounds digits beyond the microsecond where pydantic truncates them, so
  they are decoded as text, checked by pydantic's own ``AwareDatetime`` and converted
  by pandas, vectorised; within the years 1-9999 once in UTC, or not at all;
- no NUL in any text: looked for once in each distinct text (and every session id);
- the roll-up ``job_id`` ``*``: looked for among the distinct job ids.

Accepts exactly what ``parse_document`` accepts: whenever anything is wrong or in
doubt, the whole document is parsed again by ``parse_document``, so a broken document
fails with the very same ``ContractError``.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import attrgetter, itemgetter, methodcaller
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import pandas as pd
from pydantic import AwareDatetime, ConfigDict, TypeAdapter, ValidationError

from veeam_efficiency.contract import (
    DOCUMENT_ADAPTER,
    DOCUMENT_FIELDS,
    HOST_ROLLUP_JOB_ID,
    OPTIONAL_SESSION_FIELDS,
    PG_INT_MAX,
    SESSION_FIELDS,
    CollectorDocument,
    check_document,
    parse_document,
    text_length,
)
from veeam_efficiency.tables import SESSION_RECORD, Column

CHUNK = 50_000
KINDS = SESSION_RECORD.kinds
# every text but the session's own id has few distinct values per server: each is kept once
REPEATED_TEXT = frozenset(name for name, kind in KINDS.items() if kind == "text" and name not in SESSION_RECORD.key)
DTYPES: dict[str, Any] = {"time": "datetime64[us]", "int": np.int64, "bool": bool, "text": object}

_TIMES = TypeAdapter(list[AwareDatetime | None], config=ConfigDict(strict=True))
_UTC_RANGE = (np.datetime64("0001-01-01T00:00:00", "us"), np.datetime64("9999-12-31T23:59:59.999999", "us"))


class _Doubt(Exception):
    """The fast path cannot vouch for the document: ``parse_document`` decides."""


def _fast_type(column: Column) -> Any:
    """``column`` as msgspec checks it: the contract's type (``contract._contract_type``)
    but for times (text here, see the module docstring) and NUL (looked for on the columns)."""
    if column.values:  # noqa: PD011 - the registry's allowed values, not pandas
        value: Any = Literal[column.values]  # noqa: PD011
    elif column.kind == "text":
        shortest, longest = text_length(column)
        value = Annotated[str, msgspec.Meta(min_length=shortest, max_length=longest)]
    elif column.kind == "int":
        value = Annotated[int, msgspec.Meta(ge=0, le=PG_INT_MAX[column.pg_type])]
    elif column.kind in ("bool", "time"):
        value = bool if column.kind == "bool" else str
    else:
        raise TypeError(f"no fast contract type for {column}")
    if column.optional and not column.nullable:
        raise TypeError(f"{column.name}: an optional field must be nullable (absent reads as null)")
    return value | None if column.nullable else value


# required fields first, as a Struct wants; absent optional ones read as null; not tracked
# by the garbage collector (it holds no containers)
_SESSION = msgspec.defstruct(
    "FastSession",
    [
        (column.name, _fast_type(column)) if not column.optional else (column.name, _fast_type(column), None)
        for column in sorted(SESSION_RECORD.columns, key=attrgetter("optional"))
    ],
    gc=False,
)
# msgspec hands every value of a Literal field as the one object of the Literal: no need to share them
_LITERALS = frozenset(column.name for column in SESSION_RECORD.columns if column.values)  # noqa: PD011
_FIELD_GETTERS = {name: attrgetter(name) for name in SESSION_FIELDS}
_REQUIRED = tuple(name for name in SESSION_FIELDS if name not in OPTIONAL_SESSION_FIELDS)
_REQUIRED_VALUES = itemgetter(*_REQUIRED)
_OPTIONAL_VALUES = {name: methodcaller("get", name) for name in OPTIONAL_SESSION_FIELDS}  # absent (v1): None
_SESSIONS_DECODER = msgspec.json.Decoder(list[_SESSION])  # type: ignore[valid-type]
# the document with each header field raw (pydantic reads them) and each session raw; one pass
_HEADER = tuple(name for name in DOCUMENT_FIELDS if name != "sessions")
_TOP = msgspec.defstruct(
    "FastDocument",
    [(name, msgspec.Raw | msgspec.UnsetType, msgspec.UNSET) for name in _HEADER]
    + [("sessions", list[msgspec.Raw] | msgspec.UnsetType, msgspec.UNSET)],
)


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
        with _no_gc():
            document = _columns(_utf8(text))
    except (msgspec.MsgspecError, ValidationError, UnicodeError, _Doubt):
        document = None
    if document is None:
        return _from_records(parse_document(text))  # raises the same ContractError, or agrees
    check_document(document)
    return document


def _utf8(text: str | bytes) -> str | bytes | memoryview:
    """The document as msgspec reads it, copied only where it must be. An ASCII ``str`` is
    read in place (its characters are its UTF-8 bytes). Another ``str`` is encoded into a copy
    freed on return: letting msgspec encode it would keep that copy attached to the caller's
    string for as long as the caller holds it. A BOM is stepped over, not cut off (a cut is a
    copy of the whole document)."""
    if isinstance(text, str):
        if text.isascii():
            return text
        text = text.encode()
    return memoryview(text)[3:] if text.startswith(b"\xef\xbb\xbf") else text


@contextmanager
def _no_gc() -> Iterator[None]:
    """Millions of fresh, cycle-free objects would trigger full collections that find nothing
    (a third of the parse time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _columns(data: str | bytes | memoryview) -> CollectorDocument:
    top = msgspec.json.decode(data, type=_TOP)
    sessions = top.sessions  # type: ignore[attr-defined]
    if sessions is msgspec.UNSET:
        raise _Doubt
    header = b",".join(
        msgspec.json.encode(name) + b":" + bytes(raw)
        for name in _HEADER
        if (raw := getattr(top, name)) is not msgspec.UNSET
    )
    document = DOCUMENT_ADAPTER.validate_json(b"{" + header + (b"," if header else b"") + b'"sessions":[]}')
    del top, data
    builder = _ColumnBuilder(len(sessions), shared=_LITERALS)
    for chunk in _chunks(sessions):
        records = _SESSIONS_DECODER.decode(chunk)
        del chunk
        builder.add({name: map(get, records) for name, get in _FIELD_GETTERS.items()}, len(records), _times)
        del records
    del sessions
    columns = builder.columns()
    if HOST_ROLLUP_JOB_ID in builder.distinct("job_id") or _holds_nul(columns, builder):
        raise _Doubt
    document["sessions"] = columns  # type: ignore[typeddict-item]
    return document


def _chunks(sessions: list[msgspec.Raw]) -> Iterator[bytes]:
    """The sessions as JSON arrays of at most ``CHUNK`` sessions, each cut out of the document
    in one piece: msgspec's raw sessions are views into the document, in order, so a chunk
    runs from where its first session starts to where its last one ends (joining ``CHUNK``
    slices instead costs a fifth of the parse; cutting from a raw ``sessions`` array would
    read the whole document once more, a tenth)."""
    for start in range(0, len(sessions), CHUNK):
        first, last = sessions[start], sessions[min(start + CHUNK, len(sessions)) - 1]
        begin, end = _address(first), _address(last) + len(last)
        if end < begin + len(first):
            raise _Doubt  # not views into one document, in order: msgspec changed
        yield b"".join((b"[", (ctypes.c_char * (end - begin)).from_address(begin), b"]"))


def _address(raw: msgspec.Raw) -> int:
    return int(np.frombuffer(raw, dtype=np.uint8).ctypes.data)


def _holds_nul(columns: dict[str, np.ndarray], builder: _ColumnBuilder) -> bool:
    """Whether any text holds NUL, the one character msgspec lets through and the contract does
    not: every other text is one of few distinct values, so only those and the session ids are
    read (scanning the JSON for ``\\u0000`` instead reads the whole document once more)."""
    (key,) = SESSION_RECORD.key
    distinct = chain.from_iterable(builder.distinct(name) for name in REPEATED_TEXT)
    return "\x00" in "".join(chain(columns[key], distinct))


def _times(values: Sequence[str | None]) -> np.ndarray:
    """Time text the contract accepts (pydantic's parser says which) as UTC ``datetime64[us]``."""
    _TIMES.validate_json(msgspec.json.encode(values))
    try:
        times = _utc_times(values, format="ISO8601")
    except (ValueError, OverflowError):
        raise _Doubt from None  # pydantic's reading, which pandas does not share
    present = times[~np.isnat(times)]
    if present.size and (present.min() < _UTC_RANGE[0] or present.max() > _UTC_RANGE[1]):
        raise _Doubt  # outside the years 1-9999 once in UTC: the contract says why
    return times


def _utc_times(values: Sequence[Any], format: str | None = None) -> np.ndarray:
    """Aware datetimes, or time text in ``format``, and None, as UTC ``datetime64[us]`` (NaT)."""
    times = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format=format)
    return times.dt.tz_localize(None).to_numpy("datetime64[us]")


def _from_records(document: CollectorDocument) -> CollectorDocument:
    sessions = document["sessions"]
    builder = _ColumnBuilder(len(sessions))
    if sessions:
        columns: dict[str, Iterable[Any]] = dict(
            zip(_REQUIRED, zip(*map(_REQUIRED_VALUES, sessions), strict=True), strict=True)
        )
        columns |= {name: map(get, sessions) for name, get in _OPTIONAL_VALUES.items()}
        builder.add(columns, len(sessions), _utc_times)
    document["sessions"] = builder.columns()  # type: ignore[typeddict-item]
    return document


class _Interned(dict[Any, Any]):
    """Each value it is asked for, as the first equal one it was asked for: the look-up of a
    value seen before stays in C, and a text repeated in every session is held once."""

    def __missing__(self, value: Any) -> Any:
        self[value] = value
        return value


class _ColumnBuilder:
    """Chunks of values per field in, one typed array per field out, sized up front (gathering
    the chunks and concatenating them would copy every column once more)."""

    def __init__(self, size: int, shared: frozenset[str] = frozenset()) -> None:
        """``size``: the sessions in all; ``shared``: text fields whose values arrive as shared objects already."""
        self._columns = {name: np.empty(size, dtype=DTYPES[KINDS[name]]) for name in SESSION_FIELDS}
        self._filled = 0
        self._distinct = {name: _Interned() for name in REPEATED_TEXT}
        self._repeated = REPEATED_TEXT - shared

    def add(self, columns: dict[str, Iterable[Any]], size: int, times: Callable[[Sequence[Any]], np.ndarray]) -> None:
        """One chunk: ``size`` values of every field (numpy reads them straight from the iterable,
        a third faster than from a list made first)."""
        at = slice(self._filled, self._filled + size)
        for name, values in columns.items():
            column = self._columns[name][at]
            if KINDS[name] == "time":
                column[:] = times(list(values))
                continue
            if name in self._repeated:  # one object per distinct value, across chunks
                values = map(self._distinct[name].__getitem__, values)
            column[:] = np.fromiter(values, dtype=column.dtype, count=size)
        self._filled += size

    def distinct(self, name: str) -> list[str]:
        """The distinct values of repeated text field ``name`` seen so far (nulls aside)."""
        return [value for value in self._distinct[name] if value is not None]

    def columns(self) -> dict[str, np.ndarray]:
        if self._filled != len(self._columns[SESSION_FIELDS[0]]):
            raise ValueError(f"{self._filled} sessions added of {len(self._columns[SESSION_FIELDS[0]])}")
        return self._columns
