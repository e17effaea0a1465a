"""The steps of the DAG as plain functions of JSON payloads, so each is testable without Airflow.

Every function takes and returns what travels through XCom: small JSON (the session
table as columns, scorecards as records). The DAG file only adds Airflow: hooks,
context, and the mapping of errors to retry or fail.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

import pandas as pd

from veeam_efficiency import payload
from veeam_efficiency.columnar import parse_document_columns
from veeam_efficiency.context_scores import add_context, job_settings_frame
from veeam_efficiency.job_settings import job_settings_records
from veeam_efficiency.optimization import add_optimization_potential
from veeam_efficiency.scorecards import score_window
from veeam_efficiency.sessions import job_sufficiency, window_sessions
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.storage import TOO_FEW_SESSIONS, write_run
from veeam_efficiency.tables import JOB_SETTINGS_TABLE, SCORECARD_TABLE, SESSION_ANOMALIES, WINDOW_SESSIONS
from veeam_efficiency.window import AnalysisWindow

log = logging.getLogger(__name__)

SESSION_KINDS: dict[str, str] = dict(WINDOW_SESSIONS.kinds)
ANOMALY_KINDS: dict[str, str] = dict(SESSION_ANOMALIES.kinds)
SCORECARD_KINDS: dict[str, str] = dict(SCORECARD_TABLE.kinds)
# a job's settings as validate hands them on: the load adds the host and day
JOB_SETTINGS_KINDS: dict[str, str] = {
    name: kind for name, kind in JOB_SETTINGS_TABLE.kinds.items() if name not in ("vbr_host", "analysis_date")
}


def validate(raw_document: str, window: AnalysisWindow, settings: AnalysisSettings) -> dict[str, Any]:
    """Check the contract, keep the window, and say which jobs have enough sessions for a scorecard.

    Raises :class:`~veeam_efficiency.contract.ContractError` on a broken document.
    """
    document = parse_document_columns(raw_document)
    sessions = window_sessions(document, window.start, window.end, settings)
    jobs = job_sufficiency(sessions.scorable, sessions.frame, settings.min_sessions)
    for job in jobs[~jobs["qualifies"]].itertuples():  # one log line per job, not per session
        log.info(
            "job %r (%s): %d scorable sessions in the window, %d needed: no scorecard",
            job.job_name,
            job.job_id,
            job.found,
            job.needed,
        )
    log.info(
        "%s: %d sessions collected, %d in the window %s..%s, %d duplicates dropped, excluded %s",
        sessions.vbr_host,
        sessions.sessions_collected,
        len(sessions.frame),
        window.start.isoformat(),
        window.end.isoformat(),
        sessions.duplicates_dropped,
        sessions.excluded,
    )
    return {
        "vbr_host": sessions.vbr_host,
        "vbr_version": sessions.vbr_version,
        "collected_at": sessions.collected_at.isoformat(),
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "analysis_date": window.analysis_date.isoformat(),
        "sessions_collected": sessions.sessions_collected,
        "duplicates_dropped": sessions.duplicates_dropped,
        "excluded": sessions.excluded,
        "qualifying_job_ids": jobs.loc[jobs["qualifies"], "job_id"].tolist(),
        "insufficient_jobs": jobs.loc[~jobs["qualifies"], ["job_id", "job_name", "found", "needed"]].to_dict(
            orient="records"
        ),
        "sessions": payload.to_columns(sessions.frame, SESSION_KINDS),
        "job_settings": job_settings_records(document),  # None: a v1 document, settings unknown
    }


def has_qualifying_jobs(validated: dict[str, Any]) -> bool:
    if validated["qualifying_job_ids"]:
        return True
    log.warning(
        "%s: no job has enough scorable sessions in the window, so there is nothing to score; "
        "the session history is stored without scorecards. Jobs (found vs needed): %s",
        validated["vbr_host"],
        validated["insufficient_jobs"] or "no sessions at all",
    )
    return False


def analyze(validated: dict[str, Any], settings: AnalysisSettings) -> dict[str, Any]:
    """Score the qualifying jobs; return scorecards and each scored session's anomaly verdict.

    Each job is also graded in context (expected factors, recommendations, change point):
    with the job settings of a contract v2 document (``validated["job_settings"]``), else
    as for v1 (every setting unknown).
    """
    sessions = payload.from_columns(validated["sessions"], SESSION_KINDS)
    result = score_window(
        sessions,
        validated["qualifying_job_ids"],
        settings,
        vbr_host=validated["vbr_host"],
        window_start=datetime.fromisoformat(validated["window_start"]),
        window_end=datetime.fromisoformat(validated["window_end"]),
        analysis_date=date.fromisoformat(validated["analysis_date"]),
    )
    cards = add_context(result.scorecards, sessions, job_settings_frame(validated.get("job_settings")), settings)
    kinds = {name: kind for name, kind in SCORECARD_KINDS.items() if name in cards.columns}
    return {
        "vbr_host": validated["vbr_host"],
        "analysis_date": validated["analysis_date"],
        "scorecards": payload.to_records(cards, kinds),
        "session_anomalies": payload.to_columns(result.session_anomalies, ANOMALY_KINDS),
    }


def optimize(analysis: dict[str, Any], settings: AnalysisSettings) -> dict[str, Any]:
    """Add the storage and money each job wastes against the target factors."""
    cards = payload.from_records(analysis["scorecards"], SCORECARD_KINDS)
    costed = add_optimization_potential(cards, settings)
    return {**analysis, "scorecards": payload.to_records(costed, SCORECARD_KINDS)}


def history_table(validated: dict[str, Any], optimized: dict[str, Any] | None) -> pd.DataFrame:
    """Every session of the window with its anomaly verdict (none when the analysis was skipped)."""
    sessions = payload.from_columns(validated["sessions"], SESSION_KINDS)
    if optimized is not None:
        anomalies = payload.from_columns(optimized["session_anomalies"], ANOMALY_KINDS)
        sessions = sessions.merge(
            anomalies[["session_id", "is_anomaly", "anomaly_score", "anomaly_reason"]],
            on="session_id",
            how="left",
            validate="one_to_one",
        )
    else:
        sessions = sessions.assign(is_anomaly=False, anomaly_score=float("nan"), anomaly_reason=None)
    sessions["is_anomaly"] = sessions["is_anomaly"].fillna(False).astype(bool)
    return sessions.assign(
        vbr_host=validated["vbr_host"],
        vbr_version=validated["vbr_version"],
        collected_at=pd.Timestamp(validated["collected_at"]),
        analysis_date=date.fromisoformat(validated["analysis_date"]),
    )


def unscored_jobs(validated: dict[str, Any]) -> pd.DataFrame:
    """The jobs of the window without a scorecard, with the sessions found and needed, and why."""
    jobs = pd.DataFrame(validated["insufficient_jobs"], columns=["job_id", "job_name", "found", "needed"])
    return jobs.rename(columns={"found": "sessions_found", "needed": "sessions_needed"}).assign(reason=TOO_FEW_SESSIONS)


def job_settings_table(validated: dict[str, Any]) -> pd.DataFrame | None:
    """The jobs' settings the server reported (nulls kept), or ``None`` when it reported none (v1)."""
    records = validated.get("job_settings")
    return None if records is None else payload.from_records(records, JOB_SETTINGS_KINDS)


def load(
    conn: Any, validated: dict[str, Any], optimized: dict[str, Any] | None, dag_run_id: str | None = None
) -> dict[str, Any]:
    """Write the history, the scorecards and the job settings of one host and day in one transaction.

    Each scorecard records ``dag_run_id``, the Airflow run that wrote it (the view links to it).
    """
    history = history_table(validated, optimized)
    records = optimized["scorecards"] if optimized is not None else []
    scorecards = payload.from_records(records, SCORECARD_KINDS).assign(dag_run_id=dag_run_id)
    counts = write_run(
        conn,
        vbr_host=validated["vbr_host"],
        analysis_date=date.fromisoformat(validated["analysis_date"]),
        history=history,
        scorecards=scorecards,
        unscored=unscored_jobs(validated),
        job_settings=job_settings_table(validated),
    )
    log.info("%s %s: wrote %s", validated["vbr_host"], validated["analysis_date"], counts)
    return {"vbr_host": validated["vbr_host"], "analysis_date": validated["analysis_date"], **counts}
