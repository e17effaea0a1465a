"""columnar.parse_document_columns: the same contract as parse_document, as columns, chunk by chunk."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

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
    "schema_version": json.dumps(_document(_sessions(8), schema_version=2)),
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
