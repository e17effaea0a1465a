"""The five component scores, the overall score, grade and rating: pure functions of arrays.

Each function takes whole columns (one value per job) and returns an array of the
same shape; none loops in Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from veeam_efficiency.settings import AnalysisSettings

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

# (factor, score) breakpoints; linear between them, capped at both ends.
DEDUP_BREAKPOINTS = ((1.0, 0.0), (2.5, 75.0), (3.5, 90.0), (5.0, 100.0))
COMPRESSION_BREAKPOINTS = ((1.0, 0.0), (1.8, 75.0), (2.0, 90.0), (2.5, 100.0))

STABLE, DEGRADING, IMPROVING = "STABLE", "DEGRADING", "IMPROVING"
STABLE_TREND_SCORE = 75.0


def piecewise_score(factor: ArrayLike, breakpoints: tuple[tuple[float, float], ...]) -> FloatArray:
    """Score a factor by linear interpolation through ``breakpoints``; 0 below, 100 above.

    NaN stays NaN so a missing factor is never scored as zero.
    """
    xs, ys = zip(*breakpoints, strict=True)
    return np.interp(np.asarray(factor, dtype=float), xs, ys)


def dedup_score(dedup_factor: ArrayLike) -> FloatArray:
    """1.0x -> 0, 2.5x -> 75, 3.5x -> 90, 5.0x -> 100."""
    return piecewise_score(dedup_factor, DEDUP_BREAKPOINTS)


def compression_score(compression_factor: ArrayLike) -> FloatArray:
    """1.0x -> 0, 1.8x -> 75, 2.0x -> 90, 2.5x -> 100."""
    return piecewise_score(compression_factor, COMPRESSION_BREAKPOINTS)


def trend_classification(
    change: ArrayLike, p_value: ArrayLike, *, alpha: float = 0.05, min_change: float = 0.05
) -> npt.NDArray[np.object_]:
    """DEGRADING / IMPROVING only when the t-test is significant *and* the change is material.

    A NaN p-value (too few sessions, or no variation at all) is STABLE: no evidence.
    """
    change, p_value = np.asarray(change, dtype=float), np.asarray(p_value, dtype=float)
    significant = p_value < alpha
    return np.select(
        [significant & (change < -min_change), significant & (change > min_change)],
        [DEGRADING, IMPROVING],
        default=STABLE,
    ).astype(object)


def trend_score(change: ArrayLike, classification: ArrayLike) -> FloatArray:
    """75 when STABLE, else ``clip(75 + 250 * change, 0, 100)``."""
    change = np.asarray(change, dtype=float)
    moving = np.clip(STABLE_TREND_SCORE + 250.0 * change, 0.0, 100.0)
    return np.where(np.asarray(classification) == STABLE, STABLE_TREND_SCORE, moving)


def consistency_score(coefficient_of_variation: ArrayLike) -> FloatArray:
    """``clip(100 - 200 * CV, 0, 100)``: a CV of 0.5 or more scores 0."""
    return np.clip(100.0 - 200.0 * np.asarray(coefficient_of_variation, dtype=float), 0.0, 100.0)


def anomaly_score(anomalous_percent: ArrayLike) -> FloatArray:
    """``max(0, 100 - 10 * percent of sessions that are anomalous)``."""
    return np.maximum(0.0, 100.0 - 10.0 * np.asarray(anomalous_percent, dtype=float))


def overall_score(components: dict[str, ArrayLike], weights: dict[str, float]) -> FloatArray:
    """Weighted sum of the component scores (weights sum to 1, checked in the settings)."""
    return np.sum([weights[name] * np.asarray(components[name], dtype=float) for name in weights], axis=0)


def grade(overall: ArrayLike, settings: AnalysisSettings) -> npt.NDArray[np.object_]:
    """A >= 85, B >= 70, C >= 55, D >= 40, F below (thresholds from the settings)."""
    overall = np.asarray(overall, dtype=float)
    bounds = [settings.grade_a_min, settings.grade_b_min, settings.grade_c_min, settings.grade_d_min]
    return np.select([overall >= bound for bound in bounds], ["A", "B", "C", "D"], default="F").astype(object)


def efficiency_rating(overall: ArrayLike, settings: AnalysisSettings) -> npt.NDArray[np.object_]:
    """EXCELLENT >= 85, GOOD >= 70, FAIR >= 55, POOR below (the A, B and C thresholds)."""
    overall = np.asarray(overall, dtype=float)
    bounds = [settings.grade_a_min, settings.grade_b_min, settings.grade_c_min]
    return np.select([overall >= bound for bound in bounds], ["EXCELLENT", "GOOD", "FAIR"], default="POOR").astype(
        object
    )
