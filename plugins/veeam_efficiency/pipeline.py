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
from veeam_efficiency.collection_plan import merge_stored
from veeam_efficiency.columnar import parse_document_columns
from veeam_efficiency.context_scores import add_context, job_settings_frame
from veeam_efficiency.contract import ContractError
from veeam_efficiency.job_settings import job_settings_records
from veeam_efficiency.optimization import add_optimization_potential
from veeam_efficiency.scorecards import score_window
from veeam_efficiency.sessions import job_sufficiency, sessions_frame, window_sessions
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.storage import TOO_FEW_SESSIONS, write_run
from veeam_efficiency.tables import (
    COLLECTION_LOG_TABLE,
    JOB_SETTINGS_TABLE,
    SCORECARD_TABLE,
    SESSION_ANOMALIES,
    SESSION_RECORD,
    WINDOW_SESSIONS,
)
from veeam_efficiency.window import AnalysisWindow

log = logging.getLogger(__name__)

SESSION_KINDS: dict[str, str] = dict(WINDOW_SESSIONS.kinds)
RECORD_KINDS: dict[str, str] = dict(SESSION_RECORD.kinds)
COLLECTION_LOG_KINDS: dict[str, str] = dict(COLLECTION_LOG_TABLE.kinds)
ANOMALY_KINDS: dict[str, str] = dict(SESSION_ANOMALIES.kinds)
SCORECARD_KINDS: dict[str, str] = dict(SCORECARD_TABLE.kinds)
# a job's settings as validate hands them on: the load adds the host and day
JOB_SETTINGS_KINDS: dict[str, str] = {
    name: kind for name, kind in JOB_SETTINGS_TABLE.kinds.items() if name not in ("vbr_host", "analysis_date")
}


def validate(collected: str | dict[str, Any], window: AnalysisWindow, settings: AnalysisSettings) -> dict[str, Any]:
    """Check the contract, keep the window, and say which jobs have enough sessions for a scorecard.

    ``collected`` is what ``collect`` returns (:func:`veeam_efficiency.airflow.collect.collect_window`:
    the server's documents, one per interval asked, and the stored sessions of the window), or
    one collector document. Raises :class:`~veeam_efficiency.contract.ContractError` on a
    broken document.
    """
    if isinstance(collected, str):
        collected = {"documents": [collected], "asked": [], "logged": False, "stored_sessions": None}
    documents = [parse_document_columns(raw) for raw in collected["documents"]]
    answers = [sessions_frame(document["sessions"]) for document in documents]
    frame, from_history = _with_stored(answers, collected.get("stored_sessions"))
    hosts = sorted({document["vbr_host"] for document in documents})
    if len(hosts) > 1:
        raise ContractError(f"field 'vbr_host': one collection answered as {hosts}; expected one VBR server")
    sessions = window_sessions(
        documents[-1], window.start, window.end, settings, frame=frame, from_history=from_history
    )
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
        "%s: %d sessions collected, %d more from the history, %d in the window %s..%s, %d duplicates dropped, "
        "excluded %s",
        sessions.vbr_host,
        sessions.sessions_collected,
        sessions.sessions_from_history,
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
        "sessions_from_history": sessions.sessions_from_history,
        "collection_log": _collection_log(collected, documents, answers),
        "duplicates_dropped": sessions.duplicates_dropped,
        "excluded": sessions.excluded,
        "qualifying_job_ids": jobs.loc[jobs["qualifies"], "job_id"].tolist(),
        "insufficient_jobs": jobs.loc[~jobs["qualifies"], ["job_id", "job_name", "found", "needed"]].to_dict(
            orient="records"
        ),
        "sessions": payload.to_columns(sessions.frame, SESSION_KINDS),
        "job_settings": job_settings_records(documents[-1]),  # None: a v1 document, settings unknown
    }


def _with_stored(answers: list[pd.DataFrame], stored: dict[str, list[Any]] | None) -> tuple[pd.DataFrame, int]:
    """The server's answers in one table, and the stored sessions they leave out (how many of them)."""
    frame = answers[0] if len(answers) == 1 else pd.concat(answers, ignore_index=True)
    if stored is None:
        return frame, 0
    merged = merge_stored(frame, payload.from_columns(stored, RECORD_KINDS))
    return merged, len(merged) - len(frame)


def _collection_log(collected: dict[str, Any], documents: list[Any], answers: list[pd.DataFrame]) -> list[Any]:
    """The intervals the server answered for, as ``feature3.collection_log`` rows (but the host and run).

    Empty when the collection does not cover every job (``job_names``), or is a bare document.
    """
    if not collected.get("logged"):
        return []
    return [
        {
            "interval_start": start,
            "interval_end": end,
            "collection_target": collected["collection_target"],
            "collected_at": document["collected_at"].isoformat(),
            "sessions_returned": _distinct_in(answer, start, end),
        }
        for (start, end), document, answer in zip(collected["asked"], documents, answers, strict=True)
    ]


def _distinct_in(sessions: pd.DataFrame, start: str, end: str) -> int:
    """Distinct sessions created in ``[start, end)``: what the history must hold for the interval to count as collected."""
    created = sessions["creation_time"]
    inside = (created >= pd.Timestamp(start)) & (created < pd.Timestamp(end))
    return int(sessions.loc[inside, "session_id"].nunique())


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


def collection_log_table(validated: dict[str, Any], dag_run_id: str | None) -> pd.DataFrame:
    """The ``feature3.collection_log`` rows of this collection (none for a partial or bare one)."""
    rows = [
        {**row, "vbr_host": validated["vbr_host"], "dag_run_id": dag_run_id}
        for row in validated.get("collection_log") or ()
    ]
    return payload.from_records(rows, COLLECTION_LOG_KINDS)


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
        collection_log=collection_log_table(validated, dag_run_id),
    )
    log.info("%s %s: wrote %s", validated["vbr_host"], validated["analysis_date"], counts)
    return {"vbr_host": validated["vbr_host"], "analysis_date": validated["analysis_date"], **counts}
