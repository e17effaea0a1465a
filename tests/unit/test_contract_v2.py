"""Contract v2: job settings and object_name, hostile values refused, and v1 documents unchanged."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tools.synthetic import generate_document
from veeam_efficiency import pipeline, tables
from veeam_efficiency.columnar import parse_document_columns
from veeam_efficiency.contract import ContractError, parse_document
from veeam_efficiency.job_settings import job_settings_records
from veeam_efficiency.payload import records
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.window import AnalysisWindow

WINDOW = AnalysisWindow(datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))


@pytest.fixture(scope="module")
def v2_document() -> dict[str, Any]:
    return generate_document(
        vbr_host="vbr01.example.test", jobs=6, sessions=600, window_start=WINDOW.start, window_end=WINDOW.end, seed=7
    )


def as_v1(document: dict[str, Any]) -> dict[str, Any]:
    """The same sessions as a version 1 collector wrote them: no jobs, no object_name."""
    v1 = copy.deepcopy(document)
    v1["schema_version"] = 1
    del v1["jobs"]
    for session in v1["sessions"]:
        del session["object_name"]
    return v1


def run_pipeline(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = AnalysisSettings(min_sessions=10)
    validated = pipeline.validate(json.dumps(document), WINDOW, settings)
    analysis = pipeline.analyze(validated, settings)
    return validated, pipeline.optimize(analysis, settings)


def test_v1_gives_the_same_scorecards_as_v2_and_no_settings(v2_document: dict[str, Any]) -> None:
    v1_validated, v1_result = run_pipeline(as_v1(v2_document))
    v2_validated, v2_result = run_pipeline(v2_document)
    # the seed's scorecard is the same; only the grade in context may use the settings (issue 14)
    context = {column.name for column in tables.CONTEXT_COLUMNS}
    v1_cards, v2_cards = (
        [{name: value for name, value in card.items() if name not in context} for card in records(result["scorecards"])]
        for result in (v1_result, v2_result)
    )
    assert v1_cards and v1_cards == v2_cards
    assert v1_validated["job_settings"] is None  # unknown: the load leaves job_settings alone
    assert v2_validated["job_settings"] == job_settings_records(v2_document)
    assert v1_validated["sessions"] == v2_validated["sessions"]  # object_name null in both


def test_v2_parses_by_records_and_by_columns_alike(v2_document: dict[str, Any]) -> None:
    document = copy.deepcopy(v2_document)
    document["sessions"][0]["object_name"] = "srv-db-01"
    text = json.dumps(document)
    records, columns = parse_document(text), parse_document_columns(text)
    assert records["jobs"] == columns["jobs"] == document["jobs"]
    assert records["sessions"][0]["object_name"] == columns["sessions"]["object_name"][0] == "srv-db-01"
    assert columns["sessions"]["object_name"][1] is None


def test_settings_are_flattened_with_unknowns_kept_null(v2_document: dict[str, Any]) -> None:
    document = copy.deepcopy(v2_document)
    document["jobs"][0]["repository"] = None
    document["jobs"][1]["inline_dedup"] = None
    rows = job_settings_records(parse_document(json.dumps(document)))
    assert rows is not None
    assert rows[0]["repository_id"] is None and rows[0]["scale_out"] is None
    assert rows[1]["inline_dedup"] is None
    assert rows[1]["repository_name"] == document["jobs"][1]["repository"]["name"]


HOSTILE = [
    ("compression_level", "Optimal'; DROP TABLE feature3.job_settings; --", "compression_level"),
    ("compression_level", 5, "compression_level"),  # Veeam's number: the script maps it, the contract does not
    ("block_size_kb", 1000, "block_size_kb"),
    ("block_size_kb", "1024", "block_size_kb"),
    ("inline_dedup", "true", "inline_dedup"),
    ("job_id", "*", "reserved for the per-host roll-up"),
    ("job_id", "", "job_id"),
    ("job_name", "a\x00b", "job_name"),
    ("job_type", "x" * 201, "job_type"),
    ("repository", "DataDomain", "repository"),
    ("repository", {"repository_id": "r", "name": "n"}, "repository.type"),
]


@pytest.mark.parametrize(("field", "value", "named"), HOSTILE, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(HOSTILE)])
def test_hostile_job_settings_are_refused_naming_the_job(
    v2_document: dict[str, Any], field: str, value: Any, named: str
) -> None:
    document = copy.deepcopy(v2_document)
    document["jobs"][1][field] = value
    with pytest.raises(ContractError, match=named) as caught:
        parse_document(json.dumps(document))
    assert "jobs[1]" in str(caught.value) or "reserved" in str(caught.value)
    with pytest.raises(ContractError) as by_columns:
        parse_document_columns(json.dumps(document))
    assert str(by_columns.value) == str(caught.value)


def test_hostile_object_name_and_repeated_jobs_are_refused(v2_document: dict[str, Any]) -> None:
    document = copy.deepcopy(v2_document)
    document["sessions"][3]["object_name"] = "srv\x00"
    with pytest.raises(ContractError, match=r"sessions\[3\].*object_name"):
        parse_document(json.dumps(document))
    document = copy.deepcopy(v2_document)
    document["jobs"].append(copy.deepcopy(document["jobs"][0]))
    with pytest.raises(ContractError, match="listed more than once"):
        parse_document(json.dumps(document))


def test_jobs_need_version_2(v2_document: dict[str, Any]) -> None:
    document = copy.deepcopy(v2_document)
    document["schema_version"] = 1
    with pytest.raises(ContractError, match="needs schema_version 2"):
        parse_document(json.dumps(document))
