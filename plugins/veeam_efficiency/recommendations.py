"""What to change in each job, and what it is worth: the rules, one row per finding.

Every rule is a vectorised condition over one row per job (its factors, expectations,
settings and change point); a setting that is null (unknown, or contract v1) never
fires a rule that needs it, so nothing is critical for lack of settings. Money is the
storage a month (GB, binary, 30 days) and its yearly price at ``price_per_tb_usd``,
computed as :mod:`~veeam_efficiency.optimization` does; null where a change saves no
storage Veeam can measure. Rules, thresholds and sources: docs/context-grade.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from veeam_efficiency.expectations import COMPRESSING_LEVELS, NEAR_1X, WEAK_LEVELS, known
from veeam_efficiency.optimization import BYTES_PER_GB, DAYS_PER_MONTH, GB_PER_TB, MONTHS_PER_YEAR

# Assumptions, not measurements (docs/context-grade.md, "Money"): incrementals written with
# 4 MB / 8 MB blocks against 1 MB ones; and the least a deduplicating appliance reduces the
# unencrypted backups it receives.
LARGE_BLOCK_INCREMENT_GROWTH = {4096: 1.5, 8192: 2.0}
APPLIANCE_MIN_REDUCTION = 2.0
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
JOB_STORAGE = "Jobs > Backup > the job > Edit > Storage > Advanced > Storage"
REPOSITORY_ADVANCED = (
    "Backup Infrastructure > Backup Repositories > the repository > Properties > Repository > Advanced"
)
FIELDS = ("code", "severity", "title", "detail", "est_monthly_savings_gb", "est_annual_savings_usd")


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    title: str
    applies: Callable[[pd.DataFrame], pd.Series]
    monthly_gb: Callable[[pd.DataFrame], pd.Series] | None  # None: no storage to measure
    detail: Callable[[dict[str, Any]], str]  # a row of the jobs table as a dict


def _level_in(jobs: pd.DataFrame, levels: tuple[str, ...]) -> pd.Series:
    return jobs["compression_level"].astype(object).isin(levels)


def _disk(jobs: pd.DataFrame) -> pd.Series:
    return known(jobs["dedup_appliance"], False)


def _appliance(jobs: pd.DataFrame) -> pd.Series:
    return known(jobs["dedup_appliance"], True)


def _raw_daily_gb(jobs: pd.DataFrame, days: int) -> pd.Series:
    return jobs["data_scored_bytes"].astype(float) / days / BYTES_PER_GB


def _gain(jobs: pd.DataFrame, days: int, dedup: pd.Series, compression: pd.Series) -> pd.Series:
    """GB a month saved if the job's factors became ``dedup`` x ``compression``."""
    raw = _raw_daily_gb(jobs, days)
    return (raw / jobs["combined_factor"] - raw / (dedup * compression)).clip(lower=0.0) * DAYS_PER_MONTH


def _repo(row: dict[str, Any]) -> str:
    name, kind = row.get("repository_name"), row.get("repository_type")
    return f"repository {name!s} ({kind!s})" if isinstance(name, str) else "its repository"


