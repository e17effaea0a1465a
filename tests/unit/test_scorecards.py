"""scorecards.score_window: job scorecards and the host roll-up, checked against hand arithmetic."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from veeam_efficiency.scorecards import SCORE_FLAGS, Analysis, score_window
from veeam_efficiency.settings import AnalysisSettings

GIB = 2**30
TIB = 2**40
MIB = 2**20
WINDOW_START = datetime(2026, 10, 28, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 27, tzinfo=UTC)
SETTINGS = AnalysisSettings()


def _job(
    job_id: str,
    compress_raws: Sequence[int],
    *,
    dedup_raw: int | Sequence[int] = 100,
    data: int | Sequence[int] = 100 * GIB,
    algorithm: str | Sequence[str] = "Increment",
    combined: Sequence[float] | None = None,
    excluded: Sequence[str | None] | None = None,
    job_name: str | None = None,
    first_hour: int = 0,
) -> list[dict[str, Any]]:
    """Rows of one job's sessions, one hour apart, already in the shape window_sessions produces."""
    count = len(compress_raws)

    def each(value: Any) -> list[Any]:
        return list(value) if isinstance(value, (list, tuple)) else [value] * count

    rows = []
    for i, (c_raw, d_raw, size, kind) in enumerate(
        zip(compress_raws, each(dedup_raw), each(data), each(algorithm), strict=True)
    ):
        dedup, compression = 100.0 / d_raw, 100.0 / c_raw
        rows.append(
            {
                "session_id": f"{job_id}-{i:03d}",
                "job_id": job_id,
                "job_name": job_name or f"Job {job_id}",
                "job_type": "Backup",
                "algorithm": kind,
                "result": "Success",
                "is_retry": False,
                "creation_time": WINDOW_START + timedelta(hours=first_hour + i),
                "end_time": WINDOW_START + timedelta(hours=first_hour + i, minutes=30),
                "data_size_bytes": size,
                "backup_size_bytes": size // 4,
                "read_size_bytes": size,
                "transferred_size_bytes": size // 4,
                "dedup_ratio_raw": d_raw,
                "compress_ratio_raw": c_raw,
                "dedup_ratio": dedup,
                "compression_ratio": compression,
                "combined_ratio": dedup * compression if combined is None else combined[i],
                "excluded_reason": None if excluded is None else excluded[i],
            }
        )
    return rows


