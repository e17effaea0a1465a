"""What a backup kind reduces by nature: dedup and compression per session, calibrated on real data.

A Veeam incremental holds only changed blocks, so its per-session dedup is about 1.0x
whatever the settings, while a full dedups its whole image; compression differs too.
The constants below were derived by :func:`calibrate` from the real VBR sample
(``../shared/data``, 4,630 scorable job sessions of 7 jobs); method, figures and
sources are in docs/context-grade.md, and tests/unit/test_calibration.py checks
that they still match the sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from veeam_efficiency.grouped_stats import MAD_SCALE

# docs/context-grade.md, "Calibration": the median over jobs of each job's median factor per kind
EXPECTED_DEDUP_FACTOR = {"Full": 2.75, "Increment": 1.03}
EXPECTED_COMPRESSION_FACTOR = {"Full": 1.81, "Increment": 2.70}
# a synthetic full is built from the chain on the repository: judged as a full
KIND_OF_ALGORITHM = {"Full": "Full", "Synthetic": "Full", "Increment": "Increment"}
# docs/context-grade.md, "Noise": robust sd of log(combined factor) around each job's level, incrementals
NOISE_LOG_SD = 0.087
NOISE_LAG1_AUTOCORRELATION = 0.12  # median over the sample's incremental series of 8+ sessions
MIN_SESSIONS_PER_KIND = 3  # a job's kind counts in the calibration with this many sessions
TOLERANCE = 0.05  # relative: how far the sample may move before the constants are stale


def calibrate(scorable: pd.DataFrame) -> dict[str, float]:
    """The calibration figures of a table of scorable sessions (one VBR server's history).

    Returns ``{"<kind>_dedup", "<kind>_compression"}`` for Full and Increment (the median
    over jobs of each job's median factor of that kind, jobs with at least
    ``MIN_SESSIONS_PER_KIND`` such sessions), ``noise_log_sd`` (1.4826 x the median
    absolute deviation of log combined factor around each job's incremental median,
    pooled) and ``lag1_autocorrelation`` (median over incremental series of 8+ sessions).
    A kind absent from the table gives NaN.
    """
    kinds = scorable["algorithm"].astype(str).map(KIND_OF_ALGORITHM)
    frame = pd.DataFrame(
        {
            "job_id": scorable["job_id"].astype(str),
            "kind": kinds,
            "dedup": scorable["dedup_ratio"].astype(float),
            "compression": scorable["compression_ratio"].astype(float),
            "log_combined": np.log(scorable["combined_ratio"].astype(float)),
            "time": scorable["creation_time"],
        }
    )
    per_job = frame.groupby(["job_id", "kind"]).agg(
        n=("dedup", "size"), dedup=("dedup", "median"), compression=("compression", "median")
    )
    per_job = per_job[per_job["n"] >= MIN_SESSIONS_PER_KIND]
    figures: dict[str, float] = {}
    for kind in ("Full", "Increment"):
        rows = per_job.xs(kind, level="kind") if kind in per_job.index.get_level_values("kind") else per_job.iloc[0:0]
        figures[f"{kind.lower()}_dedup"] = float(rows["dedup"].median())
        figures[f"{kind.lower()}_compression"] = float(rows["compression"].median())
    increments = frame[frame["kind"] == "Increment"].sort_values(["job_id", "time"], kind="stable")
    level = increments.groupby("job_id")["log_combined"].transform("median")
    figures["noise_log_sd"] = float(MAD_SCALE * (increments["log_combined"] - level).abs().median())
    residual = increments["log_combined"] - level
    previous = residual.groupby(increments["job_id"]).shift(1)
    pairs = pd.DataFrame({"job_id": increments["job_id"], "x": residual, "lag": previous}).dropna()
    long_enough = pairs.groupby("job_id")["x"].transform("size") >= 8
    pairs = pairs[long_enough]
    moments = pairs.assign(xy=pairs["x"] * pairs["lag"], xx=pairs["x"] ** 2, ll=pairs["lag"] ** 2)
    sums = moments.groupby("job_id")[["xy", "xx", "ll"]].sum()
    figures["lag1_autocorrelation"] = float((sums["xy"] / np.sqrt(sums["xx"] * sums["ll"])).median())
    return figures
