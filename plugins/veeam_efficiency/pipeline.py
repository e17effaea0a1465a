"""The steps of the DAG as plain functions of JSON payloads, so each is testable without Airflow.

Every function takes and returns what travels through XCom: small JSON (the session
table as columns, scorecards as records). The DAG file only adds Airflow: hooks,
context, and the mapping of errors to retry or fail.

The window's sessions that the history already holds do not travel through XCom: the
validated payload carries the sessions the server reported, and each step that needs the
whole window reads the stored rest again (:func:`window_frame`). A daily incremental run
then moves a day or two of sessions between its tasks, not the month.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from functools import partial
from typing import Any, Protocol

import numpy as np
import pandas as pd

from veeam_efficiency import payload
from veeam_efficiency.collection_plan import merge_stored
from veeam_efficiency.columnar import parse_document_columns
from veeam_efficiency.context_scores import add_context, job_settings_frame
from veeam_efficiency.contract import ContractError
from veeam_efficiency.history_reads import RESULT_COLUMNS, stored_sessions
from veeam_efficiency.job_settings import job_settings_records
from veeam_efficiency.optimization import add_optimization_potential
from veeam_efficiency.scorecards import score_window
from veeam_efficiency.sessions import (
    EXCLUSION_REASONS,
    combined_tallies,
    job_sufficiency,
    job_tally,
    sessions_frame,
    window_sessions,
    window_table,
)
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.storage import TOO_FEW_SESSIONS, write_run
from veeam_efficiency.tables import (
    COLLECTION_LOG_TABLE,
    HISTORY_TABLE,
    JOB_SETTINGS_TABLE,
    SCORECARD_TABLE,
    SESSION_ANOMALIES,
    SESSION_RECORD,
    WINDOW_SESSIONS,
)
from veeam_efficiency.window import AnalysisWindow

log = logging.getLogger(__name__)


class ReadStored(Protocol):
    """The stored sessions of a VBR host created in [start, end): history_reads.stored_sessions on a connection."""

    def __call__(self, vbr_host: str, start: datetime, end: datetime, *, results: bool = False) -> pd.DataFrame: ...


class TallyStored(Protocol):
    """The job tally of a VBR host's stored sessions created in [start, end) but those ``reported``, and
    how many of them repeat a session_id: history_reads.stored_tally on a connection."""

    def __call__(
        self, vbr_host: str, start: datetime, end: datetime, reported: Sequence[str], settings: AnalysisSettings
    ) -> tuple[pd.DataFrame, int]: ...


SESSION_KINDS: dict[str, str] = dict(WINDOW_SESSIONS.kinds)
RECORD_KINDS: dict[str, str] = dict(SESSION_RECORD.kinds)
COLLECTION_LOG_KINDS: dict[str, str] = dict(COLLECTION_LOG_TABLE.kinds)
ANOMALY_KINDS: dict[str, str] = dict(SESSION_ANOMALIES.kinds)
SCORECARD_KINDS: dict[str, str] = dict(SCORECARD_TABLE.kinds)
VERDICT_COLUMNS = ("is_anomaly", "anomaly_score", "anomaly_reason")
# In a window rebuilt from the history (:func:`window_frame`): each session's row in the stored sessions read, -1 the server's
STORED_ROW = "_stored_row"
# a history row as analyze hands it to load (load adds the host, version, collection time and day)
HISTORY_ROW_KINDS: dict[str, str] = SESSION_KINDS | {name: ANOMALY_KINDS[name] for name in VERDICT_COLUMNS}
# What a light step reads of a heavy payload, which the DAG pushes under an XCom key of its
# own (``part``): ``sufficient`` reads the job counts, not the window's sessions; ``optimize``
# the scorecards, not each session's anomaly verdict; ``load`` the verdicts, or the history rows
# to write (:func:`analyze`).
SUFFICIENCY = ("vbr_host", "qualifying_job_ids", "insufficient_jobs")
SCORECARDS = ("vbr_host", "analysis_date", "scorecards")
VERDICTS = ("vbr_host", "analysis_date", "session_anomalies", "history")
SUMMARY = (
    "collection_target", "asked", "logged",  # what collect asked
    "vbr_host", "analysis_date", "window_start", "window_end", "sessions_collected", "sessions_from_history",
    "sessions_in_window", "duplicates_dropped", "excluded",
)  # fmt: skip
# a job's settings as validate hands them on: the load adds the host and day
JOB_SETTINGS_KINDS: dict[str, str] = {
    name: kind for name, kind in JOB_SETTINGS_TABLE.kinds.items() if name not in ("vbr_host", "analysis_date")
}


def validate(
    collected: str | dict[str, Any],
    window: AnalysisWindow,
    settings: AnalysisSettings,
    read_stored: ReadStored | None = None,
    *,
    tally_stored: TallyStored | None = None,
) -> dict[str, Any]:
    """Check the contract, keep the window, and say which jobs have enough sessions for a scorecard.

    ``collected`` is what ``collect`` returns (:func:`veeam_efficiency.airflow.collect.collect_window`:
    the server's documents, one per interval asked), or one collector document. A collection
    of every job (``logged``) is completed with the window's stored sessions the server did
    not report (not asked for, or purged by VBR): they are counted where they are
    (``tally_stored``), or read (``read_stored``: also when the history holds a session
    twice). They stay out of the result, whose ``stored_window`` says the steps after must
    read them (:func:`window_frame`). Raises :class:`~veeam_efficiency.contract.ContractError`
    on a broken document.
    """
    if isinstance(collected, str):
        collected = {"documents": [collected], "asked": [], "logged": False}
    documents = [parse_document_columns(raw) for raw in collected["documents"]]
    answers = [sessions_frame(document["sessions"]) for document in documents]
    hosts = sorted({document["vbr_host"] for document in documents})
    if len(hosts) > 1:
        raise ContractError(f"field 'vbr_host': one collection answered as {hosts}; expected one VBR server")
    reported = answers[0] if len(answers) == 1 else pd.concat(answers, ignore_index=True)
    sessions = window_sessions(documents[-1], window.start, window.end, settings, frame=reported)
    tally, duplicates, from_history = job_tally(sessions.frame), sessions.duplicates_dropped, 0
    if collected.get("logged"):
        stored, stored_duplicates = _stored_tally(hosts[0], reported, window, settings, read_stored, tally_stored)
        tally = combined_tallies(tally, stored)
        from_history = int(stored["sessions"].sum()) + stored_duplicates
        duplicates += stored_duplicates
    jobs = job_sufficiency(tally, settings.min_sessions)
    for job in jobs[~jobs["qualifies"]].itertuples():  # one log line per job, not per session
        log.info(
            "job %r (%s): %d scorable sessions in the window, %d needed: no scorecard",
            job.job_name,
            job.job_id,
            job.found,
            job.needed,
        )
    excluded = {reason: int(tally[reason].sum()) for reason in EXCLUSION_REASONS}
    in_window = int(tally["sessions"].sum())
    log.info(
        "%s: %d sessions collected, %d more from the history, %d in the window %s..%s, %d duplicates dropped, "
        "excluded %s",
        sessions.vbr_host,
        sessions.sessions_collected,
        from_history,
        in_window,
        window.start.isoformat(),
        window.end.isoformat(),
        duplicates,
        excluded,
    )
    return {
        "vbr_host": sessions.vbr_host,
        "vbr_version": sessions.vbr_version,
        "collected_at": sessions.collected_at.isoformat(),
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "analysis_date": window.analysis_date.isoformat(),
        "sessions_collected": sessions.sessions_collected,
        "sessions_from_history": from_history,
        "sessions_in_window": in_window,
        "collection_log": _collection_log(collected, documents, answers),
        "duplicates_dropped": duplicates,
        "excluded": excluded,
        "qualifying_job_ids": jobs.loc[jobs["qualifies"], "job_id"].tolist(),
        "insufficient_jobs": jobs.loc[~jobs["qualifies"], ["job_id", "job_name", "found", "needed"]].to_dict(
            orient="records"
        ),
        # the window's sessions the server reported; with stored_window, the rest is read from the history
        "sessions": payload.to_columns(sessions.frame, SESSION_KINDS),
        "stored_window": bool(from_history),
        "job_settings": job_settings_records(documents[-1]),  # None: a v1 document, settings unknown
    }


def _stored_tally(
    vbr_host: str,
    reported: pd.DataFrame,
    window: AnalysisWindow,
    settings: AnalysisSettings,
    read_stored: ReadStored | None,
    tally_stored: TallyStored | None,
) -> tuple[pd.DataFrame, int]:
    """The job tally of the window's stored sessions the server did not report (:func:`merge_stored`'s
    rest), and how many repeats of a session_id were dropped from it."""
    ids = reported["session_id"]
    if tally_stored is not None:
        tally, repeats = tally_stored(vbr_host, window.start, window.end, ids.tolist(), settings)
        if not repeats:
            return tally, 0
        log.warning("%s: the history holds %d sessions of the window twice: reading them to count each once",
                    vbr_host, repeats)  # fmt: skip
    if read_stored is None:
        raise ValueError("a collection of every job is completed from the session history: pass read_stored")
    stored = read_stored(vbr_host, window.start, window.end)
    rest, duplicates = window_table(stored[~stored["session_id"].isin(ids)], window.start, window.end, settings)
    return job_tally(rest), duplicates


def stored_rest(validated: dict[str, Any], read_stored: ReadStored | None) -> pd.DataFrame | None:
    """The window's stored sessions, read again, when :func:`validate` left some in the history (else None)."""
    if not validated.get("stored_window"):
        return None
    if read_stored is None:
        raise ValueError(
            f"{validated['vbr_host']}: {validated['sessions_from_history']} sessions of the window are in the "
            "session history: pass read_stored"
        )
    start, end = datetime.fromisoformat(validated["window_start"]), datetime.fromisoformat(validated["window_end"])
    return read_stored(validated["vbr_host"], start, end)