def rules(days: int) -> list[Rule]:
    """The rules, for a window of ``days`` (money is per day of that window)."""
    return [
        Rule(
            "ENCRYPTION_ON_DEDUP_APPLIANCE",
            "critical",
            "Encryption defeats the deduplicating appliance",
            lambda j: _appliance(j) & known(j["encryption"], True),
            lambda j: (
                _raw_daily_gb(j, days) / j["combined_factor"] * (1 - 1 / APPLIANCE_MIN_REDUCTION) * DAYS_PER_MONTH
            ),
            lambda r: (
                f"The job encrypts its backups and writes them to {_repo(r)}, a deduplicating appliance: "
                "encrypted blocks are new every session, so the appliance cannot deduplicate them. Turn off "
                f"'Enable backup file encryption' in {JOB_STORAGE} and use the appliance's encryption at rest."
            ),
        ),
        Rule(
            "COMPRESSION_ON_DEDUP_APPLIANCE",
            "warning",
            "Veeam compresses before the deduplicating appliance",
            lambda j: _appliance(j) & _level_in(j, COMPRESSING_LEVELS) & known(j["decompress_before_storing"], False),
            None,
            lambda r: (
                f"Compression is {r['compression_level']} and {_repo(r)} is a deduplicating appliance that "
                "stores the blocks as compressed: compressed data deduplicates poorly there. Enable 'Decompress "
                f"backup data blocks before storing' in {REPOSITORY_ADVANCED}, or set compression to Dedupe-friendly "
                f"or None in {JOB_STORAGE}. The gain shows in the appliance's own ratio, not in Veeam's."
            ),
        ),
        Rule(
            "INLINE_DEDUP_ON_DEDUP_APPLIANCE",
            "info",
            "Veeam deduplicates before the deduplicating appliance",
            lambda j: _appliance(j) & known(j["inline_dedup"], True),
            None,
            lambda r: (
                f"Inline deduplication is on and {_repo(r)} deduplicates by itself: Veeam's pass only costs "
                f"proxy CPU. Clear 'Enable inline data deduplication' in {JOB_STORAGE}."
            ),
        ),
        Rule(
            "COMPRESSION_OFF",
            "warning",
            "Compression is off or weak on a disk target",
            lambda j: _disk(j) & _level_in(j, WEAK_LEVELS),
            lambda j: _gain(j, days, j["dedup_factor"], j["context_expected_compression_factor"]),
            lambda r: (
                f"Compression is {r['compression_level']} ({r['compression_factor']:.2f}x) on {_repo(r)}, "
                f"which does not deduplicate by itself. Set compression to Optimal in {JOB_STORAGE}: about "
                f"{r['context_expected_compression_factor']:.2f}x is expected for this job's data."
            ),
        ),
        Rule(
            "INLINE_DEDUP_OFF",
            "warning",
            "Inline deduplication is off on a disk target",
            lambda j: _disk(j) & known(j["inline_dedup"], False),
            lambda j: _gain(j, days, j["context_expected_dedup_factor"], j["compression_factor"]),
            lambda r: (
                f"Inline deduplication is off ({r['dedup_factor']:.2f}x) on {_repo(r)}. Tick 'Enable inline "
                f"data deduplication' in {JOB_STORAGE}: about {r['context_expected_dedup_factor']:.2f}x is expected."
            ),
        ),
        Rule(
            "LARGE_BLOCKS_ON_DISK",
            "warning",
            "Large blocks grow the incrementals",
            lambda j: _disk(j) & (pd.to_numeric(j["block_size_kb"], errors="coerce") >= 4096),
            lambda j: (
                j["increment_stored_bytes"].astype(float)
                / days
                / BYTES_PER_GB
                * (
                    1
                    - 1
                    / pd.to_numeric(j["block_size_kb"], errors="coerce").map(LARGE_BLOCK_INCREMENT_GROWTH).fillna(2.0)
                )
                * DAYS_PER_MONTH
            ),
            lambda r: (
                f"Blocks are {int(r['block_size_kb']) // 1024} MB on {_repo(r)}: each changed byte writes a "
                f"whole large block, so incrementals are larger. Set storage optimization to 1 MB (Local target) in "
                f"{JOB_STORAGE}; it applies from the next active full."
            ),
        ),
        Rule(
            "INCOMPRESSIBLE_DATA",
            "info",
            "The data is already compressed or encrypted at the source",
            lambda j: ~_appliance(j) & _level_in(j, COMPRESSING_LEVELS) & (j["compression_factor"] < NEAR_1X),
            None,
            lambda r: (
                f"Compression is {r['compression_level']} yet the data compresses only "
                f"{r['compression_factor']:.2f}x: it is compressed or encrypted before Veeam reads it (media, archives, "
                "encrypted databases). No setting recovers this; there are no savings to chase."
            ),
        ),
        Rule(
            "FAST_CLONE_NOT_COUNTED",
            "info",
            "Fast clone savings are not in these ratios",
            lambda j: known(j["fast_clone"], True),
            None,
            lambda r: (
                f"{_repo(r).capitalize()} uses fast clone (block cloning): synthetic fulls share blocks with "
                "earlier files, which saves space that Veeam's dedup and compression ratios do not show. Check the "
                "volume's used space for the real figure."
            ),
        ),
        Rule(
            "COMPRESSION_NEAR_1X",
            "info",
            "Compression is near 1x",
            lambda j: j["compression_level"].isna() & (j["compression_factor"] < NEAR_1X),
            None,
            lambda r: (
                f"The job's data compresses only {r['compression_factor']:.2f}x: compression is off or the "
                "data is already compressed. The job's settings were not collected; collecting them (contract v2) "
                f"tells which. Check the compression level in {JOB_STORAGE}."
            ),
        ),
        Rule(
            "EFFICIENCY_DROP",
            "warning",
            "Efficiency dropped",
            lambda j: j["change_point_shift"].astype(float) < 0,
            lambda j: (
                j["series_raw_bytes"].astype(float)
                / days
                / BYTES_PER_GB
                * (1 / j["factor_after"] - 1 / j["factor_before"])
                * DAYS_PER_MONTH
            ).clip(lower=0.0),
            lambda r: (
                f"The {r['change_point_kind']} sessions' combined factor fell from {r['factor_before']:.2f}x to "
                f"{r['factor_after']:.2f}x ({r['change_point_shift']:+.0%}) from "
                f"{pd.Timestamp(r['change_point_at']):%Y-%m-%d %H:%M} UTC. Check what changed then: job settings "
                f"({JOB_STORAGE}), the repository, or the data (new VMs, encrypted or compressed files)."
            ),
        ),
    ]