def _frame(*jobs: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame([row for job in jobs for row in job])
    frame["creation_time"] = pd.to_datetime(frame["creation_time"], utc=True)
    frame["end_time"] = pd.to_datetime(frame["end_time"], utc=True)
    frame["excluded_reason"] = frame["excluded_reason"].astype(object)
    return frame.sort_values("creation_time", kind="stable").reset_index(drop=True)


def _score(frame: pd.DataFrame, qualifying: list[str], settings: AnalysisSettings = SETTINGS) -> Analysis:
    return score_window(
        frame,
        qualifying,
        settings,
        vbr_host="vbr01.example.test",
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        analysis_date=date(2026, 11, 26),
    )


def _cards(frame: pd.DataFrame, qualifying: list[str], settings: AnalysisSettings = SETTINGS) -> pd.DataFrame:
    return _score(frame, qualifying, settings).scorecards.set_index("job_id")


# Job A: 8 Increments of 100 GiB, dedup 2.0x (raw 50), compression 2.0x / 2.5x (raw 50 / 40) alternating,
# so combined 4, 5, 4, 5, ...; plus one failed and one running session that are not scored.
def _job_a() -> list[dict[str, Any]]:
    scored = _job("A", [50, 40] * 4, dedup_raw=50)
    unscored = _job("A", [50, 50], dedup_raw=50, excluded=["failed", "running"], first_hour=100)
    for i, row in enumerate(unscored):
        row["session_id"] = f"A-x{i}"
    return scored + unscored


# Job B: 8 Increments of 200 GiB, dedup 1.0x (raw 100), compression 4, 5, 4, 5 then 2, 2.5, 2, 2.5
# (raw 25, 20, 25, 20, 50, 40, 50, 40): a degrading job.
def _job_b() -> list[dict[str, Any]]:
    return _job("B", [25, 20, 25, 20, 50, 40, 50, 40], data=200 * GIB, first_hour=1000)


# Job C: only 2 sessions, not qualifying.
def _job_c() -> list[dict[str, Any]]:
    return _job("C", [50, 50], first_hour=2000)


@functools.cache
def _abc_cards() -> pd.DataFrame:
    """Scorecards of jobs A and B (C does not qualify), computed once; tests only read them."""
    return _cards(_frame(_job_a(), _job_b(), _job_c()), ["A", "B"])


def test_stable_job_scorecard_end_to_end() -> None:
    card = _abc_cards().loc["A"]
    assert card["scope"] == "job"
    assert card["job_name"] == "Job A"
    assert card["vbr_host"] == "vbr01.example.test"
    assert card["analysis_date"] == date(2026, 11, 26)
    assert card["sessions_in_window"] == 10
    assert card["sessions_scored"] == 8
    assert card["sessions_excluded"] == 2
    assert card["excluded_by_reason"] == {"failed": 1, "running": 1, "no_data": 0, "implausible_ratio": 0}
    assert card["data_scored_bytes"] == 800 * GIB
    # after dedup: 8 x 50 GiB = 400; after both: 4 x 25 + 4 x 20 = 180 GiB
    assert card["dedup_factor"] == pytest.approx(2.0)  # 800 / 400
    assert card["compression_factor"] == pytest.approx(400 / 180)  # 2.2222
    assert card["combined_factor"] == pytest.approx(800 / 180)  # 4.4444
    assert card["dedup_score"] == pytest.approx(50.0)  # (2.0 - 1) / 1.5 * 75
    assert card["compression_score"] == pytest.approx(94.4444, abs=1e-4)  # 90 + (2.2222 - 2) / 0.5 * 10
    # older [4, 5, 4, 5] vs newer [4, 5, 4, 5]: change 0, t = 0, p = 1
    assert card["trend_change"] == pytest.approx(0.0)
    assert card["trend_p_value"] == pytest.approx(1.0)
    assert card["trend_classification"] == "STABLE"
    assert card["trend_score"] == pytest.approx(75.0)
    # mean 4.5, sample std sqrt(8 * 0.25 / 7) = 0.534522, CV = 0.118783 -> 100 - 23.7566 = 76.2434
    assert card["coefficient_of_variation"] == pytest.approx(0.118783, rel=1e-5)
    assert card["consistency_score"] == pytest.approx(76.2434, abs=1e-4)
    # robust: median 4.5, MAD 0.5 -> |z| = 0.5 / 0.7413 = 0.67: no anomaly
    assert card["anomalous_sessions"] == 0
    assert card["anomaly_score"] == pytest.approx(100.0)
    # 0.30*50 + 0.25*94.4444 + 0.20*75 + 0.15*76.2434 + 0.10*100 = 15 + 23.6111 + 15 + 11.4365 + 10 = 75.0476
    assert card["overall_score"] == pytest.approx(75.0476, abs=1e-4)
    assert card["grade"] == "B"
    assert card["efficiency_rating"] == "GOOD"
    assert card["quality_flags"] == {"CRITICAL_ANOMALIES": False, "DEGRADING_TREND": False, "HIGH_VARIANCE": False}


def test_degrading_job_scorecard_end_to_end() -> None:
    card = _abc_cards().loc["B"]
    assert card["dedup_factor"] == pytest.approx(1.0)
    # after both: 200 GiB x (0.25 + 0.2 + 0.25 + 0.2 + 0.5 + 0.4 + 0.5 + 0.4) = 540 GiB of 1600
    assert card["compression_factor"] == pytest.approx(1600 / 540)  # 2.963
    assert card["dedup_score"] == pytest.approx(0.0)
    assert card["compression_score"] == pytest.approx(100.0)
    # older [4, 5, 4, 5] mean 4.5, newer [2, 2.5, 2, 2.5] mean 2.25: change = 2.25 / 4.5 - 1 = -0.5
    assert card["trend_change"] == pytest.approx(-0.5)
    expected_p = stats.ttest_ind([4.0, 5.0, 4.0, 5.0], [2.0, 2.5, 2.0, 2.5], equal_var=False).pvalue
    assert card["trend_p_value"] == pytest.approx(expected_p, rel=1e-9)
    assert card["trend_p_value"] == pytest.approx(0.0015356, rel=1e-4)
    assert card["trend_classification"] == "DEGRADING"
    assert card["trend_score"] == pytest.approx(0.0)  # 75 + 250 * -0.5 = -50 -> 0
    # mean 27 / 8 = 3.375; sum of squares 11.375; std sqrt(11.375 / 7) = 1.27475; CV = 0.377705
    assert card["coefficient_of_variation"] == pytest.approx(0.377705, rel=1e-5)
    assert card["consistency_score"] == pytest.approx(24.4590, abs=1e-4)  # 100 - 75.541
    assert card["anomalous_sessions"] == 0  # median 3.25, MAD 1.0: max |z| = 1.75 / 1.4826 = 1.18
    # 0 + 0.25*100 + 0 + 0.15*24.4590 + 0.10*100 = 25 + 3.6689 + 10 = 38.6689
    assert card["overall_score"] == pytest.approx(38.6689, abs=1e-4)
    assert card["grade"] == "F"
    assert card["efficiency_rating"] == "POOR"
    assert card["quality_flags"] == {"CRITICAL_ANOMALIES": False, "DEGRADING_TREND": True, "HIGH_VARIANCE": True}


def test_only_qualifying_jobs_get_scorecards() -> None:
    assert list(_abc_cards().index) == ["A", "B", "*"]
    assert list(_cards(_frame(_job_a(), _job_b(), _job_c()), ["B"]).index) == ["B", "*"]


def test_host_rollup_row() -> None:
    host = _abc_cards().loc["*"]
    assert host["scope"] == "host"
    assert host["job_name"] == "(all jobs)"
    # every session of the host in the window: A 10 + B 8 + C 2; excluded: A's 2
    assert host["sessions_in_window"] == 20
    assert host["sessions_excluded"] == 2
    assert host["excluded_by_reason"] == {"failed": 1, "running": 1, "no_data": 0, "implausible_ratio": 0}
    assert host["sessions_scored"] == 16  # A 8 + B 8
    assert host["data_scored_bytes"] == 2400 * GIB  # 800 + 1600
    # size-weighted over jobs: after dedup 400 + 1600 = 2000, after both 180 + 540 = 720
    assert host["dedup_factor"] == pytest.approx(1.2)  # 2400 / 2000
    assert host["compression_factor"] == pytest.approx(2000 / 720)  # 2.7778
    assert host["combined_factor"] == pytest.approx(2400 / 720)  # 3.3333
    # component scores weighted by data: A 1/3, B 2/3
    assert host["dedup_score"] == pytest.approx(50 / 3)  # 16.667
    assert host["compression_score"] == pytest.approx((94.4444 + 2 * 100) / 3, abs=1e-4)  # 98.148
    assert host["trend_score"] == pytest.approx(25.0)  # (75 + 2 * 0) / 3
    assert host["consistency_score"] == pytest.approx((76.2434 + 2 * 24.4590) / 3, abs=1e-4)  # 41.7205
    assert host["anomaly_score"] == pytest.approx(100.0)
    # 0.3*16.667 + 0.25*98.148 + 0.2*25 + 0.15*41.7205 + 0.1*100 = 50.795 = (75.0476 + 2 * 38.6689) / 3
    assert host["overall_score"] == pytest.approx(50.7951, abs=1e-4)
    assert host["grade"] == "D"
    assert host["efficiency_rating"] == "POOR"
    assert host["trend_classification"] == "DEGRADING"
    assert math.isnan(host["trend_p_value"])
    # flags OR-ed over jobs
    assert host["quality_flags"] == {"CRITICAL_ANOMALIES": False, "DEGRADING_TREND": True, "HIGH_VARIANCE": True}


def test_window_columns_on_every_row() -> None:
    cards = _score(_frame(_job_a(), _job_b()), ["A", "B"]).scorecards
    assert cards["vbr_host"].tolist() == ["vbr01.example.test"] * 3
    assert cards["analysis_date"].tolist() == [date(2026, 11, 26)] * 3
    assert (cards["window_start"] == pd.Timestamp(WINDOW_START)).all()
    assert (cards["window_end"] == pd.Timestamp(WINDOW_END)).all()


def test_tiny_session_cannot_drag_the_job_factor() -> None:
    # 29 sessions of 1 TiB at compression 2x (raw 50) and one of 10 MiB at 0.4x (raw 250)
    sizes = [TIB] * 29 + [10 * MIB]
    frame = _frame(_job("J", [50] * 29 + [250], data=sizes))
    card = _cards(frame, ["J"]).loc["J"]
    # (29 TiB + 10 MiB) / (14.5 TiB + 25 MiB) = 30408714 / 15204377 MiB = 1.9999974
    assert card["compression_factor"] == pytest.approx(30408714 / 15204377, rel=1e-12)
    assert card["compression_factor"] == pytest.approx(2.0, abs=1e-5)
    assert card["compression_score"] == pytest.approx(90.0, abs=1e-3)  # an unweighted mean (1.9467x) gives 85
    assert card["dedup_factor"] == pytest.approx(1.0)


def _masking_frame() -> pd.DataFrame:
    # 27 Increments at 3.0x then 3 at 1.0x (combined set exactly; raw 33 / 100 are the nearest Veeam values)
    return _frame(_job("M", [33] * 27 + [100] * 3, combined=[3.0] * 27 + [1.0] * 3))


def test_robust_method_flags_the_burst_in_score_window() -> None:
    result = _score(_masking_frame(), ["M"])
    anomalies = result.session_anomalies.set_index("session_id")
    flagged = anomalies.index[anomalies["is_anomaly"]].tolist()
    assert flagged == ["M-027", "M-028", "M-029"]  # the last three
    assert anomalies["is_critical_anomaly"].sum() == 3  # 1.0 is 67% below 3.0
    # median 3.0, MAD 0 -> 1.2533 x mean |dev| (0.2) = 0.25066; z = -2 / 0.25066 = -7.979
    assert anomalies.loc["M-029", "anomaly_score"] == pytest.approx(-7.97894, rel=1e-5)
    assert anomalies.loc["M-029", "anomaly_reason"] == (
        "CRITICAL: combined 1.0x vs Increment baseline 3.0x (-67%), robust z -8.0"
    )
    assert anomalies.loc["M-000", "anomaly_score"] == 0.0
    assert pd.isna(anomalies.loc["M-000", "anomaly_reason"])
    card = result.scorecards.set_index("job_id").loc["M"]
    assert card["anomalous_sessions"] == 3
    assert card["critical_anomalies"] == 3
    assert card["anomaly_score"] == pytest.approx(0.0)  # 3 / 30 = 10% -> 100 - 100
    assert card["quality_flags"]["CRITICAL_ANOMALIES"] is True
    assert result.scorecards.set_index("job_id").loc["*", "quality_flags"]["CRITICAL_ANOMALIES"] is True


def test_zscore_method_is_masked_by_the_burst_in_score_window() -> None:
    result = _score(_masking_frame(), ["M"], AnalysisSettings(anomaly_method="zscore"))
    anomalies = result.session_anomalies.set_index("session_id")
    assert not anomalies["is_anomaly"].any()
    # mean 2.8, sample std sqrt(10.8 / 29) = 0.61026: z = -1.8 / 0.61026 = -2.9496, inside 3
    assert anomalies.loc["M-029", "anomaly_score"] == pytest.approx(-2.94958, rel=1e-5)
    card = result.scorecards.set_index("job_id").loc["M"]
    assert card["anomalous_sessions"] == 0
    assert card["anomaly_score"] == pytest.approx(100.0)
    assert card["quality_flags"]["CRITICAL_ANOMALIES"] is False


def test_full_is_not_an_anomaly_of_the_increment_series() -> None:
    # 25 Increments at 4.0x (dedup raw 50, compress raw 50) and 5 weekly Fulls at 2.0x (dedup raw 100)
    kinds = (["Increment"] * 5 + ["Full"]) * 5
    dedup = [50 if kind == "Increment" else 100 for kind in kinds]
    frame = _frame(_job("W", [50] * 30, dedup_raw=dedup, algorithm=kinds))
    anomalies = _score(frame, ["W"]).session_anomalies
    assert not anomalies["is_anomaly"].any()
    assert (anomalies["anomaly_score"] == 0.0).all()  # both series are constant
    # the same values as one series: median 4, MAD 0, mean |dev| 10 / 30 -> z = -2 / 0.41777 = -4.787
    one_kind = _frame(_job("W", [50] * 30, dedup_raw=dedup, algorithm="Increment"))
    flagged = _score(one_kind, ["W"]).session_anomalies
    assert flagged["is_anomaly"].sum() == 5
    assert flagged.loc[flagged["is_anomaly"], "anomaly_score"].to_numpy() == pytest.approx([-4.78736] * 5, rel=1e-5)


def test_kind_below_min_baseline_is_not_assessed() -> None:
    kinds = ["Increment"] * 10 + ["Full"] * 4
    frame = _frame(_job("F", [50] * 14, algorithm=kinds))
    anomalies = _score(frame, ["F"]).session_anomalies.set_index("session_id")
    fulls = anomalies.loc[[f"F-{i:03d}" for i in range(10, 14)]]
    assert fulls["anomaly_score"].isna().all()
    assert not fulls["is_anomaly"].any()
    assert fulls["anomaly_reason"].tolist() == ["not assessed: fewer than 5 Full sessions for a baseline"] * 4


def test_anomaly_is_critical_only_when_more_than_20_percent_below_baseline() -> None:
    # baseline 3.125x (raw 32); a drop to 2.5x (raw 40) is 20%: anomalous, not critical
    mild = _frame(_job("K", [32] * 27 + [40] * 3))
    result = _score(mild, ["K"])
    assert result.session_anomalies["is_anomaly"].sum() == 3
    assert result.session_anomalies["is_critical_anomaly"].sum() == 0
    card = result.scorecards.set_index("job_id").loc["K"]
    assert card["quality_flags"]["CRITICAL_ANOMALIES"] is False
    reason = result.session_anomalies["anomaly_reason"].dropna().iloc[0]
    assert reason.startswith("combined 2.5x vs Increment baseline 3.12x (-20%)")
    # a drop to 2.38x (raw 42) is 1 - 2.381 / 3.125 = 23.8%: critical
    severe = _score(_frame(_job("K", [32] * 27 + [42] * 3)), ["K"])
    assert severe.session_anomalies["is_critical_anomaly"].sum() == 3
    assert severe.scorecards.set_index("job_id").loc["K", "quality_flags"]["CRITICAL_ANOMALIES"] is True


def test_anomaly_above_baseline_is_not_critical() -> None:
    # 27 at 2.0x (raw 50) and 3 at 4.0x (raw 25): anomalous, but better, never critical
    result = _score(_frame(_job("U", [50] * 27 + [25] * 3)), ["U"])
    assert result.session_anomalies["is_anomaly"].sum() == 3
    assert result.session_anomalies["is_critical_anomaly"].sum() == 0


def test_improving_trend() -> None:
    # older [2, 2.5, 2, 2.5], newer [4, 5, 4, 5]: change = 4.5 / 2.25 - 1 = +1.0
    card = _cards(_frame(_job("I", [50, 40, 50, 40, 25, 20, 25, 20])), ["I"]).loc["I"]
    assert card["trend_change"] == pytest.approx(1.0)
    assert card["trend_classification"] == "IMPROVING"
    assert card["trend_score"] == pytest.approx(100.0)  # 75 + 250 -> capped
    assert card["quality_flags"]["DEGRADING_TREND"] is False
    assert _cards(_frame(_job("I", [50, 40, 50, 40, 25, 20, 25, 20])), ["I"]).loc["*", "trend_classification"] == (
        "IMPROVING"
    )


def test_small_significant_change_is_still_stable() -> None:
    # older [2.0, 2.0408, 2.0, 2.0408] (raw 50, 49), newer [2.0833, 2.1277, ...] (raw 48, 47)
    # change = 2.1055 / 2.0204 - 1 = +4.2%: significant (p = 0.0028) but below 5%
    raws = [50, 49, 50, 49, 48, 47, 48, 47]
    card = _cards(_frame(_job("S", raws)), ["S"]).loc["S"]
    assert card["trend_change"] == pytest.approx(((100 / 48 + 100 / 47) / 2) / ((100 / 50 + 100 / 49) / 2) - 1)
    assert card["trend_change"] == pytest.approx(0.04212, abs=1e-5)
    assert card["trend_p_value"] == pytest.approx(0.0027856, rel=1e-4)
    assert card["trend_classification"] == "STABLE"
    assert card["trend_score"] == pytest.approx(75.0)
    # with a 4% minimum change the same job is IMPROVING: 75 + 250 * 0.04212 = 85.53
    eager = _cards(_frame(_job("S", raws)), ["S"], AnalysisSettings(trend_min_change=0.04)).loc["S"]
    assert eager["trend_classification"] == "IMPROVING"
    assert eager["trend_score"] == pytest.approx(75 + 250 * eager["trend_change"])


def test_high_variance_flag_above_cv_025() -> None:
    # combined 2, 4, 2, 4, ... (raw 50 / 25): mean 3, std sqrt(8 * 1 / 7) = 1.069, CV = 0.3563 > 0.25
    card = _cards(_frame(_job("V", [50, 25] * 4)), ["V"]).loc["V"]
    assert card["coefficient_of_variation"] == pytest.approx(math.sqrt(8 / 7) / 3)
    assert card["consistency_score"] == pytest.approx(100 - 200 * math.sqrt(8 / 7) / 3)  # 28.73
    assert card["quality_flags"]["HIGH_VARIANCE"] is True
    # the same with a higher threshold
    relaxed = _cards(_frame(_job("V", [50, 25] * 4)), ["V"], AnalysisSettings(high_variance_cv=0.4)).loc["V"]
    assert relaxed["quality_flags"]["HIGH_VARIANCE"] is False


def test_constant_job_scores_without_warnings() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        card = _cards(_frame(_job("Z", [50] * 6, dedup_raw=40)), ["Z"]).loc["Z"]
    assert card["dedup_factor"] == pytest.approx(2.5)
    assert card["compression_factor"] == pytest.approx(2.0)
    assert card["dedup_score"] == pytest.approx(75.0)
    assert card["compression_score"] == pytest.approx(90.0)
    assert math.isnan(card["trend_p_value"])
    assert card["trend_classification"] == "STABLE"
    assert card["trend_score"] == pytest.approx(75.0)
    assert card["coefficient_of_variation"] == pytest.approx(0.0)
    assert card["consistency_score"] == pytest.approx(100.0)
    assert card["anomaly_score"] == pytest.approx(100.0)
    # 0.3*75 + 0.25*90 + 0.2*75 + 0.15*100 + 0.1*100 = 22.5 + 22.5 + 15 + 15 + 10 = 85 -> A
    assert card["overall_score"] == pytest.approx(85.0)
    assert card["grade"] == "A"
    assert card["efficiency_rating"] == "EXCELLENT"


def test_renamed_job_shows_newest_name() -> None:
    rows = _job("R", [50] * 6, job_name="Old name")
    rows[-1]["job_name"] = "New name"
    assert _cards(_frame(rows), ["R"]).loc["R", "job_name"] == "New name"


def test_session_anomalies_cover_scored_sessions_only() -> None:
    result = _score(_frame(_job_a(), _job_c()), ["A"])
    assert sorted(result.session_anomalies["session_id"]) == [f"A-{i:03d}" for i in range(8)]
    assert set(result.session_anomalies.columns) >= {
        "session_id",
        "job_id",
        "is_anomaly",
        "is_critical_anomaly",
        "anomaly_score",
        "anomaly_reason",
    }
    assert result.session_anomalies["is_anomaly"].dtype == bool


def test_quality_flags_are_plain_bools() -> None:
    cards = _score(_frame(_job_a(), _job_b()), ["A", "B"]).scorecards
    for flags in cards["quality_flags"]:
        assert list(flags) == list(SCORE_FLAGS)
        assert all(type(value) is bool for value in flags.values())
    assert all(isinstance(value, (int, np.integer)) for value in cards["excluded_by_reason"].iloc[0].values())


def test_no_qualifying_job_gives_no_scorecards() -> None:
    result = _score(_frame(_job_c()), [])
    assert result.scorecards.empty
    assert result.session_anomalies.empty