def window_frame(
    validated: dict[str, Any], settings: AnalysisSettings | None = None, stored: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The window's sessions as :func:`validate` saw them: those the server reported, and the stored rest.

    ``stored`` (:func:`stored_rest`) gets its factors and exclusion reasons from ``settings``,
    the run's. Both are needed only when ``validated`` left sessions in the history.
    """
    reported = payload.from_columns(validated["sessions"], SESSION_KINDS)
    if not validated.get("stored_window"):
        return reported
    if stored is None or settings is None:
        raise ValueError(
            f"{validated['vbr_host']}: {validated['sessions_from_history']} sessions of the window are in the "
            "session history: pass them (stored_rest) and the run's settings"
        )
    start, end = datetime.fromisoformat(validated["window_start"]), datetime.fromisoformat(validated["window_end"])
    # each row says where it came from: -1 the server, else its row in ``stored`` (_new_or_changed)
    server = reported[list(RECORD_KINDS)].assign(**{STORED_ROW: -1})
    history = stored.assign(**{STORED_ROW: np.arange(len(stored))})
    frame, _ = window_table(merge_stored(server, history), start, end, settings)
    if len(frame) != validated["sessions_in_window"]:
        log.warning(
            "%s: the history changed since validate (another run loaded this server): %d sessions in the window "
            "now, %d then; scoring what is stored now",
            validated["vbr_host"],
            len(frame),
            validated["sessions_in_window"],
        )
    return frame


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


def part(step_result: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The ``keys`` a step's result has of :data:`SUFFICIENCY`, :data:`SCORECARDS` or :data:`VERDICTS`."""
    return {key: step_result[key] for key in keys if key in step_result}


def summary(step_result: dict[str, Any]) -> dict[str, Any]:
    """What a person reads of a step's result where Airflow shows it (the receipt a task hands on:
    :mod:`veeam_efficiency.airflow.handoff`): the host, the day and the counts, not the tables."""
    out = part(step_result, SUMMARY)
    for key, counted in (("qualifying_job_ids", "qualifying_jobs"), ("insufficient_jobs", "insufficient_jobs")):
        if key in step_result:
            out[counted] = len(step_result[key])
    return out


def has_qualifying_jobs(validated: dict[str, Any]) -> bool:
    """``validated`` or its :data:`SUFFICIENCY` part."""
    if validated["qualifying_job_ids"]:
        return True
    log.warning(
        "%s: no job has enough scorable sessions in the window, so there is nothing to score; "
        "the session history is stored without scorecards. Jobs (found vs needed): %s",
        validated["vbr_host"],
        validated["insufficient_jobs"] or "no sessions at all",
    )
    return False


def analyze(
    validated: dict[str, Any], settings: AnalysisSettings, read_stored: ReadStored | None = None
) -> dict[str, Any]:
    """Score the qualifying jobs; return scorecards and what :func:`load` writes of the sessions.

    Each job is also graded in context (expected factors, recommendations, change point):
    with the job settings of a contract v2 document (``validated["job_settings"]``), else
    as for v1 (every setting unknown). ``read_stored`` reads the window's stored rest
    (:func:`stored_rest`), with what earlier runs derived of it: then ``history`` holds the
    rows to write, new or changed (:func:`history_rows`), so a daily run hands ``load`` a
    day or two of sessions and ``load`` reads nothing back. Else (the window came whole from
    the server) ``session_anomalies`` holds each scored session's verdict, which ``load`` joins
    to the sessions ``validated`` holds.
    """
    stored = stored_rest(validated, read_stored and partial(read_stored, results=True))
    sessions = window_frame(validated, settings, stored)
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
    analysis = {
        "vbr_host": validated["vbr_host"],
        "analysis_date": validated["analysis_date"],
        "scorecards": payload.to_records(cards, kinds),
    }
    if stored is None:
        return analysis | {"session_anomalies": payload.to_columns(result.session_anomalies, ANOMALY_KINDS)}
    rows = history_rows(validated, result.session_anomalies, sessions, stored, aligned=True)
    return analysis | {"history": payload.to_columns(rows[list(HISTORY_ROW_KINDS)], HISTORY_ROW_KINDS)}


def optimize(analysis: dict[str, Any], settings: AnalysisSettings) -> dict[str, Any]:
    """Add the storage and money each job wastes against the target factors.

    Returns the scorecards only: the sessions' anomaly verdicts stay in ``analysis`` (one
    per session of the window; :func:`scored` joins the two for :func:`load`).
    """
    cards = payload.from_records(analysis["scorecards"], SCORECARD_KINDS)
    costed = add_optimization_potential(cards, settings)
    return {
        "vbr_host": analysis["vbr_host"],
        "analysis_date": analysis["analysis_date"],
        "scorecards": payload.to_records(costed, SCORECARD_KINDS),
    }


def scored(analysis: dict[str, Any] | None, optimized: dict[str, Any] | None) -> dict[str, Any] | None:
    """What :func:`load` writes of the analysis: its anomaly verdicts (the whole analysis or its
    :data:`VERDICTS` part) and the costed scorecards (``None`` when the analysis was skipped:
    no job had enough sessions)."""
    if analysis is None or optimized is None:
        return None
    return {**analysis, **optimized}


def history_table(
    validated: dict[str, Any], analysis: dict[str, Any] | None, sessions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every session of the window with its anomaly verdict from ``analysis`` (none when it was skipped).

    ``sessions``: the window's (:func:`window_frame`), when ``validated`` does not hold them all.
    """
    sessions = window_frame(validated) if sessions is None else sessions
    return _stamped(validated, history_rows(validated, _verdicts(analysis), sessions))


def history_rows(
    validated: dict[str, Any],
    anomalies: pd.DataFrame | None,
    sessions: pd.DataFrame,
    stored: pd.DataFrame | None = None,
    *,
    aligned: bool = False,
) -> pd.DataFrame:
    """The window's history rows worth writing: every session with its verdict, or, given what is
    ``stored`` (read with ``results=True``; ``sessions`` then from :func:`window_frame`), the server's
    and the stored ones whose results changed (:func:`_new_or_changed`). ``aligned``: the
    ``anomalies`` are indexed by their rows of ``sessions`` (as ``score_window`` leaves them)."""
    history = _with_verdicts(validated["vbr_host"], sessions, anomalies, aligned=aligned)
    if stored is None:
        return history.drop(columns=STORED_ROW, errors="ignore")
    rows = _new_or_changed(history, stored).drop(columns=STORED_ROW)
    log.info("%s: %d of the window's %d sessions new or changed", validated["vbr_host"], len(rows), len(history))
    return rows


def _verdicts(analysis: dict[str, Any] | None) -> pd.DataFrame | None:
    return None if analysis is None else payload.from_columns(analysis["session_anomalies"], ANOMALY_KINDS)


def _with_verdicts(
    vbr_host: str, sessions: pd.DataFrame, anomalies: pd.DataFrame | None, *, aligned: bool = False
) -> pd.DataFrame:
    if anomalies is not None and aligned:
        # joined on the row numbers, once each verdict is checked to be its row's session
        at = sessions.index.get_indexer(anomalies.index) if anomalies.index.is_unique else np.array([-1])
        if (at < 0).any() or not (anomalies["session_id"].to_numpy() == sessions["session_id"].to_numpy()[at]).all():
            raise ValueError(f"{vbr_host}: the anomaly verdicts are not indexed by their sessions' rows")
        sessions = sessions.join(anomalies[list(VERDICT_COLUMNS)])
    elif anomalies is not None:
        # one row per session on both sides, checked by hashing: merge(validate="one_to_one")
        # sorts both key columns to check it (2 of the 2.4 s this step took at 200,000 sessions)
        for side, frame in (("window", sessions), ("anomaly verdicts", anomalies)):
            if not frame["session_id"].is_unique:
                raise ValueError(f"{vbr_host}: a session_id repeats in the {side}")
        sessions = sessions.merge(anomalies[["session_id", *VERDICT_COLUMNS]], on="session_id", how="left")
    else:
        sessions = sessions.assign(is_anomaly=False, anomaly_score=float("nan"), anomaly_reason=None)
    sessions["is_anomaly"] = sessions["is_anomaly"].fillna(False).astype(bool)
    return sessions


def _stamped(validated: dict[str, Any], history: pd.DataFrame) -> pd.DataFrame:
    """History rows with what the run knows of them all: host, its version, collection time, day."""
    return history.assign(
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
    conn: Any,
    validated: dict[str, Any],
    analysis: dict[str, Any] | None,
    dag_run_id: str | None = None,
    settings: AnalysisSettings | None = None,
) -> dict[str, Any]:
    """Write the history, the scorecards and the job settings of one host and day in one transaction.

    ``analysis``: the analysis's verdicts or history rows with the costed scorecards
    (:func:`scored`), or ``None`` when it was skipped. Each scorecard records ``dag_run_id``,
    the Airflow run that wrote it (the view links to it). Only history rows that are new or
    changed are written: :func:`analyze` found them, or (the analysis skipped) the window's
    stored sessions are read on ``conn`` to find them (``settings``: the run's; see
    :func:`window_frame`).
    """
    if analysis is not None and "history" in analysis:
        rows = payload.from_columns(analysis["history"], HISTORY_ROW_KINDS)
    else:  # the analysis was skipped, or the server sent the whole window
        stored = stored_rest(validated, partial(stored_sessions, conn, results=True))
        rows = history_rows(validated, _verdicts(analysis), window_frame(validated, settings, stored), stored)
    history = _stamped(validated, rows)
    records = analysis["scorecards"] if analysis is not None else []
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


def _new_or_changed(history: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The history rows worth sending: the server's, and stored ones whose results changed.

    A stored session the server did not report has its record from the history itself (its
    row of ``stored``: :data:`STORED_ROW`), so only its
    :data:`~veeam_efficiency.history_reads.RESULT_COLUMNS` can differ (compared as ``write_run``
    does: of a drifting one, only whether it is null). Leaving the rest out spares a daily run
    staging the month for the database to find it unchanged; ``write_run`` still compares what is sent.
    """
    if stored.empty:
        return history
    at = history[STORED_ROW].to_numpy()
    send = at < 0
    taken = np.where(send, 0, at)
    for column in RESULT_COLUMNS:
        now, then = history[column.name].to_numpy(), stored[column.name].to_numpy()[taken]
        now_null, then_null = pd.isna(now), pd.isna(then)
        if column.name in HISTORY_TABLE.drifting:
            send |= now_null != then_null
        else:
            with np.errstate(invalid="ignore"):
                send |= ~((now == then) | (now_null & then_null))
    return history[send]
