"""Per-group statistics over a session table, computed in one pass per statistic.

The groups (jobs, or a job's Full/Increment series) are never iterated in Python:
pandas computes the per-group moments and scipy evaluates the tests on whole arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

# 1.4826 makes the MAD estimate the standard deviation of normal data; when more than
# half a series is identical the MAD is 0, and the mean absolute deviation (scaled by
# sqrt(pi/2) = 1.2533) takes over, as in Iglewicz & Hoaglin's modified z-score.
MAD_SCALE = 1.4826
MEAN_AD_SCALE = 1.2533


def welch_trend(frame: pd.DataFrame, by: str | Sequence[str], value: str, order: str) -> pd.DataFrame:
    """Welch's t-test of ``value``: the older half of each group's sessions against the newer half.

    Sessions are put in ``order`` within each group; with an odd count the middle
    session goes to the newer half. Returns, per group: ``older_mean``,
    ``newer_mean``, ``change`` (newer / older - 1) and ``p_value`` (two-sided).

    Edge cases: a half with fewer than 2 sessions, or both halves constant, give a
    NaN p-value (no evidence of a trend), never an error.
    """
    keys = [by] if isinstance(by, str) else list(by)
    # only the columns used: sorting the whole session table would move every column
    ordered = frame[list(dict.fromkeys([*keys, order, value]))].sort_values([*keys, order], kind="stable")
    grouped = ordered.groupby(keys, sort=False)
    position = grouped.cumcount()
    size = grouped[value].transform("size")
    # a categorical, not an array of strings, so grouping by it is integer work
    in_newer = (position >= size // 2).to_numpy().astype(np.int8)
    half = pd.Series(pd.Categorical.from_codes(in_newer, ["older", "newer"]), index=ordered.index)
    moments = ordered.groupby([*keys, half], sort=False)[value].agg(["mean", "std", "count"]).unstack()
    # a half no group has (one session each, or no sessions) is still a column, of NaN
    moments = moments.reindex(columns=pd.MultiIndex.from_product([("mean", "std", "count"), ("older", "newer")]))
    older = {name: moments[(name, "older")].to_numpy(dtype=float) for name in ("mean", "std", "count")}
    newer = {name: moments[(name, "newer")].to_numpy(dtype=float) for name in ("mean", "std", "count")}
    with np.errstate(divide="ignore", invalid="ignore"):
        _, p_value = stats.ttest_ind_from_stats(
            older["mean"],
            older["std"],
            older["count"],
            newer["mean"],
            newer["std"],
            newer["count"],
            equal_var=False,
        )
        change = newer["mean"] / older["mean"] - 1.0
    return pd.DataFrame(
        {"older_mean": older["mean"], "newer_mean": newer["mean"], "change": change, "p_value": p_value},
        index=moments.index,
    )


def standard_scores(
    frame: pd.DataFrame,
    by: Sequence[str],
    value: str,
    *,
    method: Literal["robust", "zscore"] = "robust",
    min_baseline: int = 5,
) -> pd.DataFrame:
    """How far each session's ``value`` lies from the baseline of its group, in standard scores.

    ``robust`` (default): ``(x - median) / (1.4826 * MAD)``, falling back to
    ``1.2533 * mean absolute deviation`` when the MAD is 0. A burst of anomalies
    barely moves a median, so it cannot hide itself. ``zscore``: ``(x - mean) / std``
    (sample std), which a burst can mask: 27 sessions at 3.0 and 3 at 1.0 give
    z = -2.95.

    Returns ``baseline`` and ``z`` aligned to ``frame``. Groups with fewer than
    ``min_baseline`` sessions get NaN (not assessed); a constant group gets z = 0.
    """
    grouped = frame.groupby(list(by), sort=False)[value]
    x = frame[value]
    if method == "robust":
        baseline = grouped.transform("median")
        deviation = (x - baseline).abs()
        by_group = deviation.groupby([frame[key] for key in by], sort=False)
        scale = MAD_SCALE * by_group.transform("median")
        scale = scale.where(scale > 0, MEAN_AD_SCALE * by_group.transform("mean"))
    elif method == "zscore":
        baseline = grouped.transform("mean")
        scale = grouped.transform("std")
    else:
        raise ValueError(f"unknown anomaly method {method!r}: use 'robust' or 'zscore'")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(scale > 0, (x - baseline) / scale, 0.0)
    assessed = grouped.transform("size") >= min_baseline
    return pd.DataFrame(
        {"baseline": baseline.where(assessed), "z": pd.Series(z, index=frame.index).where(assessed)},
        index=frame.index,
    )
