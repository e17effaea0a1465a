"""columnar.parse_document_columns: the same contract as parse_document, as columns, chunk by chunk."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.documents import document, session
from veeam_efficiency import columnar
from veeam_efficiency.columnar import parse_document_columns
from veeam_efficiency.contract import SESSION_FIELDS, ContractError, parse_document
from veeam_efficiency.sessions import sessions_frame, window_sessions
from veeam_efficiency.settings import AnalysisSettings

START = datetime(2026, 11, 20, tzinfo=UTC)


def _session(n: int, **overrides: Any) -> dict[str, Any]:
    created = START + timedelta(hours=n)
    return (
        session(
            f"s-{n}",
            created,
            job_id=f"job-{n % 3}",
            job_name=["SQL Daily", "Zürich VMs – täglich", "東京 SQL ログ"][n % 3],
            algorithm="Full" if n % 7 == 0 else "Increment",
            result="Failed" if n % 11 == 0 else "Success",
            is_retry=n % 5 == 0,
            creation_time=created.isoformat().replace("+00:00", "Z"),
            end_time=(created + timedelta(minutes=20)).astimezone().isoformat(),  # another offset
            data_size_bytes=2**62 + n,
            backup_size_bytes=4_000 + n,
            read_size_bytes=9_000 + n,
            transferred_size_bytes=4_500 + n,
            dedup_ratio_raw=40 + n % 50,
            compress_ratio_raw=2**31 - 1 if n == 4 else 30 + n % 40,
        )
        | overrides
    )


def _document(sessions: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    return (
        document(
            sessions,
            window_start=datetime(2026, 11, 19, tzinfo=UTC),
            collected_at="2026-11-27T06:00:00+01:00",
            extra_top_level_field={"ignored": [1, 2]},
        )
        | overrides
    )


def _sessions(count: int) -> list[dict[str, Any]]:
    sessions = [_session(n) for n in range(count)]
    sessions[3]["end_time"] = None  # still running
    sessions[5]["job_name"] = ""
    sessions[6]["Platform"] = "VMware"  # unknown fields are ignored, as parse_document does
    return sessions


@pytest.fixture(params=[2, 7, 50_000], ids=["chunk2", "chunk7", "one-chunk"])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(columnar, "CHUNK", request.param)
    return int(request.param)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_columns_hold_what_parse_document_returns(chunk: int, as_bytes: bool) -> None:
    text = json.dumps(_document(_sessions(20)), ensure_ascii=False)
    raw: str | bytes = ("\ufeff" + text).encode() if as_bytes else text
    records = parse_document(raw)
    columns = parse_document_columns(raw)
    assert {k: v for k, v in columns.items() if k != "sessions"} == {
        k: v for k, v in records.items() if k != "sessions"
    }
    assert set(columns["sessions"]) == set(SESSION_FIELDS)
    expected = sessions_frame(records["sessions"])
    pd.testing.assert_frame_equal(sessions_frame(columns["sessions"]), expected)
    assert columns["sessions"]["data_size_bytes"].dtype == np.int64
    assert pd.isna(columns["sessions"]["end_time"][3])
    assert columns["sessions"]["job_name"][5] == ""


def test_repeated_text_is_stored_once() -> None:
    columns = parse_document_columns(json.dumps(_document(_sessions(30))))["sessions"]
    same_job = [name for name, job in zip(columns["job_name"], columns["job_id"], strict=True) if job == "job-1"]
    assert len(same_job) == 10
    assert len({id(name) for name in same_job}) == 1
    for allowed_values in ("algorithm", "result"):  # msgspec shares these itself
        assert len({id(value) for value in columns[allowed_values]}) == len(set(columns[allowed_values])) == 2


def test_window_sessions_is_the_same_from_columns(chunk: int) -> None:
    text = json.dumps(_document([*_sessions(40), _session(2)]))  # a duplicate session_id too
    settings = AnalysisSettings()
    end = START + timedelta(days=1)
    from_records = window_sessions(parse_document(text), START, end, settings)
    from_columns = window_sessions(parse_document_columns(text), START, end, settings)
    pd.testing.assert_frame_equal(from_columns.frame, from_records.frame)
    assert from_columns.duplicates_dropped == from_records.duplicates_dropped == 1
    assert from_columns.sessions_collected == from_records.sessions_collected == 41
    assert from_columns.excluded == from_records.excluded


def test_empty_session_list() -> None:
    columns = parse_document_columns(json.dumps(_document([])))["sessions"]
    assert all(len(values) == 0 for values in columns.values())
    assert sessions_frame(columns).empty


def _broken(field: str, value: Any, index: int = 12) -> str:
    sessions = _sessions(20)
    sessions[index][field] = value
    return json.dumps(_document(sessions))


BROKEN = {
    "not JSON": "{ this is not json",
    "empty": "",
    "array": "[1, 2, 3]",
    "schema_version": json.dumps(_document(_sessions(8), schema_version=3)),
    "missing field": json.dumps(_document([{k: v for k, v in _session(1).items() if k != "job_id"}])),
    "sessions not a list": json.dumps(_document(_sessions(8)) | {"sessions": {"s-1": {}}}),
    "no sessions": json.dumps({k: v for k, v in _document([]).items() if k != "sessions"}),
    "bad header and session": json.dumps(_document([_session(1, is_retry="no")], vbr_host="")),
    "ratio float": _broken("dedup_ratio_raw", 96.5),
    "naive time": _broken("creation_time", "2026-11-26T02:00:00"),
    "NUL": _broken("job_name", "SQL\u0000Daily"),
    "rollup id": _broken("job_id", "*"),
    "bigint": _broken("backup_size_bytes", 2**63),
    "two records": json.dumps(_document([_session(1), _session(2, result="ok"), _session(3, is_retry=1)])),
    "window": json.dumps(_document(_sessions(8), window_end="2026-11-18T00:00:00Z")),
    "lone surrogate": '{"schema_version": 1, "vbr_host": "\ud800"}',
}


@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_document_fails_exactly_as_parse_document_does(chunk: int, text: str) -> None:
    with pytest.raises(ContractError) as expected:
        parse_document(text)
    with pytest.raises(ContractError) as got:
        parse_document_columns(text)
    assert str(got.value) == str(expected.value)


def test_invalid_utf8_bytes_are_replaced_as_parse_document_does() -> None:
    raw = json.dumps(_document(_sessions(8))).encode().replace(b"SQL Daily", b"SQL\xffDaily")
    columns = parse_document_columns(raw)["sessions"]
    assert columns["job_name"][0] == parse_document(raw)["sessions"][0]["job_name"] == "SQL\ufffdDaily"


# ---------------------------------------------------------------------------------------------
# The fast path (msgspec) reads what parse_document reads, and leaves to it what it cannot vouch for
# ---------------------------------------------------------------------------------------------


def _same_as_parse_document(text: str) -> None:
    """Both parsers return the same sessions, or raise the same ContractError."""
    try:
        records = parse_document(text)
    except ContractError as expected:
        with pytest.raises(ContractError) as got:
            parse_document_columns(text)
        assert str(got.value) == str(expected)
        return
    columns = parse_document_columns(text)
    pd.testing.assert_frame_equal(sessions_frame(columns["sessions"]), sessions_frame(records["sessions"]))


@pytest.fixture
def fast_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_document_columns must not fall back to parse_document."""

    def refuse(text: str | bytes) -> None:
        raise AssertionError("the fast path fell back to parse_document")

    monkeypatch.setattr(columnar, "parse_document", refuse)


