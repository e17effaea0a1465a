"""When a job's efficiency changed level: one change point per job, or none.

Each job's sessions are split into one series per backup kind (Full, Increment,
Synthetic), so a weekly full beside daily incrementals is never taken for a shift:
each kind is compared only with itself. In each series of the log combined factor,
``ruptures`` (``KernelCPD``, linear kernel: the exact least-squares single split, in C)
places the best split; whether it is a real level shift is then decided for all
series at once: the medians before and after must differ by at least
``MIN_SHIFT`` and by ``MIN_Z`` robust standard errors (the noise is measured on the
residuals around the two medians, so the shift itself does not inflate it), and a
Mann-Whitney test (scipy) of before against after must agree, so a few outliers at
either end of the window never make a shift.
Thresholds and their false-alarm and detection rates: docs/context-grade.md and
``python -m bench.change_points``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import ruptures
from scipy import stats

from veeam_efficiency.grouped_stats import MAD_SCALE, MEAN_AD_SCALE

MIN_SEGMENT = 3  # sessions on each side of a change point
MIN_SERIES = 8  # sessions of one kind a series needs before it is searched
MIN_SHIFT = 0.15  # relative change of the combined factor worth a backup admin's time
MIN_Z = 5.5  # robust standard errors (docs/context-grade.md, "Change points": calibrated by the bench)
MAX_P_VALUE = 0.05  # Mann-Whitney, before vs after: an outlier or two never make a shift
SIGMA_FLOOR = 0.02  # log units: Veeam's ratios are whole percents, so a 1-step change is 1-3%


@dataclass(frozen=True)
class Series:
    """The sessions of one (job, backup kind) series, in time order, as arrays."""

    job_id: np.ndarray
    kind: np.ndarray
    times: np.ndarray
    log_factor: np.ndarray
    data_bytes: np.ndarray
    starts: np.ndarray  # first position of each series
    sizes: np.ndarray


def change_points(
    scorable: pd.DataFrame, *, min_shift: float = MIN_SHIFT, min_z: float = MIN_Z, max_p: float = MAX_P_VALUE
) -> pd.DataFrame:
    """The most significant level shift of each job's combined factor, or none.

    ``scorable``: scored sessions with ``job_id``, ``algorithm``, ``creation_time``,
    ``combined_ratio`` and ``data_size_bytes``. Returns one row per job that has a
    change point (index ``job_id``): ``change_point_at`` (the first session after
    it), ``change_point_shift`` (after / before - 1 of the median combined factor;
    -0.5 = halved), ``change_point_kind``, ``factor_before``, ``factor_after``,
    ``z``, ``series_raw_bytes`` (the data of that series in the window).

    Edge cases: a series shorter than ``MIN_SERIES`` is not searched; a constant
    series has no change point; an empty table gives an empty result.
    """
    series = sorted_series(scorable)
    candidates = best_splits(series)
    if candidates.empty:
        return _empty()
    large = candidates[(candidates["z"] >= min_z) & (candidates["change_point_shift"].abs() >= min_shift)]
    # the rank test only for the few splits large enough to matter: one scipy call costs as
    # much as ruptures' whole search, and most series (stable jobs) never get this far
    found = large[mann_whitney_p(series, large) <= max_p]
    # the most significant shift of each job, over its kinds
    best = found.sort_values(["job_id", "z"], ascending=[True, False], kind="stable").drop_duplicates("job_id")
    return best.set_index("job_id")[
        [
            "change_point_at",
            "change_point_shift",
            "change_point_kind",
            "factor_before",
            "factor_after",
            "z",
            "series_raw_bytes",
        ]
    ]


def sorted_series(scorable: pd.DataFrame) -> Series:
    """Sessions sorted by (job, kind, time) once, with where each series starts."""
    frame = scorable[["job_id", "algorithm", "creation_time", "combined_ratio", "data_size_bytes"]]
    frame = frame.assign(job_id=frame["job_id"].astype(str), algorithm=frame["algorithm"].astype(str))
    frame = frame.sort_values(["job_id", "algorithm", "creation_time"], kind="stable")
    job = frame["job_id"].to_numpy(dtype=object)
    kind = frame["algorithm"].to_numpy(dtype=object)
    new = np.ones(len(frame), dtype=bool)
    if len(frame) > 1:
        new[1:] = (job[1:] != job[:-1]) | (kind[1:] != kind[:-1])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(frame)))
    return Series(
        job_id=job,
        kind=kind,
        # naive UTC datetime64, not an object array of Timestamps (a Python object per session)
        times=pd.to_datetime(frame["creation_time"], utc=True).dt.tz_localize(None).to_numpy(),
        log_factor=np.log(frame["combined_ratio"].to_numpy(dtype=float)),
        data_bytes=frame["data_size_bytes"].to_numpy(dtype=float),
        starts=starts,
        sizes=sizes,
    )


def best_splits(series: Series) -> pd.DataFrame:
    """For every long-enough series: ruptures' best single split, its size and its z.

    The split is located by ``ruptures`` per series (it takes one signal at a time;
    the loop runs over series, never over sessions); everything else is grouped numpy.
    ``start``, ``size`` and ``split`` locate the series and the split for
    :func:`mann_whitney_p`.
    """
    searched = series.sizes >= MIN_SERIES
    starts, sizes = series.starts[searched], series.sizes[searched]
    if len(starts) == 0:
        return pd.DataFrame()
    splits = np.array(
        [
            _split(series.log_factor[start : start + size])
            for start, size in zip(starts.tolist(), sizes.tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    ids = np.repeat(np.arange(len(starts)), sizes)
    positions = np.concatenate([np.arange(start, start + size) for start, size in zip(starts, sizes, strict=True)])
    after = (positions - np.repeat(starts, sizes)) >= np.repeat(splits, sizes)
    values = pd.DataFrame({"series": ids, "after": after, "y": series.log_factor[positions]})
    medians = values.groupby(["series", "after"], sort=True)["y"].median().unstack()
    counts = values.groupby(["series", "after"], sort=True)["y"].size().unstack()
    residual = (values["y"] - values.groupby(["series", "after"], sort=False)["y"].transform("median")).abs()
    by_series = residual.groupby(ids)
    sigma = noise(by_series)
    before_median, after_median = medians[False].to_numpy(), medians[True].to_numpy()
    n_before, n_after = counts[False].to_numpy(dtype=float), counts[True].to_numpy(dtype=float)
    delta = after_median - before_median
    z = np.abs(delta) / (sigma * np.sqrt(1.0 / n_before + 1.0 / n_after))
    first_after = starts + splits
    return pd.DataFrame(
        {
            "job_id": series.job_id[starts],
            "change_point_kind": series.kind[starts],
            "change_point_at": pd.to_datetime(series.times[first_after], utc=True),
            "change_point_shift": np.expm1(delta),
            "factor_before": np.exp(before_median),
            "factor_after": np.exp(after_median),
            "z": z,
            "series_raw_bytes": _series_sums(series.data_bytes, starts, sizes),
            "start": starts,
            "size": sizes,
            "split": splits,
        }
    )


def mann_whitney_p(series: Series, splits: pd.DataFrame) -> np.ndarray:
    """Each split's Mann-Whitney p-value of before against after (1.0 for a constant series).

    Ranks: the heavy tails of real ratios and their whole-percent ties do not fool it.
    ``splits``: rows of :func:`best_splits` (``start``, ``size``, ``split``).
    """
    p_values = []
    for start, size, split in zip(
        splits["start"].tolist(), splits["size"].tolist(), splits["split"].tolist(), strict=True
    ):
        signal = series.log_factor[start : start + size]
        if np.ptp(signal) == 0:
            p_values.append(1.0)
        else:
            p_values.append(float(stats.mannwhitneyu(signal[:split], signal[split:], method="asymptotic").pvalue))
    return np.asarray(p_values, dtype=float)


def noise(residuals: Any) -> np.ndarray:
    """Each series' noise from its absolute residuals (grouped): the larger of two robust scales.

    Veeam's whole-percent ratios often make more than half the residuals exactly 0, which
    shrinks the MAD alone far below the real spread; the mean absolute deviation keeps it.
    """
    scale = np.maximum(MAD_SCALE * residuals.median(), MEAN_AD_SCALE * residuals.mean())
    return np.asarray(scale.clip(lower=SIGMA_FLOOR), dtype=float)


def _series_sums(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    return cumulative[starts + sizes] - cumulative[starts]


def _split(signal: np.ndarray) -> int:
    """Index of the first session after ruptures' best single split of ``signal``."""
    algo = ruptures.KernelCPD(kernel="linear", min_size=MIN_SEGMENT, jump=1).fit(signal.reshape(-1, 1))
    return int(algo.predict(n_bkps=1)[0])


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "change_point_at": pd.Series([], dtype="datetime64[ns, UTC]"),
            "change_point_shift": pd.Series([], dtype=float),
            "change_point_kind": pd.Series([], dtype=object),
            "factor_before": pd.Series([], dtype=float),
            "factor_after": pd.Series([], dtype=float),
            "z": pd.Series([], dtype=float),
            "series_raw_bytes": pd.Series([], dtype=float),
        },
        index=pd.Index([], name="job_id", dtype=object),
    )
