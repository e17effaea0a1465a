"""The grade in context: each job judged against what its kind of backup, peers and settings make possible.

Adds to the seed's scorecards (which stay exactly as they are) the expected factors,
``context_score`` / ``context_grade``, the attainable potential, the recommendations,
the change point, and the flags ``MISCONFIGURED`` and ``LEVEL_SHIFT``. The mapping of
actual / expected to 0-100 and the caps are in docs/context-grade.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from veeam_efficiency import scores, tables
from veeam_efficiency.change_points import change_points
from veeam_efficiency.expectations import SETTINGS_COLUMNS, expected_factors, kind_sizes
from veeam_efficiency.optimization import BYTES_PER_GB, DAYS_PER_MONTH, GB_PER_TB, MONTHS_PER_YEAR
from veeam_efficiency.recommendations import recommend
from veeam_efficiency.settings import COMPONENTS, AnalysisSettings
from veeam_efficiency.tables import LEVEL_SHIFT, MISCONFIGURED

# (actual / expected, score): meeting the expectation is 90, 15% above it 100, half of it 0
CONTEXT_BREAKPOINTS = ((0.5, 0.0), (0.75, 40.0), (0.9, 70.0), (1.0, 90.0), (1.15, 100.0))
# a setting against best practice caps the component it spoils at this score
SPOILED_COMPONENT_CAP = 40.0
SPOILS = {
    "COMPRESSION_OFF": "compression",
    "COMPRESSION_ON_DEDUP_APPLIANCE": "compression",
    "INLINE_DEDUP_OFF": "dedup",
    "LARGE_BLOCKS_ON_DISK": "dedup",
    "ENCRYPTION_ON_DEDUP_APPLIANCE": "dedup",
}
# the scorecard columns this module adds, as the registry declares them (name -> kind)
CONTEXT_COLUMNS: dict[str, str] = {column.name: column.kind for column in tables.CONTEXT_COLUMNS}


def job_settings_frame(records: list[dict[str, Any]] | None) -> pd.DataFrame | None:
    """The validated job settings (:func:`~veeam_efficiency.job_settings.job_settings_records`:
    flat, the repository's fields under their column names) as :data:`SETTINGS_COLUMNS`, values
    kept as they are (``None`` = unknown). None (a v1 document) stays None: every setting unknown.
    """
    if records is None:
        return None
    return pd.DataFrame(records, columns=list(SETTINGS_COLUMNS), dtype=object)


def add_context(
    scorecards: pd.DataFrame,
    sessions: pd.DataFrame,
    job_settings: pd.DataFrame | None,
    settings: AnalysisSettings,
) -> pd.DataFrame:
    """The scorecards of :func:`~veeam_efficiency.scorecards.score_window` with the context columns.

    ``sessions``: the window (``excluded_reason`` set on unscorable ones); ``job_settings``:
    one row per job with :data:`SETTINGS_COLUMNS` or None (contract v1, all unknown); a job
    absent from it has unknown settings.
    """
    cards = scorecards.copy()
    is_job = cards["scope"].eq("job").to_numpy()
    jobs = job_context(cards[is_job], sessions, job_settings, settings)
    parts = [jobs[list(CONTEXT_COLUMNS)].set_axis(cards.index[is_job])]
    misconfigured = pd.Series(False, index=cards.index)
    shifted = pd.Series(False, index=cards.index)
    misconfigured[is_job] = jobs["misconfigured"].to_numpy(dtype=bool)
    shifted[is_job] = jobs["level_shift"].to_numpy(dtype=bool)
    if (~is_job).any():
        hosts = cards.index[~is_job]
        parts.append(pd.DataFrame([host_context(jobs, settings)] * len(hosts), index=hosts))
        misconfigured[hosts] = bool(jobs["misconfigured"].any())
        shifted[hosts] = bool(jobs["level_shift"].any())
    context = pd.concat(parts).reindex(cards.index)
    for name in CONTEXT_COLUMNS:
        cards[name] = context[name]
    cards["change_point_at"] = pd.to_datetime(cards["change_point_at"], utc=True)
    cards["quality_flags"] = [
        {**flags, MISCONFIGURED: bool(bad), LEVEL_SHIFT: bool(shift)}
        for flags, bad, shift in zip(cards["quality_flags"], misconfigured, shifted, strict=True)
    ]  # one per scorecard
    return cards


def host_context(jobs: pd.DataFrame, settings: AnalysisSettings) -> dict[str, Any]:
    """The host's row: expected factors and context score weighted by data, potentials summed."""
    weight = jobs["data_scored_bytes"].to_numpy(dtype=float)
    after_dedup = (weight / jobs["context_expected_dedup_factor"]).sum()
    stored = (weight / (jobs["context_expected_dedup_factor"] * jobs["context_expected_compression_factor"])).sum()
    score = float(np.clip(np.average(jobs["context_score"], weights=weight), 0.0, 100.0)) if weight.sum() else np.nan
    return {
        "context_expected_dedup_factor": weight.sum() / after_dedup,
        "context_expected_compression_factor": after_dedup / stored,
        "context_score": score,
        "context_grade": scores.grade([score], settings)[0],
        "attainable_potential_gb": float(jobs["attainable_potential_gb"].sum()),
        "attainable_annual_savings_usd": float(jobs["attainable_annual_savings_usd"].sum()),
        "recommendations": [],
        "change_point_at": pd.NaT,
        "change_point_shift": np.nan,
    }


def job_context(
    jobs: pd.DataFrame, sessions: pd.DataFrame, job_settings: pd.DataFrame | None, settings: AnalysisSettings
) -> pd.DataFrame:
    """The context columns of the job scorecards (same order as ``jobs``)."""
    frame = jobs.set_index(jobs["job_id"].astype(str))
    ids = frame.index
    window = sessions.assign(job_id=sessions["job_id"].astype(str))
    scorable = window[window["excluded_reason"].isna() & window["job_id"].isin(ids)]
    job_types = scorable.sort_values("creation_time", kind="stable").groupby("job_id")["job_type"].last()
    sizes = kind_sizes(scorable)  # once: grouping a million sessions by job and kind is most of it
    frame = frame.join(expected_factors(sizes, job_settings, job_types, frame["compression_factor"]))
    if job_settings is not None:
        given = job_settings.drop_duplicates("job_id", keep="last").set_index(job_settings["job_id"].astype(str))
        given = given.reindex(ids)
    else:
        given = pd.DataFrame(index=ids)
    for name in SETTINGS_COLUMNS[2:]:
        frame[name] = given[name].astype(object) if name in given.columns else pd.Series(None, index=ids, dtype=object)
    increments = sizes.xs("Increment", level="kind")["stored"] if "Increment" in sizes.index.unique("kind") else None
    frame["increment_stored_bytes"] = increments.reindex(ids).fillna(0.0) if increments is not None else 0.0
    shifts = change_points(scorable)
    frame = frame.join(shifts)
    frame["recommendations"] = recommend(frame, days=settings.lookback_days, price_per_tb_usd=settings.price_per_tb_usd)
    codes = frame["recommendations"].map(lambda found: {item["code"]: item for item in found})
    critical = frame["recommendations"].map(lambda found: any(item["severity"] == "critical" for item in found))
    components = {
        "dedup": scores.piecewise_score(
            frame["dedup_factor"] / frame["context_expected_dedup_factor"], CONTEXT_BREAKPOINTS
        ),
        "compression": scores.piecewise_score(
            frame["compression_factor"] / frame["context_expected_compression_factor"], CONTEXT_BREAKPOINTS
        ),
        **{name: frame[f"{name}_score"].to_numpy(dtype=float) for name in COMPONENTS[2:]},
    }
    for code, component in SPOILS.items():
        spoiled = codes.map(lambda found, code=code: code in found).to_numpy(dtype=bool)
        components[component] = np.where(
            spoiled, np.minimum(components[component], SPOILED_COMPONENT_CAP), components[component]
        )
    overall = np.clip(scores.overall_score(components, settings.weights), 0.0, 100.0)
    # a critical finding is a C or worse, whatever the factors say
    overall = np.where(
        critical.to_numpy(dtype=bool), np.minimum(overall, np.nextafter(settings.grade_b_min, 0)), overall
    )
    frame["context_score"] = overall
    frame["context_grade"] = scores.grade(overall, settings)
    monthly = (
        frame["recommendations"]
        .map(lambda found: sum(item["est_monthly_savings_gb"] or 0.0 for item in found))
        .astype(float)
    )
    current_daily = frame["data_scored_bytes"] / settings.lookback_days / BYTES_PER_GB / frame["combined_factor"]
    frame["attainable_potential_gb"] = np.minimum(monthly / DAYS_PER_MONTH, current_daily)
    frame["attainable_annual_savings_usd"] = (
        frame["attainable_potential_gb"] * DAYS_PER_MONTH * MONTHS_PER_YEAR / GB_PER_TB * settings.price_per_tb_usd
    )
    frame["misconfigured"] = critical.astype(bool)
    frame["level_shift"] = frame["change_point_shift"].astype(float).lt(0).to_numpy()
    return frame.reset_index(drop=True)