def recommend(jobs: pd.DataFrame, *, days: int, price_per_tb_usd: float) -> pd.Series:
    """Each job's recommendations (index job_id): lists of dicts, largest yearly savings first, nulls last.

    ``jobs`` has one row per job (index ``job_id``) with the scorecard factors, the
    expected factors, the settings columns (null when unknown), ``increment_stored_bytes``
    and the change point columns of :func:`~veeam_efficiency.change_points.change_points`.
    """
    findings = []
    for rule in rules(days):
        hit = rule.applies(jobs).to_numpy(dtype=bool)
        if not hit.any():
            continue
        rows = jobs[hit]
        monthly = rule.monthly_gb(rows).astype(float) if rule.monthly_gb else pd.Series(np.nan, index=rows.index)
        findings.append(
            pd.DataFrame(
                {
                    "job_id": rows.index,
                    "code": rule.code,
                    "severity": rule.severity,
                    "title": rule.title,
                    # one per finding, not per session; rows as dicts (iterrows builds a Series per row)
                    "detail": [rule.detail(row) for row in rows.to_dict(orient="records")],
                    "est_monthly_savings_gb": monthly.to_numpy(),
                    "est_annual_savings_usd": (monthly * MONTHS_PER_YEAR / GB_PER_TB * price_per_tb_usd).to_numpy(),
                }
            )
        )
    empty = pd.Series([[] for _ in range(len(jobs))], index=jobs.index, dtype=object)
    if not findings:
        return empty
    table = pd.concat(findings, ignore_index=True)
    table["rank"] = table["severity"].map(SEVERITY_ORDER)
    table = table.sort_values(
        ["job_id", "est_annual_savings_usd", "rank", "code"], ascending=[True, False, True, True], na_position="last"
    )
    table = table.astype(object).where(table.notna(), None)
    # the records once, then cut at each job's first row (the table is sorted by job): a
    # groupby-apply would build a frame per job
    records = table[list(FIELDS)].to_dict(orient="records")
    job_ids = table["job_id"].to_numpy()
    firsts = np.flatnonzero(np.r_[True, job_ids[1:] != job_ids[:-1]])
    ends = np.r_[firsts[1:], len(records)]
    lists = pd.Series(
        [records[first:end] for first, end in zip(firsts.tolist(), ends.tolist(), strict=True)],
        index=job_ids[firsts],
        dtype=object,
    )
    return empty.where(~empty.index.isin(lists.index), lists.reindex(empty.index))