# what collectors write: the PowerShell script (milliseconds, Z), .NET "o" (7 digits), offsets
WRITTEN_TIMES = [
    "2026-11-26T02:00:00.123Z",
    "2026-11-26T02:00:00.1234567Z",
    "2026-11-26T02:00:00.9999999Z",
    "2026-11-26T03:00:00.5+01:00",
    "2026-11-25T21:15:00-04:45",
    "1960-01-01T00:00:00.1234567Z",
]


@pytest.mark.usefixtures("fast_path_only")
def test_what_collectors_write_takes_the_fast_path_and_reads_as_parse_document_does(chunk: int) -> None:
    sessions = [
        _session(n, creation_time=created, end_time=WRITTEN_TIMES[-1 - n]) for n, created in enumerate(WRITTEN_TIMES)
    ]
    sessions[0]["job_name"] = "東京 SQL ログ" * 1_000 + "ロ"  # exactly 10,000 characters
    sessions[1]["object_name"] = "srv-東京-01"
    sessions[2]["data_size_bytes"] = 2**63 - 1
    sessions[3] |= {"dedup_ratio_raw": 0, "compress_ratio_raw": 2**31 - 1}
    sessions[5]["object_name"] = None
    assert "object_name" not in sessions[4]  # as a version 1 session
    text = json.dumps(_document(sessions), ensure_ascii=False)
    columns = parse_document_columns(text)["sessions"]
    records = parse_document(text)["sessions"]  # the contract's own name: not patched
    pd.testing.assert_frame_equal(sessions_frame(columns), sessions_frame(records))
    ascii_text = json.dumps(_document(sessions))  # read in place, not copied
    for same in (ascii_text, "\ufeff" + text, ("\ufeff" + text).encode(), text.encode()):
        again = parse_document_columns(same)["sessions"]
        pd.testing.assert_frame_equal(sessions_frame(again), sessions_frame(records))
    assert str(columns["creation_time"][1]) == "2026-11-26T02:00:00.123456"  # truncated, as pydantic does
    assert columns["object_name"][4] is None


