"""sessions: the window's session table, duplicates, exclusion reasons and job sufficiency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.support.documents import document_text, session
from veeam_efficiency.contract import parse_document
from veeam_efficiency.sessions import (
    EXCLUSION_REASONS,
    add_factors,
    chronological_order,
    job_sufficiency,
    job_tally,
    latest_job_names,
    sessions_frame,
    window_sessions,
)
from veeam_efficiency.settings import AnalysisSettings

START = datetime(2026, 11, 20, tzinfo=UTC)
END = datetime(2026, 11, 27, tzinfo=UTC)
SETTINGS = AnalysisSettings()


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _session(session_id: str, created: datetime, **overrides: Any) -> dict[str, Any]:
    return (
        session(
            session_id,
            created,
            minutes=20,
            data_size_bytes=10 * 2**30,
            backup_size_bytes=2**30,
            read_size_bytes=5 * 2**30,
            transferred_size_bytes=2**30,
            dedup_ratio_raw=50,
            compress_ratio_raw=50,
        )
        | overrides
    )


def _window(sessions: list[dict[str, Any]], settings: AnalysisSettings = SETTINGS):
    text = document_text(
        sessions, window_start=START - timedelta(days=1), window_end=END + timedelta(days=1), collected_at=_iso(END)
    )
    return window_sessions(parse_document(text), START, END, settings)


def _at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def test_only_sessions_created_inside_the_window_are_kept() -> None:
    result = _window(
        [
            _session("before", START - timedelta(seconds=1)),
            _session("at-start", START),
            _session("last", END - timedelta(seconds=1)),
            _session("at-end", END),
            _session("after", END + timedelta(hours=1)),
        ]
    )
    assert result.frame["session_id"].tolist() == ["at-start", "last"]
    assert result.sessions_collected == 5  # everything the collector sent
    assert result.duplicates_dropped == 0
    assert (result.window_start, result.window_end) == (START, END)
    assert result.vbr_host == "vbr01.example.test"
    assert result.vbr_version == "12.3.1.1139"


def test_frame_is_in_time_order_with_utc_times() -> None:
    result = _window([_session("b", _at(5)), _session("a", _at(1)), _session("c", _at(3))])
    assert result.frame["session_id"].tolist() == ["a", "c", "b"]
    assert list(result.frame.index) == [0, 1, 2]
    assert str(result.frame["creation_time"].dt.tz) == "UTC"
    assert result.frame["creation_time"].iloc[0] == pd.Timestamp(_at(1))


def test_duplicate_session_ids_are_dropped_and_counted() -> None:
    result = _window(
        [
            _session("a", _at(1), job_name="first copy"),
            _session("b", _at(2)),
            _session("a", _at(1), job_name="second copy"),
            _session("a", _at(1), job_name="third copy"),
        ]
    )
    assert sorted(result.frame["session_id"]) == ["a", "b"]
    assert result.duplicates_dropped == 2
    assert result.sessions_collected == 4
    assert result.frame.loc[result.frame["session_id"] == "a", "job_name"].item() == "first copy"


def test_factors_are_100_over_raw() -> None:
    result = _window([_session("a", _at(1), dedup_ratio_raw=96, compress_ratio_raw=33)])
    row = result.frame.iloc[0]
    assert row["dedup_ratio"] == pytest.approx(1.0417, abs=1e-4)  # 100 / 96
    assert row["compression_ratio"] == pytest.approx(3.0303, abs=1e-4)  # 100 / 33
    assert row["combined_ratio"] == pytest.approx(100 / 96 * 100 / 33)  # 3.1566


def test_zero_raw_ratio_means_no_data() -> None:
    frame = pd.DataFrame({"dedup_ratio_raw": [0, 50], "compress_ratio_raw": [50, 0]})
    factors = add_factors(frame)
    assert np.isnan(factors["dedup_ratio"].iloc[0])
    assert factors["compression_ratio"].iloc[0] == pytest.approx(2.0)
    assert np.isnan(factors["compression_ratio"].iloc[1])
    assert factors["combined_ratio"].isna().all()


def test_exclusion_reasons_in_order() -> None:
    sessions = [
        _session("ok", _at(1)),
        _session("failed", _at(2), result="Failed"),
        _session("failed-running-empty", _at(3), result="Failed", end_time=None, data_size_bytes=0),
        _session("running", _at(4), end_time=None),
        _session("running-empty", _at(5), end_time=None, dedup_ratio_raw=0),
        _session("no-data-size", _at(6), data_size_bytes=0),
        _session("no-dedup", _at(7), dedup_ratio_raw=0),
        _session("no-compress", _at(8), compress_ratio_raw=0),
        _session("implausible-compress", _at(9), compress_ratio_raw=191073),  # 0.000523x
        _session("implausible-dedup", _at(10), dedup_ratio_raw=1001),  # 0.0999x
        _session("tiny-0.4x", _at(11), data_size_bytes=10 * 2**20, compress_ratio_raw=250),  # 0.4x: real
        _session("edge-0.1x", _at(12), dedup_ratio_raw=1000),  # exactly 0.1x: plausible
        _session("edge-100x", _at(13), compress_ratio_raw=1),  # exactly 100x: plausible
        _session("warning", _at(14), result="Warning"),
        _session("retry", _at(15), is_retry=True),
    ]
    result = _window(sessions)
    reasons = dict(zip(result.frame["session_id"], result.frame["excluded_reason"], strict=True))
    assert {key: value for key, value in reasons.items() if isinstance(value, str)} == {
        "failed": "failed",
        "failed-running-empty": "failed",
        "running": "running",
        "running-empty": "running",
        "no-data-size": "no_data",
        "no-dedup": "no_data",
        "no-compress": "no_data",
        "implausible-compress": "implausible_ratio",
        "implausible-dedup": "implausible_ratio",
    }
    scorable = result.scorable["session_id"].tolist()
    assert scorable == ["ok", "tiny-0.4x", "edge-0.1x", "edge-100x", "warning", "retry"]
    assert result.excluded == {"failed": 2, "running": 2, "no_data": 3, "implausible_ratio": 2}
    assert list(result.excluded) == list(EXCLUSION_REASONS)
    tiny = result.scorable.set_index("session_id").loc["tiny-0.4x"]
    assert tiny["compression_ratio"] == pytest.approx(0.4)
    assert tiny["combined_ratio"] == pytest.approx(0.8)  # 2.0 x 0.4


def test_implausible_bounds_follow_settings() -> None:
    narrow = AnalysisSettings(max_factor=10.0)
    result = _window([_session("a", _at(1), compress_ratio_raw=5)], narrow)  # 20x > 10x
    assert result.frame["excluded_reason"].tolist() == ["implausible_ratio"]


def test_all_reasons_are_counted_even_when_zero() -> None:
    result = _window([_session("a", _at(1))])
    assert result.excluded == {"failed": 0, "running": 0, "no_data": 0, "implausible_ratio": 0}
    assert result.frame["excluded_reason"].isna().all()


def test_empty_window() -> None:
    result = _window([_session("late", END + timedelta(hours=2))])
    assert result.frame.empty
    assert result.sessions_collected == 1
    assert result.scorable.empty


def test_job_sufficiency_lists_every_job_with_found_vs_needed() -> None:
    sessions = [_session(f"a{i}", _at(i), job_id="A", job_name="Job A") for i in range(5)]
    sessions += [_session(f"b{i}", _at(i), job_id="B", job_name="Job B") for i in range(3)]
    sessions += [_session("b-failed", _at(4), job_id="B", job_name="Job B", result="Failed")]
    sessions += [_session(f"c{i}", _at(i), job_id="C", job_name="Job C", result="Failed") for i in range(4)]
    result = _window(sessions)
    table = job_sufficiency(job_tally(result.frame), min_sessions=4).set_index("job_id")
    assert list(table.index) == ["A", "B", "C"]
    assert table["found"].tolist() == [5, 3, 0]  # C: every session failed, still listed
    assert table["needed"].tolist() == [4, 4, 4]
    assert table["qualifies"].tolist() == [True, False, False]
    assert table["job_name"].tolist() == ["Job A", "Job B", "Job C"]


def test_job_sufficiency_at_exactly_min_sessions_qualifies() -> None:
    result = _window([_session(f"a{i}", _at(i)) for i in range(4)])
    table = job_sufficiency(job_tally(result.frame), min_sessions=4)
    assert table["qualifies"].tolist() == [True]
    assert job_sufficiency(job_tally(result.frame), min_sessions=5)["qualifies"].tolist() == [False]


def test_renamed_job_shows_its_newest_name() -> None:
    sessions = [
        _session("new", _at(5), job_name="SQL Daily (renamed)"),
        _session("old", _at(1), job_name="SQL Daily"),
        _session("mid", _at(3), job_name="SQL Daily v2"),
        _session("other", _at(9), job_id="job-2", job_name="Files"),
    ]
    result = _window(sessions)
    names = latest_job_names(result.frame)
    assert names.to_dict() == {"job-1": "SQL Daily (renamed)", "job-2": "Files"}
    # also when handed a table that is not in time order
    assert latest_job_names(result.frame.iloc[::-1]).to_dict() == names.to_dict()
    assert job_tally(result.frame.iloc[::-1]).equals(job_tally(result.frame))
    table = job_sufficiency(job_tally(result.frame), min_sessions=4)
    assert table.set_index("job_id").loc["job-1", "job_name"] == "SQL Daily (renamed)"


def test_sessions_frame_types() -> None:
    parsed = parse_document(document_text([_session("a", _at(1), end_time=None, data_size_bytes=2**62)]))
    frame = sessions_frame(parsed["sessions"])
    assert frame["data_size_bytes"].dtype == np.int64
    assert frame["data_size_bytes"].iloc[0] == 2**62
    assert frame["dedup_ratio_raw"].dtype == np.int64
    assert frame["is_retry"].dtype == bool
    assert pd.isna(frame["end_time"].iloc[0])
    assert str(frame["creation_time"].dt.tz) == "UTC"


@pytest.mark.parametrize(
    ("sessions", "distinct_times", "distinct_ids"),
    [(500, 40, 500), (2_000, 1_500, 2_000), (300, 1, 300), (400, 400, 400), (600, 90, 25)],
    ids=["dense-ties", "sparse-ties", "all-at-once", "no-ties", "repeated-ids-stay-stable"],
)
def test_chronological_order_breaks_time_ties_by_session_id_like_a_full_sort(
    sessions: int, distinct_times: int, distinct_ids: int
) -> None:
    rng = np.random.default_rng(sessions + distinct_times)
    ticks = rng.integers(0, distinct_times, size=sessions)  # tie groups of many different sizes
    ids = np.array([f"s-{rng.integers(0, distinct_ids)}" for _ in range(sessions)], dtype=object)
    order = chronological_order(ticks, ids)
    expected = pd.DataFrame({"t": ticks, "id": ids}).sort_values(["t", "id"], kind="stable").index
    assert order.tolist() == expected.tolist()
    assert chronological_order(np.array([5, 5, 1]), np.array(["b", "a", "z"], dtype=object)).tolist() == [2, 1, 0]
