"""scores: the component scores, the overall score, grade and rating, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from veeam_efficiency import scores
from veeam_efficiency.settings import AnalysisSettings

SETTINGS = AnalysisSettings()


@pytest.mark.parametrize(
    "factor, expected",
    [
        (0.5, 0.0),  # below 1.0x: capped at 0
        (1.0, 0.0),
        (1.75, 37.5),  # 0 + (1.75 - 1.0) / 1.5 * 75
        (2.5, 75.0),
        (3.0, 82.5),  # 75 + (3.0 - 2.5) / 1.0 * 15
        (3.5, 90.0),
        (4.25, 95.0),  # 90 + (4.25 - 3.5) / 1.5 * 10
        (5.0, 100.0),
        (8.0, 100.0),  # above 5.0x: capped at 100
    ],
)
def test_dedup_score(factor: float, expected: float) -> None:
    assert scores.dedup_score([factor])[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    "factor, expected",
    [
        (0.4, 0.0),
        (1.0, 0.0),
        (1.4, 37.5),  # (1.4 - 1.0) / 0.8 * 75
        (1.8, 75.0),
        (1.9, 82.5),  # 75 + (1.9 - 1.8) / 0.2 * 15
        (2.0, 90.0),
        (2.25, 95.0),  # 90 + (2.25 - 2.0) / 0.5 * 10
        (2.5, 100.0),
        (3.0303, 100.0),
    ],
)
def test_compression_score(factor: float, expected: float) -> None:
    assert scores.compression_score([factor])[0] == pytest.approx(expected)


def test_scores_are_vectorised_and_nan_stays_nan() -> None:
    result = scores.dedup_score(np.array([1.0, np.nan, 3.0]))
    assert result.shape == (3,)
    assert result[0] == 0.0
    assert np.isnan(result[1])
    assert result[2] == pytest.approx(82.5)
    assert np.isnan(scores.compression_score([np.nan])[0])


@pytest.mark.parametrize(
    "change, p_value, expected",
    [
        (-0.10, 0.01, "DEGRADING"),
        (0.10, 0.01, "IMPROVING"),
        (-0.10, 0.05, "STABLE"),  # p must be < 0.05
        (-0.10, 0.049, "DEGRADING"),
        (-0.05, 0.001, "STABLE"),  # change must be below -5%, not equal
        (-0.0501, 0.001, "DEGRADING"),
        (0.05, 0.001, "STABLE"),
        (0.0501, 0.001, "IMPROVING"),
        (-0.30, 0.20, "STABLE"),  # large but not significant
        (-0.30, np.nan, "STABLE"),  # no evidence
        (0.0, 0.0, "STABLE"),
    ],
)
def test_trend_classification(change: float, p_value: float, expected: str) -> None:
    assert scores.trend_classification([change], [p_value])[0] == expected


def test_trend_classification_uses_given_alpha_and_min_change() -> None:
    result = scores.trend_classification([-0.03, -0.03], [0.08, 0.12], alpha=0.10, min_change=0.02)
    assert list(result) == ["DEGRADING", "STABLE"]


@pytest.mark.parametrize(
    "change, classification, expected",
    [
        (-0.30, "STABLE", 75.0),  # STABLE is 75 whatever the change
        (0.30, "STABLE", 75.0),
        (-0.10, "DEGRADING", 50.0),  # 75 + 250 * -0.10
        (-0.20, "DEGRADING", 25.0),  # 75 - 50
        (-0.40, "DEGRADING", 0.0),  # 75 - 100 = -25 -> clipped to 0
        (0.06, "IMPROVING", 90.0),  # 75 + 15
        (0.20, "IMPROVING", 100.0),  # 75 + 50 = 125 -> clipped to 100
    ],
)
def test_trend_score(change: float, classification: str, expected: float) -> None:
    assert scores.trend_score([change], np.array([classification], dtype=object))[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    "cv, expected",
    [(0.0, 100.0), (0.1, 80.0), (0.25, 50.0), (0.4, 20.0), (0.5, 0.0), (0.9, 0.0)],  # 100 - 200 * CV, clipped
)
def test_consistency_score(cv: float, expected: float) -> None:
    assert scores.consistency_score([cv])[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    "percent, expected",
    [(0.0, 100.0), (2.5, 75.0), (3.3333, 66.667), (10.0, 0.0), (25.0, 0.0)],  # max(0, 100 - 10 * percent)
)
def test_anomaly_score(percent: float, expected: float) -> None:
    assert scores.anomaly_score([percent])[0] == pytest.approx(expected, abs=1e-3)


def test_overall_score_is_the_weighted_sum() -> None:
    components = {
        "dedup": [80.0, 100.0],
        "compression": [60.0, 0.0],
        "trend": [75.0, 0.0],
        "consistency": [90.0, 0.0],
        "anomaly": [100.0, 0.0],
    }
    result = scores.overall_score(components, SETTINGS.weights)
    # 0.30*80 + 0.25*60 + 0.20*75 + 0.15*90 + 0.10*100 = 24 + 15 + 15 + 13.5 + 10 = 77.5
    # 0.30*100 = 30
    assert result == pytest.approx([77.5, 30.0])


def test_overall_weights_each_component_correctly() -> None:
    weights = SETTINGS.weights
    for name, weight in weights.items():
        components = {other: [0.0] for other in weights} | {name: [100.0]}
        assert scores.overall_score(components, weights)[0] == pytest.approx(100.0 * weight), name


@pytest.mark.parametrize("value", [85.0, 70.0, 55.0, 40.0])
def test_equal_components_give_exactly_that_overall(value: float) -> None:
    # all five at a threshold must not fall just below it by rounding
    components = {name: [value] for name in SETTINGS.weights}
    assert scores.overall_score(components, SETTINGS.weights)[0] >= value


@pytest.mark.parametrize(
    "overall, expected",
    [
        (100.0, "A"),
        (85.0, "A"),
        (84.999, "B"),
        (70.0, "B"),
        (69.999, "C"),
        (55.0, "C"),
        (54.999, "D"),
        (40.0, "D"),
        (39.99, "F"),
        (0.0, "F"),
    ],
)
def test_grade_boundaries(overall: float, expected: str) -> None:
    assert scores.grade([overall], SETTINGS)[0] == expected


@pytest.mark.parametrize(
    "overall, expected",
    [
        (85.0, "EXCELLENT"),
        (84.999, "GOOD"),
        (70.0, "GOOD"),
        (69.999, "FAIR"),
        (55.0, "FAIR"),
        (54.999, "POOR"),
        (40.0, "POOR"),
        (0.0, "POOR"),
    ],
)
def test_rating_boundaries(overall: float, expected: str) -> None:
    assert scores.efficiency_rating([overall], SETTINGS)[0] == expected


def test_grade_uses_thresholds_from_settings() -> None:
    strict = AnalysisSettings(grade_a_min=95, grade_b_min=90, grade_c_min=80, grade_d_min=60)
    assert list(scores.grade([94.9, 90.0, 79.0, 60.0, 59.9], strict)) == ["B", "B", "D", "D", "F"]
    assert list(scores.efficiency_rating([95.0, 89.9, 80.0], strict)) == ["EXCELLENT", "FAIR", "FAIR"]
