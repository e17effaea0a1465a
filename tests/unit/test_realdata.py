"""Converting the real VBR task-session sample (outside the repo) into a contract document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support import realdata
from tests.support.realdata import real_sample_csv, real_sample_document, require_real_sample, session_id_for
from veeam_efficiency.contract import parse_document

JOB_SESSIONS = 4_707  # distinct (JobName, CreationTime) pairs in the CSV


@pytest.fixture(scope="module")
def real_doc() -> dict[str, Any]:
    require_real_sample()
    return real_sample_document()


@pytest.fixture(scope="module")
def real_frame(real_doc: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(real_doc["sessions"])


def test_missing_sample_skips_with_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(realdata, "SHARED_DATA", tmp_path)
    assert real_sample_csv() is None
    with pytest.raises(pytest.skip.Exception, match="VEEAM_SHARED_DATA"):
        require_real_sample()


def test_converts_to_one_record_per_job_session(real_doc: dict[str, Any], real_frame: pd.DataFrame) -> None:
    parsed = parse_document(json.dumps(real_doc))
    assert len(parsed["sessions"]) == JOB_SESSIONS
    assert real_frame["session_id"].is_unique
    assert parsed["vbr_host"] == "ausveeam01.real.sample"
    assert real_frame.groupby("job_name")["job_id"].nunique().eq(1).all()
    assert real_frame["job_id"].nunique() == real_frame["job_name"].nunique() == 7


def test_ids_are_deterministic(real_doc: dict[str, Any]) -> None:
    again = real_sample_document()
    assert again == real_doc
    first = pd.read_csv(require_real_sample(), nrows=1, dtype=str).iloc[0]
    ids = {s["session_id"] for s in real_doc["sessions"]}
    assert session_id_for(first["JobName"], first["CreationTime"]) in ids


def test_session_fields(real_doc: dict[str, Any], real_frame: pd.DataFrame) -> None:
    assert set(real_frame["algorithm"]) == {"Full", "Increment"}
    assert set(real_frame["result"]) == {"Success", "Warning", "Failed"}
    assert real_frame["is_retry"].any() and not real_frame["is_retry"].all()
    assert real_frame["end_time"].notna().all()  # an export holds finished sessions only
    created = pd.to_datetime(real_frame["creation_time"], utc=True)
    ended = pd.to_datetime(real_frame["end_time"], utc=True)
    assert (ended >= created).all()
    assert pd.Timestamp(real_doc["window_start"]) <= created.min()
    assert ended.max() < pd.Timestamp(real_doc["window_end"])
    assert (real_frame["read_size_bytes"] == real_frame["data_size_bytes"]).all()
    assert (real_frame["transferred_size_bytes"] == real_frame["backup_size_bytes"]).all()
    assert real_frame["compress_ratio_raw"].max() == 191_073  # kept as the server reported it


def test_worst_task_status_wins(real_frame: pd.DataFrame) -> None:
    tasks = pd.read_csv(require_real_sample(), dtype={"CreationTime": str})
    worst = tasks.groupby(["JobName", "CreationTime"])["Status"].agg(
        lambda s: "Failed" if s.eq("Failed").any() else "Warning" if s.eq("Warning").any() else "Success"
    )
    assert real_frame["result"].value_counts().to_dict() == worst.value_counts().to_dict()


def test_sizes_follow_the_raw_ratios(real_frame: pd.DataFrame) -> None:
    plausible = real_frame[
        (real_frame["data_size_bytes"] > 0)
        & real_frame["dedup_ratio_raw"].between(1, 100)
        & real_frame["compress_ratio_raw"].between(1, 100)
    ]
    expected = plausible["data_size_bytes"] * plausible["dedup_ratio_raw"] * plausible["compress_ratio_raw"] / 1e4
    assert 0.95 < (plausible["backup_size_bytes"] / expected).median() < 1.05
