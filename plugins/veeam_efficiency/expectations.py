"""What each job can reach: expected dedup and compression from its backup kinds, peers and settings.

Rules (docs/context-grade.md, "Expected factors"):

- per backup kind (Full, Increment; a synthetic full counts as a full), the calibrated
  factor of :mod:`~veeam_efficiency.calibration`, shrunk towards the job's peers: the
  other jobs of the same type on the same VBR server (geometric mean, the calibration
  weighing as ``PEER_PRIOR_WEIGHT`` peers). A job's own level never sets its own
  expectation, or every stable job would meet it;
- a job's factor is the data-weighted combination of its kinds' factors;
- with settings (contract v2): on a deduplicating appliance set up as Veeam advises
  (inline dedup off, compression off or decompressed before storing) Veeam itself
  reduces nothing: 1.0x dedup and 1.0x compression are expected; data that stays near
  1x at Optimal compression or above is incompressible: its own compression is expected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from veeam_efficiency.calibration import (
    EXPECTED_COMPRESSION_FACTOR,
    EXPECTED_DEDUP_FACTOR,
    KIND_OF_ALGORITHM,
)

PEER_PRIOR_WEIGHT = 2.0  # the calibration counts as this many peers
NEAR_1X = 1.15  # compression below this is "near 1x": nothing left to compress
COMPRESSING_LEVELS = ("Optimal", "High", "Extreme")
WEAK_LEVELS = ("None", "DedupeFriendly")

SETTINGS_COLUMNS = (
    "job_id", "job_name", "job_type", "compression_level", "block_size_kb", "inline_dedup", "encryption",
    "repository_id", "repository_name", "repository_type", "dedup_appliance", "decompress_before_storing",
    "align_blocks", "fast_clone", "object_storage", "scale_out",
)  # fmt: skip


def kind_sizes(scorable: pd.DataFrame) -> pd.DataFrame:
    """Per (job, kind): data, size after dedup, size stored, and the size-weighted factors."""
    data = scorable["data_size_bytes"].astype(float)
    after_dedup = data * scorable["dedup_ratio_raw"] / 100.0
    frame = pd.DataFrame(
        {
            "job_id": scorable["job_id"].astype(str),
            "kind": scorable["algorithm"].astype(str).map(KIND_OF_ALGORITHM).fillna("Full"),
            "data": data,
            "after_dedup": after_dedup,
            "stored": after_dedup * scorable["compress_ratio_raw"] / 100.0,
        }
    )
    sizes = frame.groupby(["job_id", "kind"], sort=True)[["data", "after_dedup", "stored"]].sum()
    sizes["dedup"] = sizes["data"] / sizes["after_dedup"]
    sizes["compression"] = sizes["after_dedup"] / sizes["stored"]
    return sizes


def peer_expectations(sizes: pd.DataFrame, job_types: pd.Series) -> pd.DataFrame:
    """Expected dedup and compression per (job, kind): calibration shrunk towards the job's peers.

    ``job_types``: job_id -> job type. Leave-one-out: a job is never its own peer. With
    no peer, the calibration alone.
    """
    frame = sizes.reset_index()
    frame["job_type"] = frame["job_id"].map(job_types).fillna("").astype(str)
    out = pd.DataFrame(index=sizes.index)
    for factor, calibrated in (("dedup", EXPECTED_DEDUP_FACTOR), ("compression", EXPECTED_COMPRESSION_FACTOR)):
        logs = np.log(frame[factor].clip(lower=1e-9))
        groups = logs.groupby([frame["job_type"], frame["kind"]])
        peer_sum = groups.transform("sum") - logs
        peers = groups.transform("size") - 1
        prior = np.log(frame["kind"].map(calibrated).astype(float))
        expected = np.exp((PEER_PRIOR_WEIGHT * prior + peer_sum) / (PEER_PRIOR_WEIGHT + peers))
        out[factor] = expected.to_numpy()
    return out


def expected_factors(
    sizes: pd.DataFrame, job_settings: pd.DataFrame | None, job_types: pd.Series, actual_compression: pd.Series
) -> pd.DataFrame:
    """Per job (index job_id): ``context_expected_dedup_factor`` and ``context_expected_compression_factor``.

    ``sizes``: :func:`kind_sizes` of the scored sessions; ``job_settings``: one row per job with
    :data:`SETTINGS_COLUMNS` (None: no settings, contract v1); ``actual_compression``: the job's
    compression factor (for incompressible data).
    """
    expected = peer_expectations(sizes, job_types)
    after_dedup = sizes["data"] / expected["dedup"]
    stored = after_dedup / expected["compression"]
    totals = pd.DataFrame({"data": sizes["data"], "after_dedup": after_dedup, "stored": stored}).groupby("job_id").sum()
    dedup = totals["data"] / totals["after_dedup"]
    compression = totals["after_dedup"] / totals["stored"]
    if job_settings is not None:
        settings = job_settings.set_index(job_settings["job_id"].astype(str)).reindex(dedup.index)
        appliance = known(settings["dedup_appliance"], True)
        level = settings["compression_level"].astype(object)
        incompressible = (
            level.isin(COMPRESSING_LEVELS) & ~appliance & (actual_compression.reindex(dedup.index) < NEAR_1X)
        )
        dedup = dedup.where(~appliance, 1.0)
        compression = compression.where(~appliance, 1.0)
        compression = compression.where(~incompressible, actual_compression.reindex(dedup.index).clip(lower=1.0))
    return pd.DataFrame({"context_expected_dedup_factor": dedup, "context_expected_compression_factor": compression})


def known(column: pd.Series, value: bool) -> pd.Series:
    """True where ``column`` is known to be ``value`` (null = unknown = False), as plain bools."""
    return column.astype("boolean").eq(value).fillna(False).astype(bool)
