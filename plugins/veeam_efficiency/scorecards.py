"""Job scorecards and the per-host roll-up, from the window's scorable sessions.

One grouped pass per statistic over the whole table, so 10,000 jobs cost the same
Python overhead as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from veeam_efficiency import scores
from veeam_efficiency.contract import HOST_ROLLUP_JOB_ID
from veeam_efficiency.grouped_stats import standard_scores, welch_trend
from veeam_efficiency.sessions import EXCLUSION_REASONS, latest_job_names
from veeam_efficiency.settings import COMPONENTS, AnalysisSettings
from veeam_efficiency.tables import CRITICAL_ANOMALIES, DEGRADING_TREND, HIGH_VARIANCE, SCORE_FLAGS


@dataclass(frozen=True)
class Analysis:
    """What ``analyze`` hands on: scorecards and the per-session anomaly verdicts."""

    scorecards: pd.DataFrame
    session_anomalies: pd.DataFrame


def score_window(
    sessions: pd.DataFrame,
    qualifying_job_ids: list[str],
    settings: AnalysisSettings,
    *,
    vbr_host: str,
    window_start: datetime,
    window_end: datetime,
    analysis_date: date,
) -> Analysis:
    """Score every qualifying job over the window, plus one roll-up row for the host.

    ``sessions`` is the whole window (``excluded_reason`` set on the unscorable ones);
    only scorable sessions of ``qualifying_job_ids`` are scored.
    """
    # job_id as a categorical: every grouping below works on its integer codes
    sessions = sessions.assign(job_id=pd.Categorical(sessions["job_id"].astype(object)))
    scorable = sessions[sessions["excluded_reason"].isna() & sessions["job_id"].isin(qualifying_job_ids)]
    anomalies = session_anomalies(scorable, settings)
    anomalies["job_id"] = anomalies["job_id"].astype(object)
    jobs = score_jobs(sessions, scorable, anomalies, settings)
    jobs["job_id"] = jobs["job_id"].astype(object).infer_objects()
    cards = pd.concat([jobs, host_rollup(jobs, sessions, settings)], ignore_index=True)
    cards.insert(0, "vbr_host", vbr_host)
    cards.insert(2, "analysis_date", analysis_date)
    cards["window_start"] = window_start
    cards["window_end"] = window_end
    return Analysis(scorecards=cards, session_anomalies=anomalies)


def session_anomalies(scorable: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """Each scored session against the baseline of its own kind (Full vs Full, Increment vs Increment)."""
    scored = standard_scores(
        scorable,
        ["job_id", "algorithm"],
        "combined_ratio",
        method=settings.anomaly_method,
        min_baseline=settings.min_baseline_sessions,
    )
    is_anomaly = scored["z"].abs() > settings.anomaly_threshold
    drop = 1.0 - scorable["combined_ratio"] / scored["baseline"]
    critical = is_anomaly & (drop > settings.anomaly_critical_drop)
    anomalous = scorable[is_anomaly]
    reason = pd.Series(np.nan, index=scorable.index, dtype=object)
    reason[is_anomaly] = (
        np.where(critical[is_anomaly], "CRITICAL: ", "")
        + "combined "
        + anomalous["combined_ratio"].round(2).astype(str)
        + "x vs "
        + anomalous["algorithm"].astype(str)
        + " baseline "
        + scored.loc[is_anomaly, "baseline"].round(2).astype(str)
        + "x ("
        + (-drop[is_anomaly] * 100).round(0).astype(int).astype(str)
        + "%), "
        + settings.anomaly_method
        + " z "
        + scored.loc[is_anomaly, "z"].round(1).astype(str)
    )
    not_assessed = scored["z"].isna()
    reason[not_assessed] = (
        "not assessed: fewer than "
        + str(settings.min_baseline_sessions)
        + " "
        + scorable.loc[not_assessed, "algorithm"].astype(str)
        + " sessions for a baseline"
    )
    return pd.DataFrame(
        {
            "session_id": scorable["session_id"],
            "job_id": scorable["job_id"],
            "is_anomaly": is_anomaly,
            "is_critical_anomaly": critical,
            "anomaly_score": scored["z"],
            "anomaly_reason": reason,
        },
        index=scorable.index,
    )


def score_jobs(
    window: pd.DataFrame, scorable: pd.DataFrame, anomalies: pd.DataFrame, settings: AnalysisSettings
) -> pd.DataFrame:
    """One scorecard per job: size-weighted factors, the five scores, grade, flags."""
    data = scorable["data_size_bytes"].astype(float)
    after_dedup = data * scorable["dedup_ratio_raw"] / 100.0
    sizes = pd.DataFrame(
        {
            "job_id": scorable["job_id"],
            "data": data,
            "after_dedup": after_dedup,
            "after_both": after_dedup * scorable["compress_ratio_raw"] / 100.0,
            "combined": scorable["combined_ratio"],
            "anomalous": anomalies["is_anomaly"],
            "critical": anomalies["is_critical_anomaly"],
        }
    )
    per_job = sizes.groupby("job_id", sort=True).agg(
        data_scored_bytes=("data", "sum"),
        after_dedup=("after_dedup", "sum"),
        after_both=("after_both", "sum"),
        sessions_scored=("combined", "size"),
        combined_mean=("combined", "mean"),
        combined_std=("combined", "std"),
        anomalous_sessions=("anomalous", "sum"),
        critical_anomalies=("critical", "sum"),
    )
    trend = welch_trend(scorable, "job_id", "combined_ratio", "creation_time").reindex(per_job.index)
    cards = pd.DataFrame(index=per_job.index)
    cards["scope"] = "job"
    cards["job_name"] = latest_job_names(window).reindex(per_job.index)
    cards = cards.join(session_counts(window))
    cards["sessions_scored"] = per_job["sessions_scored"].astype(int)
    cards["anomalous_sessions"] = per_job["anomalous_sessions"].astype(int)
    cards["critical_anomalies"] = per_job["critical_anomalies"].astype(int)
    cards["data_scored_bytes"] = per_job["data_scored_bytes"]
    cards["dedup_factor"] = per_job["data_scored_bytes"] / per_job["after_dedup"]
    cards["compression_factor"] = per_job["after_dedup"] / per_job["after_both"]
    cards["combined_factor"] = per_job["data_scored_bytes"] / per_job["after_both"]
    cards["coefficient_of_variation"] = per_job["combined_std"] / per_job["combined_mean"]
    cards["trend_change"] = trend["change"]
    cards["trend_p_value"] = trend["p_value"]
    cards["trend_classification"] = scores.trend_classification(
        trend["change"], trend["p_value"], alpha=settings.trend_p_value, min_change=settings.trend_min_change
    )
    cards["dedup_score"] = scores.dedup_score(cards["dedup_factor"])
    cards["compression_score"] = scores.compression_score(cards["compression_factor"])
    cards["trend_score"] = scores.trend_score(cards["trend_change"], cards["trend_classification"])
    cards["consistency_score"] = scores.consistency_score(cards["coefficient_of_variation"].fillna(0.0))
    cards["anomaly_score"] = scores.anomaly_score(100.0 * cards["anomalous_sessions"] / cards["sessions_scored"])
    finish(cards, settings)
    cards["quality_flags"] = quality_flags(
        critical=cards["critical_anomalies"] > 0,
        degrading=cards["trend_classification"] == scores.DEGRADING,
        high_variance=cards["coefficient_of_variation"] > settings.high_variance_cv,
    )
    return cards.reset_index()


def host_rollup(jobs: pd.DataFrame, window: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """The host's row: its scored jobs weighted by the data they protect.

    Factors are size-weighted over all scored sessions; component scores are the
    data-weighted mean of the job scores; a flag or a DEGRADING trend is raised when
    any job raises it. The session counts cover every session of the host in the window.
    """
    if jobs.empty:
        return jobs.iloc[0:0]
    weight = jobs["data_scored_bytes"]
    after_dedup = (jobs["data_scored_bytes"] / jobs["dedup_factor"]).sum()
    after_both = (jobs["data_scored_bytes"] / jobs["combined_factor"]).sum()
    data = weight.sum()
    row: dict[str, object] = {
        "job_id": HOST_ROLLUP_JOB_ID,
        "scope": "host",
        "job_name": "(all jobs)",
        **session_counts(window.assign(job_id=HOST_ROLLUP_JOB_ID)).iloc[0].to_dict(),
        "sessions_scored": int(jobs["sessions_scored"].sum()),
        "anomalous_sessions": int(jobs["anomalous_sessions"].sum()),
        "critical_anomalies": int(jobs["critical_anomalies"].sum()),
        "data_scored_bytes": data,
        "dedup_factor": data / after_dedup,
        "compression_factor": after_dedup / after_both,
        "combined_factor": data / after_both,
        "coefficient_of_variation": np.average(jobs["coefficient_of_variation"].fillna(0.0), weights=weight),
        "trend_change": np.average(jobs["trend_change"].fillna(0.0), weights=weight),
        "trend_p_value": np.nan,
        "trend_classification": rollup_trend(jobs["trend_classification"]),
    }
    for name in COMPONENTS:
        # clipped: a weighted mean of 100s can come out as 100.00000000000001
        row[f"{name}_score"] = float(np.clip(np.average(jobs[f"{name}_score"], weights=weight), 0.0, 100.0))
    host = pd.DataFrame([row])
    finish(host, settings)
    flags = pd.DataFrame(list(jobs["quality_flags"]))
    host["quality_flags"] = [{flag: bool(flags[flag].any()) for flag in SCORE_FLAGS}]
    return host


def rollup_trend(classifications: pd.Series) -> str:
    for verdict in (scores.DEGRADING, scores.IMPROVING):
        if (classifications == verdict).any():
            return verdict
    return scores.STABLE


def session_counts(window: pd.DataFrame) -> pd.DataFrame:
    """Per job: sessions in the window, how many were excluded, and why."""
    reasons = pd.crosstab(window["job_id"], window["excluded_reason"]).reindex(
        columns=list(EXCLUSION_REASONS), fill_value=0
    )
    counts = pd.DataFrame(index=reasons.index.union(window["job_id"].unique()))
    counts["sessions_in_window"] = window.groupby("job_id").size()
    reasons = reasons.reindex(counts.index, fill_value=0)
    counts["sessions_excluded"] = reasons.sum(axis=1)
    counts["excluded_by_reason"] = reasons.to_dict(orient="records")
    return counts


def finish(cards: pd.DataFrame, settings: AnalysisSettings) -> None:
    """Overall score, grade and rating from the component scores (in place)."""
    components = {name: cards[f"{name}_score"] for name in COMPONENTS}
    cards["overall_score"] = np.clip(scores.overall_score(components, settings.weights), 0.0, 100.0)
    cards["grade"] = scores.grade(cards["overall_score"], settings)
    cards["efficiency_rating"] = scores.efficiency_rating(cards["overall_score"], settings)


def quality_flags(**flags: pd.Series) -> list[dict[str, bool]]:
    """The booleans the downstream risk model reads, one dict per scorecard."""
    named = pd.DataFrame(
        {
            CRITICAL_ANOMALIES: flags["critical"],
            DEGRADING_TREND: flags["degrading"],
            HIGH_VARIANCE: flags["high_variance"],
        }
    ).astype(bool)
    return named.to_dict(orient="records")
