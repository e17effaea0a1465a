"""grouped_stats: Welch's trend test and the standard scores behind anomalies, on hand-built tables."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from veeam_efficiency.grouped_stats import standard_scores, welch_trend


def _series(values_by_job: dict[str, Sequence[float]], *, shuffle: bool = True) -> pd.DataFrame:
    """One row per session, ``order`` = position in time; rows deliberately out of time order."""
    rows = [
        {"job_id": job, "order": position, "value": value}
        for job, values in values_by_job.items()
        for position, value in enumerate(values)
    ]
    frame = pd.DataFrame(rows)
    return frame.iloc[::-1].reset_index(drop=True) if shuffle else frame


def _trend(values_by_job: dict[str, Sequence[float]]) -> pd.DataFrame:
    return welch_trend(_series(values_by_job), "job_id", "value", "order")


def test_welch_trend_matches_scipy_on_a_hand_example() -> None:
    older, newer = [3.0, 3.1, 2.9], [2.0, 2.1, 1.9]
    row = _trend({"a": older + newer}).loc["a"]
    assert row["older_mean"] == pytest.approx(3.0)
    assert row["newer_mean"] == pytest.approx(2.0)
    assert row["change"] == pytest.approx(-1 / 3)  # 2.0 / 3.0 - 1
    expected = stats.ttest_ind(older, newer, equal_var=False).pvalue
    assert row["p_value"] == pytest.approx(expected, rel=1e-9)
    # by hand: both std 0.1, n 3: t = 1.0 / sqrt(0.01/3 + 0.01/3) = 12.247, df = 4 -> p = 0.000255
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(12.2474487, 4), rel=1e-6)
    assert row["p_value"] == pytest.approx(0.000255217, rel=1e-4)


def test_welch_trend_odd_count_puts_middle_session_in_newer_half() -> None:
    row = _trend({"a": [1.0, 2.0, 3.0, 4.0, 5.0]}).loc["a"]
    assert row["older_mean"] == pytest.approx(1.5)  # [1, 2]
    assert row["newer_mean"] == pytest.approx(4.0)  # [3, 4, 5]
    assert row["change"] == pytest.approx(4.0 / 1.5 - 1)  # 1.6667
    expected = stats.ttest_ind([1.0, 2.0], [3.0, 4.0, 5.0], equal_var=False).pvalue
    assert row["p_value"] == pytest.approx(expected, rel=1e-9)
    assert row["p_value"] == pytest.approx(0.0494163, rel=1e-5)


def test_welch_trend_orders_by_time_not_by_row() -> None:
    frame = pd.DataFrame({"job_id": ["a"] * 4, "order": [3, 0, 2, 1], "value": [10.0, 1.0, 9.0, 2.0]})
    row = welch_trend(frame, "job_id", "value", "order").loc["a"]
    assert row["older_mean"] == pytest.approx(1.5)  # orders 0, 1 -> values 1, 2
    assert row["newer_mean"] == pytest.approx(9.5)  # orders 2, 3 -> values 9, 10


def test_welch_trend_many_groups_at_once() -> None:
    result = _trend({"b": [5.0, 5.0, 4.0, 4.0], "a": [3.0, 3.1, 2.9, 2.0, 2.1, 1.9], "c": [1.0, 2.0, 3.0]})
    assert set(result.index) == {"a", "b", "c"}
    assert result.loc["a", "change"] == pytest.approx(-1 / 3)
    assert result.loc["b", "change"] == pytest.approx(-0.2)  # 4 / 5 - 1
    assert result.loc["c", "older_mean"] == pytest.approx(1.0)  # 3 sessions: older [1], newer [2, 3]
    assert result.loc["c", "newer_mean"] == pytest.approx(2.5)
    assert math.isnan(result.loc["c", "p_value"])  # a half of one session: no variance, no evidence


def test_welch_trend_constant_input_gives_nan_p_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = _trend({"a": [3.0] * 8}).loc["a"]
    assert row["change"] == pytest.approx(0.0)
    assert math.isnan(row["p_value"])


def test_welch_trend_too_few_sessions_gives_nan_p_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = _trend({"a": [3.0, 2.0, 1.0], "b": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    assert math.isnan(result.loc["a", "p_value"])  # older half: one session
    assert result.loc["b", "p_value"] < 0.05


def test_welch_trend_single_session_groups_give_nan_not_keyerror() -> None:
    result = _trend({"a": [3.0], "b": [2.0]})
    assert result["p_value"].isna().all()
    assert result.loc["a", "newer_mean"] == pytest.approx(3.0)


# --- standard scores -------------------------------------------------------------------------


def _masking_example() -> pd.DataFrame:
    """27 sessions at 3.0x then 3 at 1.0x, one job, one algorithm."""
    values = [3.0] * 27 + [1.0] * 3
    return pd.DataFrame({"job_id": "j", "algorithm": "Increment", "value": values})


def test_robust_scores_flag_a_burst_that_zscore_masks() -> None:
    frame = _masking_example()
    robust = standard_scores(frame, ["job_id", "algorithm"], "value", method="robust")
    # median 3.0; MAD 0 (27 of 30 deviations are 0) -> fallback:
    # mean absolute deviation = 3 * 2.0 / 30 = 0.2; scale 1.2533 * 0.2 = 0.25066
    # z(1.0) = (1.0 - 3.0) / 0.25066 = -7.979
    assert robust["baseline"].tolist() == [3.0] * 30
    assert robust["z"].iloc[:27].tolist() == [0.0] * 27
    assert robust["z"].iloc[27:].to_numpy() == pytest.approx([-7.97894] * 3, rel=1e-5)
    assert (robust["z"].abs() > 3).sum() == 3

    plain = standard_scores(frame, ["job_id", "algorithm"], "value", method="zscore")
    # mean = (27*3 + 3*1) / 30 = 2.8; sum of squares = 27*0.2^2 + 3*1.8^2 = 1.08 + 9.72 = 10.8
    # sample std = sqrt(10.8 / 29) = 0.61026; z(1.0) = -1.8 / 0.61026 = -2.9496; z(3.0) = 0.2 / 0.61026 = 0.3277
    assert plain["baseline"].iloc[0] == pytest.approx(2.8)
    assert plain["z"].iloc[27:].to_numpy() == pytest.approx([-2.94958] * 3, rel=1e-5)
    assert plain["z"].iloc[0] == pytest.approx(0.327731, rel=1e-5)
    assert (plain["z"].abs() > 3).sum() == 0


def test_robust_scores_with_nonzero_mad() -> None:
    frame = pd.DataFrame({"job_id": "j", "algorithm": "Full", "value": [1.0, 2.0, 3.0, 4.0, 100.0]})
    result = standard_scores(frame, ["job_id", "algorithm"], "value")
    # median 3; |deviations| [2, 1, 0, 1, 97] -> MAD 1; scale 1.4826
    assert result["baseline"].tolist() == [3.0] * 5
    assert result["z"].to_numpy() == pytest.approx([-2 / 1.4826, -1 / 1.4826, 0.0, 1 / 1.4826, 97 / 1.4826])


def test_each_kind_has_its_own_baseline() -> None:
    # a weekly Full at 1.5x is not an anomaly of an Increment series at 3.0x
    frame = pd.DataFrame(
        {
            "job_id": ["j"] * 30 + ["k"] * 5,
            "algorithm": ["Increment"] * 25 + ["Full"] * 5 + ["Increment"] * 5,
            "value": [3.0] * 25 + [1.5] * 5 + [1.5] * 5,
        }
    )
    result = standard_scores(frame, ["job_id", "algorithm"], "value")
    assert result["baseline"].tolist() == [3.0] * 25 + [1.5] * 10
    assert result["z"].tolist() == [0.0] * 35  # each series is constant
    # grouped by job alone the Fulls stand out:
    # median 3.0, MAD 0, mean |dev| = 5 * 1.5 / 30 = 0.25, z = -1.5 / (1.2533 * 0.25) = -4.787
    by_job = standard_scores(frame, ["job_id"], "value")
    assert by_job["z"].iloc[25:30].to_numpy() == pytest.approx([-4.78736] * 5, rel=1e-5)


def test_groups_below_min_baseline_are_not_assessed() -> None:
    frame = pd.DataFrame(
        {"job_id": "j", "algorithm": ["Increment"] * 5 + ["Full"] * 4, "value": [3.0] * 5 + [1.0, 1.0, 1.0, 9.0]}
    )
    result = standard_scores(frame, ["job_id", "algorithm"], "value", min_baseline=5)
    assert result["z"].iloc[:5].tolist() == [0.0] * 5
    assert result["z"].iloc[5:].isna().all()
    assert result["baseline"].iloc[5:].isna().all()
    lower = standard_scores(frame, ["job_id", "algorithm"], "value", min_baseline=4)
    # Fulls: median 1, |dev| [0, 0, 0, 8]: MAD 0 -> mean |dev| 2, scale 2.5066; z(9) = 8 / 2.5066 = 3.1916
    assert lower["z"].iloc[8] == pytest.approx(8 / (1.2533 * 2.0))


def test_standard_scores_keep_the_frame_index() -> None:
    frame = _masking_example()
    frame.index = range(100, 130)
    result = standard_scores(frame, ["job_id", "algorithm"], "value")
    assert list(result.index) == list(range(100, 130))
    assert result.loc[129, "z"] < -3


def test_constant_group_scores_zero_without_warnings() -> None:
    frame = pd.DataFrame({"job_id": "j", "algorithm": "Increment", "value": [2.0] * 6})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("robust", "zscore"):
            result = standard_scores(frame, ["job_id", "algorithm"], "value", method=method)
            assert result["z"].tolist() == [0.0] * 6


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown anomaly method"):
        standard_scores(_masking_example(), ["job_id"], "value", method="iqr")  # type: ignore[arg-type]


def test_zscore_is_plain_mean_and_sample_std() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    frame = pd.DataFrame({"job_id": "j", "algorithm": "Increment", "value": values})
    result = standard_scores(frame, ["job_id", "algorithm"], "value", method="zscore")
    # mean 4; squares 9 + 4 + 1 + 0 + 36 = 50; std = sqrt(50 / 4) = 3.5355
    assert result["z"].to_numpy() == pytest.approx((values - 4.0) / math.sqrt(12.5))
