"""contract.parse_document: the collector JSON, validated strictly, with errors that name the record."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.documents import document, session
from veeam_efficiency.contract import DOCUMENT_FIELDS, SESSION_FIELDS, ContractError, parse_document


def _session(n: int, **overrides: Any) -> dict[str, Any]:
    return session(f"s-{n}", datetime(2026, 11, 26, n, tzinfo=UTC), **overrides)


def _document(sessions: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    return document([_session(1), _session(2), _session(3)] if sessions is None else sessions, **overrides)


def _broken(index: int, field: str, value: Any) -> str:
    document = _document()
    document["sessions"][index][field] = value
    return json.dumps(document)


def test_valid_document_parses_to_plain_dicts() -> None:
    document = parse_document(json.dumps(_document()))
    assert isinstance(document, dict)
    assert isinstance(document["sessions"][0], dict)
    assert len(document["sessions"]) == 3
    first = document["sessions"][0]
    assert first["session_id"] == "s-1"
    assert first["dedup_ratio_raw"] == 96
    assert first["is_retry"] is False
    assert first["creation_time"] == datetime(2026, 11, 26, 1, tzinfo=UTC)
    assert set(first) == set(SESSION_FIELDS)
    assert set(document) == set(DOCUMENT_FIELDS)


def test_times_with_offsets_are_converted_to_utc() -> None:
    session = _session(1, creation_time="2026-11-26T02:00:00+02:00", end_time="2026-11-25T20:30:00-05:00")
    document = parse_document(json.dumps(_document([session], collected_at="2026-11-27T07:00:00+01:00")))
    parsed = document["sessions"][0]
    # 02:00+02:00 = 00:00Z; 20:30-05:00 = 01:30Z next day
    assert parsed["creation_time"] == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    assert parsed["creation_time"].utcoffset().total_seconds() == 0
    assert parsed["end_time"] == datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
    assert parsed["end_time"].tzinfo == UTC
    assert document["collected_at"].tzinfo == UTC
    assert document["collected_at"].hour == 6


def test_running_session_has_null_end_time() -> None:
    document = parse_document(json.dumps(_document([_session(1, end_time=None)])))
    assert document["sessions"][0]["end_time"] is None


def test_extra_fields_are_ignored() -> None:
    raw = _document([_session(1, Platform="VMware", nested={"x": 1})], collector="replay 1.0")
    document = parse_document(json.dumps(raw))
    assert "collector" not in document
    assert "Platform" not in document["sessions"][0]
    assert "nested" not in document["sessions"][0]


def test_utf8_bom_is_accepted_as_bytes_and_text() -> None:
    text = json.dumps(_document(), ensure_ascii=False)
    from_bytes = parse_document(b"\xef\xbb\xbf" + text.encode("utf-8"))
    from_text = parse_document("\ufeff" + text)
    assert from_bytes["vbr_host"] == from_text["vbr_host"] == "vbr01.example.test"
    assert len(from_bytes["sessions"]) == 3


def test_non_ascii_names_survive() -> None:
    document = parse_document(json.dumps(_document([_session(1, job_name="Fileserver Wöchentlich")])).encode())
    assert document["sessions"][0]["job_name"] == "Fileserver Wöchentlich"


def test_not_json_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="not valid JSON"):
        parse_document("{ this is not json")
    with pytest.raises(ContractError, match="the document: Input should be an object"):
        parse_document("[1, 2, 3]")
    with pytest.raises(ContractError, match="not valid JSON"):
        parse_document("")


def test_contract_error_is_a_value_error() -> None:
    assert issubclass(ContractError, ValueError)


def test_other_schema_version_is_refused() -> None:
    with pytest.raises(ContractError, match=r"schema_version 2"):
        parse_document(json.dumps(_document(schema_version=2)))


def test_missing_field_names_field_and_record() -> None:
    document = _document()
    del document["sessions"][1]["dedup_ratio_raw"]
    with pytest.raises(ContractError) as info:
        parse_document(json.dumps(document))
    message = str(info.value)
    assert "sessions[1]" in message
    assert "'s-2'" in message
    assert "dedup_ratio_raw" in message


def test_missing_document_field_is_named() -> None:
    document = _document()
    del document["vbr_host"]
    with pytest.raises(ContractError, match="vbr_host"):
        parse_document(json.dumps(document))


@pytest.mark.parametrize(
    "field, value",
    [
        ("dedup_ratio_raw", 96.5),  # a ratio is an integer percentage
        ("compress_ratio_raw", "33"),
        ("dedup_ratio_raw", -1),
        ("compress_ratio_raw", 2**31),  # PostgreSQL integer
        ("is_retry", "false"),
        ("is_retry", 0),
        ("data_size_bytes", -1),
        ("backup_size_bytes", 2**63),  # PostgreSQL bigint
        ("read_size_bytes", 1.5),
        ("creation_time", "2026-11-26T02:00:00"),  # naive
        ("end_time", "2026-11-26T02:30:00"),  # naive
        ("creation_time", "yesterday"),
        ("job_name", "SQL\u0000Daily"),
        ("session_id", "s\u00002"),
        ("session_id", ""),
        ("job_id", "*"),
        ("algorithm", "Reverse"),
        ("result", "success"),
    ],
)
def test_bad_session_field_names_field_and_first_offending_record(field: str, value: Any) -> None:
    with pytest.raises(ContractError) as info:
        parse_document(_broken(2, field, value))
    message = str(info.value)
    assert "sessions[2]" in message
    assert "(session_id 's-3')" in message or (field == "session_id" and "sessions[2]" in message)
    assert repr(field) in message


def test_only_the_first_offending_record_is_named() -> None:
    document = _document()
    document["sessions"][1]["is_retry"] = "false"
    document["sessions"][2]["dedup_ratio_raw"] = 96.5
    with pytest.raises(ContractError) as info:
        parse_document(json.dumps(document))
    message = str(info.value)
    assert "2 problem(s)" in message
    assert "sessions[1] (session_id 's-2')" in message
    assert "is_retry" in message
    assert "sessions[2]" not in message


def test_rollup_job_id_is_reserved() -> None:
    with pytest.raises(ContractError, match="reserved"):
        parse_document(_broken(0, "job_id", "*"))
    # '*' inside a longer id is a normal job id
    document = parse_document(_broken(0, "job_id", "job-*"))
    assert document["sessions"][0]["job_id"] == "job-*"


@pytest.mark.parametrize(
    "field, value",
    [
        ("vbr_host", "vbr\u000001"),
        ("vbr_host", ""),
        ("vbr_version", "12\u0000"),
        ("collected_at", "2026-11-27T06:00:00"),
        ("window_start", 0),
        ("sessions", {"s-1": {}}),
    ],
)
def test_bad_document_field_is_named(field: str, value: Any) -> None:
    with pytest.raises(ContractError, match=repr(field)):
        parse_document(json.dumps(_document(**{field: value})))


def test_window_must_end_after_it_starts() -> None:
    with pytest.raises(ContractError, match="window_end"):
        parse_document(json.dumps(_document(window_end="2026-11-26T00:00:00Z")))
    with pytest.raises(ContractError, match="window_end"):
        parse_document(json.dumps(_document(window_end="2026-11-25T00:00:00Z")))


def test_empty_session_list_is_valid() -> None:
    assert parse_document(json.dumps(_document([])))["sessions"] == []


def test_input_document_is_not_modified() -> None:
    raw = _document()
    before = copy.deepcopy(raw)
    parse_document(json.dumps(raw))
    assert raw == before
