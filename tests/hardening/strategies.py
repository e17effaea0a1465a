"""Hypothesis strategies for hostile collector documents (a helper module, not a test module).

Two families:

* :func:`valid_documents` -- documents the contract accepts, built to be as awkward as a real
  VBR server can make them: hostile job names (quotes, backslashes, ``$(...)``, backticks,
  control characters, non-ASCII, emoji, the empty string, 10,000 characters), duplicate session
  ids, sessions in any order, times with odd offsets, in the future and before 1970, end times
  before creation times, sizes up to 2**63 - 1 and raw ratios from 0 to 2**31 - 1.
* :func:`hostile_texts` -- the same documents broken in every way a collector or a transport can
  break them: missing and extra fields, wrong types, NaN and Infinity (JSON tokens and strings),
  numbers past bigint, NUL, other schema versions, a top-level array, truncated JSON, bytes.

Every document is returned as JSON text together with the value it was made from, so a test can
compute its own expectations without trusting the package under test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from veeam_efficiency.contract import DOCUMENT_FIELDS, MAX_BIGINT, MAX_INT, SESSION_FIELDS

# The analysis window every property uses: 30 days ending at the run's data-interval end.
WINDOW_END = datetime(2026, 11, 27, tzinfo=UTC)
WINDOW_START = WINDOW_END - timedelta(days=30)

# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------

# Fragments that break naive quoting in SQL, shells, CSV, COPY, JSON, logs and terminals.
HOSTILE_FRAGMENTS = (
    '"', "'", "''", "\\", "\\\\", "\\N", "\\.", ";", "; DROP TABLE feature3.storage_efficiency_history; --",
    "$(whoami)", "$(rm -rf /)", "`hostname`", "${PATH}", "%s", "%(name)s", "{0}", "{}", "|", "&&", ">",
    "\t", "\n", "\r\n", "\r", "\x01", "\x1b[31m", "\x7f", "\x0b", "\x0c", "\x08",
    "\u2028", "\u2029", "\u200b", "\ufeff", "\ufffd", "\uffff", "\U0010ffff",
    "é", "ñ", "Zürich – täglich", "東京 SQL ログ", "Привет", "مرحبا", "😀", "👩‍👩‍👧", "🇩🇪",
    "NULL", "null", "None", "NaN", "nan", "-", "0", " ", "  leading and trailing  ",
)  # fmt: skip
NO_NUL = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))  # no NUL, no lone surrogates (not UTF-8)


def _long_text(fragment: str, length: int) -> str:
    return (fragment * (length // max(len(fragment), 1) + 1))[:length]


def hostile_text(*, min_size: int = 0, max_size: int = 10_000) -> st.SearchStrategy[str]:
    """Valid contract text (no NUL) between ``min_size`` and ``max_size`` code points."""
    short = st.one_of(
        st.text(NO_NUL, min_size=min_size, max_size=min(max_size, 24)),
        st.lists(st.sampled_from(HOSTILE_FRAGMENTS), min_size=1, max_size=5).map("".join),
        st.sampled_from(HOSTILE_FRAGMENTS),
    ).filter(lambda text: min_size <= len(text) <= max_size)
    options = [short]
    if min_size == 0:
        options.append(st.just(""))
    if max_size >= 1_000:
        # exactly the limit, or a little below it: drawn from a fragment, not char by char
        options.append(
            st.builds(_long_text, st.sampled_from(HOSTILE_FRAGMENTS), st.sampled_from([max_size, max_size - 1, 1_000]))
        )
    return st.one_of(*options)


JOB_NAMES = hostile_text(max_size=10_000)
IDENTIFIERS = hostile_text(min_size=1, max_size=200).filter(lambda text: text != "*")
HOSTS = hostile_text(min_size=1, max_size=253)
JOB_TYPES = st.one_of(st.sampled_from(["Backup", "BackupCopy", "NasBackup", ""]), hostile_text(max_size=10_000))
VBR_VERSIONS = st.one_of(st.sampled_from(["12.3.1.1139", "13.0.0.4967", ""]), hostile_text(max_size=10_000))

# ---------------------------------------------------------------------------------------------
# Times: written as local wall time + offset, exactly as a collector in another zone would.
# ---------------------------------------------------------------------------------------------

OFFSETS = ("Z", "+00:00", "-00:00", "+05:45", "-12:00", "+14:00", "+10:00", "-03:30", "+05:30", "+01:00")


def _render(utc: datetime, offset: str, fraction: bool) -> str:
    """``utc`` as ISO text in the zone ``offset`` (the same instant)."""
    if offset in ("Z", "+00:00", "-00:00"):
        local = utc
    else:
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        local = utc + sign * timedelta(hours=hours, minutes=minutes)
    text = local.replace(tzinfo=None).isoformat(timespec="microseconds" if fraction else "seconds")
    return text + offset


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """A UTC instant: mostly inside the window, else at or near its edges, far future, before 1970."""
    kind = draw(_INSTANT_KINDS)
    if kind == "inside":
        return WINDOW_START + timedelta(seconds=draw(_WINDOW_SECONDS))
    if kind == "edge":
        return draw(_EDGES) + timedelta(microseconds=draw(_EDGE_STEPS))
    if kind == "future":
        return draw(_FUTURE).replace(tzinfo=UTC)
    if kind == "past":
        return draw(_PAST).replace(tzinfo=UTC)
    return draw(_FAR)


_INSTANT_KINDS = st.sampled_from(["inside"] * 6 + ["edge", "future", "past", "far"])
_WINDOW_SECONDS = st.integers(0, int((WINDOW_END - WINDOW_START).total_seconds()) - 1)
_EDGES = st.sampled_from([WINDOW_START, WINDOW_END])
_EDGE_STEPS = st.sampled_from([-1, 0, 1, -1_000_000, 1_000_000])
_FUTURE = st.datetimes(datetime(2026, 11, 28), datetime(2300, 1, 1))
_PAST = st.datetimes(datetime(1900, 1, 2), datetime(1969, 12, 31, 23, 59, 59))
# pandas' nanosecond bounds and beyond; years 1 and 9999 are kept 2 days from the calendar's
# ends so every offset stays representable (parse_document's OverflowError is pinned separately)
_FAR = st.sampled_from(
    [
        datetime(1677, 9, 21, 0, 12, 43, tzinfo=UTC),
        datetime(2262, 4, 11, 23, 47, 17, tzinfo=UTC),
        datetime(1, 1, 3, tzinfo=UTC),
        datetime(9999, 12, 29, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
)


TIME_TEXT_STYLE = st.tuples(st.sampled_from(OFFSETS), st.booleans())

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

SIZES = st.one_of(
    st.integers(0, 10**13),
    st.sampled_from([0, 1, 10 * 2**20, 2**31, 2**53 + 1, MAX_BIGINT - 1, MAX_BIGINT]),
    st.integers(0, MAX_BIGINT),
)
RAW_RATIOS = st.one_of(
    st.integers(1, 100),
    st.sampled_from([0, 1, 100, 101, 150, 250, 400, 1000, 1001, 191_073, 2**31 - 1]),
    st.integers(0, MAX_INT),
)
# Plausible ratios (factor 1x - 5x), weighted in so jobs actually qualify for a scorecard.
PLAUSIBLE_RATIOS = st.integers(20, 100)
PLAUSIBLE_SIZES = st.integers(1_000_000, 10**12)

_END_KINDS = st.sampled_from(["after"] * 6 + ["null", "before", "same", "far"])
_DURATIONS = st.integers(1, 86_400)
_FAR_DAYS = st.integers(-700_000, 700_000)
_JOB_INDEX = (st.just(0), st.integers(0, 1), st.integers(0, 2))
_ALGORITHMS = st.sampled_from(["Full", "Increment", "Increment", "Increment", "Synthetic"])
_RESULTS = st.sampled_from(["Success"] * 6 + ["Warning", "Failed"])
_DAY_SECONDS = st.integers(0, 86_399)
_SPANS = st.integers(1, 10**8)
_ORDERS = st.sampled_from(["as drawn", "reversed", "by time", "by time reversed"])
_DOCUMENT_EXTRAS = st.sampled_from(["extra", "schemaVersion", "_comment", "sessions_total"])
_SESSION_EXTRAS = st.sampled_from(["VMName", "dedup_ratio", "excluded_reason", "Progress"])
_FEW = st.integers(0, 3)
_SOME = st.integers(1, 3)

# ---------------------------------------------------------------------------------------------
# Valid documents
# ---------------------------------------------------------------------------------------------


@st.composite
def sessions(draw: st.DrawFn, *, index: int, job_ids: list[str], job_names: list[str]) -> dict[str, Any]:
    """One session the contract accepts."""
    created = draw(instants())
    offset, fraction = draw(TIME_TEXT_STYLE)
    end_kind = draw(_END_KINDS)
    if end_kind == "null":
        end_text = None
    else:
        if end_kind == "after":
            delta = timedelta(seconds=draw(_DURATIONS))
        elif end_kind == "before":  # end_time before creation_time: a clock step, kept as is
            delta = -timedelta(seconds=draw(_DURATIONS))
        elif end_kind == "same":
            delta = timedelta(0)
        else:
            delta = timedelta(days=draw(_FAR_DAYS))
        try:
            ended = created + delta
        except OverflowError:
            ended = created
        if not datetime(1, 1, 3, tzinfo=UTC) <= ended <= datetime(9999, 12, 29, tzinfo=UTC):
            ended = created
        end_offset, end_fraction = draw(TIME_TEXT_STYLE)
        end_text = _render(ended, end_offset, end_fraction)
    plausible = draw(st.booleans())
    ratios = PLAUSIBLE_RATIOS if plausible else RAW_RATIOS
    job = draw(_JOB_INDEX[len(job_ids) - 1])
    renamed = draw(st.booleans()) and draw(st.booleans())  # a quarter of the sessions: another name
    return {
        "session_id": draw(IDENTIFIERS) if draw(st.booleans()) else f"s-{index:04d}",
        "job_id": job_ids[job],
        "job_name": draw(JOB_NAMES) if renamed else job_names[job],
        "job_type": draw(JOB_TYPES),
        "algorithm": draw(_ALGORITHMS),
        "result": draw(_RESULTS),
        "is_retry": draw(st.booleans()),
        "creation_time": _render(created, offset, fraction),
        "end_time": end_text,
        "data_size_bytes": draw(PLAUSIBLE_SIZES if plausible else SIZES),
        "backup_size_bytes": draw(SIZES),
        "read_size_bytes": draw(SIZES),
        "transferred_size_bytes": draw(SIZES),
        "dedup_ratio_raw": draw(ratios),
        "compress_ratio_raw": draw(ratios),
    }


@st.composite
def valid_documents(draw: st.DrawFn, *, max_sessions: int = 40, ensure_scorecard: bool = False) -> dict[str, Any]:
    """A document the contract accepts (as a JSON-ready dict), sessions in any order, with duplicates.

    ``ensure_scorecard`` adds six plausible, successful in-window sessions of the first job, so
    that job qualifies for a scorecard with ``min_sessions`` up to 6.
    """
    n_jobs = draw(_SOME)
    job_ids = draw(st.lists(IDENTIFIERS, min_size=n_jobs, max_size=n_jobs, unique=True))
    job_names = draw(st.lists(JOB_NAMES, min_size=n_jobs, max_size=n_jobs))
    count = draw(_COUNTS[max_sessions]) if max_sessions in _COUNTS else draw(st.integers(0, max_sessions))
    records = [draw(sessions(index=i, job_ids=job_ids, job_names=job_names)) for i in range(count)]
    if ensure_scorecard:
        for i in range(6):
            created = WINDOW_START + timedelta(days=4 * i + 1, seconds=draw(_DAY_SECONDS))
            records.append(
                {
                    "session_id": f"q-{i}-" + draw(IDENTIFIERS)[:150],
                    "job_id": job_ids[0],
                    "job_name": job_names[0],
                    "job_type": "Backup",
                    "algorithm": "Increment",
                    "result": "Success",
                    "is_retry": False,
                    "creation_time": _render(created, *draw(TIME_TEXT_STYLE)),
                    "end_time": _render(created + timedelta(hours=1), *draw(TIME_TEXT_STYLE)),
                    "data_size_bytes": draw(PLAUSIBLE_SIZES),
                    "backup_size_bytes": draw(SIZES),
                    "read_size_bytes": draw(SIZES),
                    "transferred_size_bytes": draw(SIZES),
                    "dedup_ratio_raw": draw(PLAUSIBLE_RATIOS),
                    "compress_ratio_raw": draw(PLAUSIBLE_RATIOS),
                }
            )
    if records and draw(st.booleans()):  # duplicate session ids: verbatim copies or reused ids
        for _ in range(draw(_SOME)):
            source = records[draw(st.integers(0, len(records) - 1))]
            if draw(st.booleans()):
                records.append(dict(source))
            else:
                other = draw(sessions(index=len(records), job_ids=job_ids, job_names=job_names))
                records.append(other | {"session_id": source["session_id"]})
    order = draw(_ORDERS)
    if order == "reversed":
        records.reverse()
    elif order.startswith("by time"):
        records.sort(key=lambda s: _instant(s["creation_time"]), reverse=order.endswith("reversed"))
    collected = draw(instants())
    start = draw(instants())
    span = timedelta(seconds=draw(_SPANS))
    if start > datetime(9999, 12, 29, tzinfo=UTC) - span:
        start = WINDOW_START
    end = start + span
    document = {
        "schema_version": 1,
        "vbr_host": draw(HOSTS),
        "vbr_version": draw(VBR_VERSIONS),
        "collected_at": _render(collected, *draw(TIME_TEXT_STYLE)),
        "window_start": _render(start, *draw(TIME_TEXT_STYLE)),
        "window_end": _render(end, *draw(TIME_TEXT_STYLE)),
        "sessions": records,
    }
    if draw(st.booleans()):  # extra fields are ignored, at both levels
        document[draw(_DOCUMENT_EXTRAS)] = draw(JSON_VALUES)
        for record in records[: draw(_FEW)]:
            record[draw(_SESSION_EXTRAS)] = draw(JSON_VALUES)
    return document


_COUNTS = {n: st.integers(0, n) for n in (5, 12, 25, 40)}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("-00:00", "+00:00"))


# ---------------------------------------------------------------------------------------------
# Broken documents
# ---------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(NO_NUL, max_size=8),
    st.just([]),
    st.just({}),
    st.lists(st.integers(), max_size=3),
)
_ODD_VALUES = [
    NAN, INF, -INF, "NaN", "Infinity", "-Infinity", "nan", "inf",
    "96", "1.5", "", "1e3", 96.0, 1.5, -1, -(2**63), MAX_BIGINT + 1, 2**64, 10**30,
    MAX_INT + 1, True, False, None, [], {}, [1], {"value": 1},
    "yes", "true", 1, 0, "2026-11-26", "2026-11-26T01:00:00", 1_764_115_200, "not a time",
    "\x00", "a\x00b", "*", 2**40, "x" * 201, "y" * 10_001, "Success ", "success", "FULL",
]  # fmt: skip
WRONG_VALUES = st.one_of(JSON_VALUES, st.sampled_from(_ODD_VALUES))
SCHEMA_VERSIONS = st.sampled_from([0, 3, "1", 1.0, 1.5, True, None, -1, 2**70, [1], {"v": 1}, "v1", NAN, INF])


def _delete(record: dict[str, Any], name: str) -> None:
    record.pop(name, None)


_TARGETS = st.sampled_from(["document", "session", "session", "schema_version", "whole"])
_DOCUMENT_FIELD = st.sampled_from(DOCUMENT_FIELDS)
_SESSION_FIELD = st.sampled_from(SESSION_FIELDS)
_SESSION_ACTIONS = st.sampled_from(["delete", "wrong", "wrong", "nul"])
_WHOLE = st.sampled_from(
    ["array", "sessions only", "null", "number", "string", "empty", "sessions object", "junk sessions"]
)
_MANGLES = st.sampled_from(["none"] * 6 + ["truncate", "bom", "bytes", "garbage", "empty", "whitespace"])
_ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"])
_GARBAGE = st.sampled_from(["}", ",", "]", "x", "\x00", "{}", " // comment"])
_NEARLY_EMPTY = st.sampled_from(["", " ", "null", "[]", "{}", "\x00", "NaN"])


def _whole(document: Any, records: list[Any], kind: str) -> Any:
    """The document replaced by something of the wrong shape."""
    if kind == "array":
        return [document]  # a top-level array instead of an object
    if kind == "sessions only":
        return records
    if kind in ("null", "number", "string", "empty"):
        return {"null": None, "number": 1, "string": "document", "empty": {}}[kind]
    if not isinstance(document, dict):
        return document
    return {**document, "sessions": {} if kind == "sessions object" else [None, 1, "s", []]}


@st.composite
def broken_documents(draw: st.DrawFn) -> Any:
    """A valid document, then one to three mutations that may (or may not) break it."""
    document: Any = draw(valid_documents(max_sessions=5))
    for _ in range(draw(_SOME)):
        records = document.get("sessions") if isinstance(document, dict) else None
        records = records if isinstance(records, list) else []
        target = draw(_TARGETS)
        if target == "document" and isinstance(document, dict):
            name = draw(_DOCUMENT_FIELD)
            if draw(st.booleans()):
                _delete(document, name)
            else:
                document[name] = draw(WRONG_VALUES)
        elif target == "session" and records:
            record = records[draw(st.integers(0, len(records) - 1))]
            if not isinstance(record, dict):
                continue
            name = draw(_SESSION_FIELD)
            action = draw(_SESSION_ACTIONS)
            if action == "delete":
                _delete(record, name)
            elif action == "wrong":
                record[name] = draw(WRONG_VALUES)
            elif isinstance(record.get(name), str):
                record[name] = record[name] + "\x00"
        elif target == "schema_version" and isinstance(document, dict):
            document["schema_version"] = draw(SCHEMA_VERSIONS)
        elif target == "whole":
            document = _whole(document, records, draw(_WHOLE))
    return document


_ANY_DOCUMENT = st.one_of(valid_documents(max_sessions=5), broken_documents())


@st.composite
def hostile_texts(draw: st.DrawFn) -> str | bytes:
    """JSON text (or bytes) of valid or broken documents, sometimes truncated or otherwise mangled."""
    text = json.dumps(draw(_ANY_DOCUMENT), ensure_ascii=draw(st.booleans()))  # NaN/Infinity: JSON tokens
    mangle = draw(_MANGLES)
    if mangle == "truncate":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    if mangle == "bom":
        return "\ufeff" + text
    if mangle == "bytes":
        return text.encode(draw(_ENCODINGS), errors="replace")
    if mangle == "garbage":
        return text + draw(_GARBAGE)
    if mangle == "empty":
        return draw(_NEARLY_EMPTY)
    if mangle == "whitespace":
        return "\n\t " + text + "\r\n"
    return text