DOUBTS = {
    "pandas reads a naive time": ("creation_time", "2026-11-26T02:00:00"),
    "pandas reads the basic format": ("creation_time", "20261126T020000Z"),
    "pandas reads a dangling point": ("end_time", "2026-11-26T02:00:00.Z"),
    "pandas reads an hour-only offset": ("creation_time", "2026-11-26T02:00:00+02"),
    "pydantic reads a lower-case t and z": ("creation_time", "2026-11-26t02:00:00z"),
    "pydantic reads an underscore": ("creation_time", "2026-11-26_02:00:00Z"),
    "before the year 1 in UTC": ("creation_time", "0001-01-01T00:30:00+01:00"),
    "after the year 9999 in UTC": ("end_time", "9999-12-31T23:30:00-01:00"),
    "NUL": ("job_name", "SQL\u0000Daily"),
    "NUL in a session id": ("session_id", "s\u00002"),
    "NUL in a job id": ("job_id", "j\u00001"),
    "NUL in a machine name": ("object_name", "vm\u000001"),
    "NUL in a job type": ("job_type", "Backup\u0000"),
    "roll-up id": ("job_id", "*"),
    "11 characters too many": ("job_name", "x" * 10_011),
}


@pytest.mark.parametrize(("field", "value"), DOUBTS.values(), ids=DOUBTS.keys())
def test_what_the_fast_path_cannot_vouch_for_is_read_by_parse_document(chunk: int, field: str, value: str) -> None:
    _same_as_parse_document(_broken(field, value))


_DIGITS = st.text("0123456789", min_size=1, max_size=4)
TIME_TEXTS = st.builds(
    "{}-{}-{}{}{}:{}{}{}{}".format,
    st.sampled_from(["2026", "0001", "9999", "1960", "0000", "12026"]) | _DIGITS,
    st.sampled_from(["01", "02", "12", "13", "00", "1"]),
    st.sampled_from(["01", "28", "29", "30", "31", "32"]),
    st.sampled_from(["T", "t", " ", "_", ""]),
    st.sampled_from(["00", "23", "24"]),
    st.sampled_from(["00", "59", "60"]),
    st.sampled_from(["", ":00", ":59", ":60"]),
    st.sampled_from(["", ".", ".5", ".123", ".1234567", ".9999999", ".123456789012", ",5"]),
    st.sampled_from(["", "Z", "z", "+00:00", "-00:00", "+02", "+0200", "+14:00", "+23:59", "+24:00", "-12:30", " Z"]),
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(creation=TIME_TEXTS, end=st.none() | TIME_TEXTS)
def test_any_time_text_reads_as_parse_document_reads_it(creation: str, end: str | None) -> None:
    sessions = [_session(1, creation_time=creation, end_time=end), _session(2)]
    _same_as_parse_document(json.dumps(_document(sessions)))


@pytest.mark.parametrize("last", ['"Failed"', "5"], ids=["valid", "invalid"])
def test_a_repeated_key_reads_as_parse_document_reads_it(last: str) -> None:
    text = json.dumps(_document(_sessions(8)))
    repeated = text.replace('"result": "Success"', f'"result": "Success", "result": {last}', 1)
    assert repeated != text
    _same_as_parse_document(repeated)
