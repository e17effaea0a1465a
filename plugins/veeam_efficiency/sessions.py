"""From a validated collector document to the window's session table.

Every session created in the window is kept (it is stored in the history table),
each with the reason it cannot be scored, if any. Nothing is dropped silently: the
only rows removed are repeats of a ``session_id`` (the history holds one row per
session), and they are counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from veeam_efficiency.tables import SESSION_RECORD

if TYPE_CHECKING:
    from veeam_efficiency.contract import CollectorDocument
    from veeam_efficiency.settings import AnalysisSettings

KINDS = SESSION_RECORD.kinds
# absent from version 1 documents: null
OPTIONAL = tuple(column.name for column in SESSION_RECORD.columns if column.optional)

# Why a session is not scored, checked in this order; the first that applies is kept.
EXCLUSION_REASONS = ("failed", "running", "no_data", "implausible_ratio")
DUPLICATE = "duplicate_session_id"


@dataclass(frozen=True)
class WindowSessions:
    """The sessions of one VBR host in one window, and what happened to each."""

    vbr_host: str
    vbr_version: str
    collected_at: datetime
    window_start: datetime
    window_end: datetime
    frame: pd.DataFrame
    sessions_collected: int  # what the server answered (all of it, the window's or not)
    duplicates_dropped: int
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def scorable(self) -> pd.DataFrame:
        return self.frame[self.frame["excluded_reason"].isna()]


def sessions_frame(sessions: list[Any] | Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """The contract's sessions as a typed table (UTC times, int64 sizes).

    ``sessions`` is the contract's list of records, or the same as columns
    (``{field: array}``, as :mod:`veeam_efficiency.columnar` parses them).
    """
    if isinstance(sessions, Mapping):
        frame = pd.DataFrame({name: _column(sessions[name]) for name in KINDS}, copy=False)
    else:
        frame = pd.DataFrame.from_records(sessions, columns=list(KINDS))
    for column, kind in KINDS.items():
        if kind == "time":
            if isinstance(frame[column].dtype, np.dtype) and frame[column].dtype.kind == "M":
                # already UTC instants, from columnar.parse_document_columns
                frame[column] = frame[column].dt.tz_localize("UTC")
            else:
                frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        elif kind != "text" or frame[column].dtype != object:
            frame[column] = frame[column].astype({"int": "int64", "bool": bool, "text": object}[kind])
    for column in OPTIONAL:  # a v1 document's records lack them: NaN from_records, null here
        frame[column] = frame[column].where(frame[column].notna(), None)
    return frame


def _column(values: Sequence[Any]) -> pd.Series:
    """A typed numpy array as it is; anything else as plain Python objects (no text inference)."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return pd.Series(values, copy=False)
    return pd.Series(values, dtype=object, copy=False)


def window_sessions(
    document: CollectorDocument,
    window_start: datetime,
    window_end: datetime,
    settings: AnalysisSettings,
    *,
    frame: pd.DataFrame | None = None,
) -> WindowSessions:
    """Keep the sessions created in ``[window_start, window_end)`` and say which can be scored.

    ``frame``: the sessions, when not the document's own (those of several documents: an
    incremental collection's intervals).
    """
    frame = sessions_frame(document["sessions"]) if frame is None else frame
    collected = len(frame)
    frame, duplicates = window_table(frame, window_start, window_end, settings)
    counts = frame["excluded_reason"].value_counts()
    excluded = {reason: int(counts.get(reason, 0)) for reason in EXCLUSION_REASONS}
    return WindowSessions(
        vbr_host=document["vbr_host"],
        vbr_version=document["vbr_version"],
        collected_at=document["collected_at"],
        window_start=window_start,
        window_end=window_end,
        frame=frame,
        sessions_collected=collected,
        duplicates_dropped=duplicates,
        excluded=excluded,
    )


def window_table(
    frame: pd.DataFrame, window_start: datetime, window_end: datetime, settings: AnalysisSettings
) -> tuple[pd.DataFrame, int]:
    """The sessions of ``frame`` created in ``[window_start, window_end)``, each once (the first
    of a repeated ``session_id``), in chronological order, with factors and the reason each
    cannot be scored; and how many repeats were dropped."""
    start, end = pd.Timestamp(window_start), pd.Timestamp(window_end)
    created = frame["creation_time"]
    kept = np.flatnonzero(((created >= start) & (created < end)).to_numpy())
    session_ids = frame["session_id"].to_numpy()[kept]
    duplicated = pd.Series(session_ids, dtype=object).duplicated(keep="first").to_numpy()
    kept, session_ids = kept[~duplicated], session_ids[~duplicated]
    kept = kept[chronological_order(_ticks(created)[kept], session_ids)]
    table = add_factors(frame.take(kept).reset_index(drop=True))
    table["excluded_reason"] = exclusion_reasons(table, settings)
    return table, int(duplicated.sum())


def _ticks(times: pd.Series) -> np.ndarray:
    """Microseconds since the epoch as int64 (NaT sorts first), cheap to sort and compare."""
    return times.to_numpy("datetime64[us]").view("int64")


def chronological_order(ticks: np.ndarray, session_ids: np.ndarray) -> np.ndarray:
    """Positions that put sessions in ``(creation_time, session_id)`` order.

    Sorting the int64 times is cheap; the session_id text only breaks ties, and only
    within each group of sessions sharing a creation time: the groups of one size are
    sorted together as the rows of a 2-D array. Comparing strings across all tied
    sessions instead (jobs scheduled at the same second) was n log n string compares,
    the one step of the analysis that grew faster than the session count.
    """
    order = np.argsort(ticks, kind="stable")
    in_order = ticks[order]
    same = in_order[1:] == in_order[:-1]
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    if tied.any():
        positions = np.flatnonzero(tied)
        keys = byte_order_keys(session_ids[order[positions]])
        tied_ticks = in_order[positions]
        starts = np.flatnonzero(np.r_[True, tied_ticks[1:] != tied_ticks[:-1]])
        sizes = np.diff(np.r_[starts, len(positions)])
        for size in np.unique(sizes):  # a few distinct group sizes, not one pass per group
            local = starts[sizes == size][:, None] + np.arange(size)
            rows = positions[local]
            by_id = np.argsort(keys[local], axis=1, kind="stable")
            order[rows] = np.take_along_axis(order[rows], by_id, axis=1)
    return order


def byte_order_keys(session_ids: np.ndarray) -> np.ndarray:
    """``session_ids`` as an array whose sort order is their UTF-8 byte order (``COLLATE "C"``).

    ASCII ids (every Veeam GUID) become fixed-width bytes, which numpy compares in C;
    anything else stays text, whose code-point order is the same as UTF-8 byte order.
    """
    try:
        return np.asarray(session_ids, dtype=object).astype("S")
    except UnicodeEncodeError:
        return np.asarray(session_ids, dtype=object)


def add_factors(frame: pd.DataFrame) -> pd.DataFrame:
    """Veeam's raw percentages as the factors the console shows: ``100 / raw``; 0 means no data."""
    dedup_raw = frame["dedup_ratio_raw"].to_numpy(dtype=float)
    compress_raw = frame["compress_ratio_raw"].to_numpy(dtype=float)
    with np.errstate(divide="ignore"):
        dedup = np.where(dedup_raw > 0, 100.0 / dedup_raw, np.nan)
        compression = np.where(compress_raw > 0, 100.0 / compress_raw, np.nan)
    return frame.assign(dedup_ratio=dedup, compression_ratio=compression, combined_ratio=dedup * compression)


def exclusion_reasons(frame: pd.DataFrame, settings: AnalysisSettings) -> pd.Series:
    """The first reason each session cannot be scored, or NaN when it can.

    A factor outside ``[min_factor, max_factor]`` is implausible (real servers emit
    ``CompressRatio`` 191073); tiny sessions with compression below 1x are real and kept.
    """
    in_range = [
        frame[column].between(settings.min_factor, settings.max_factor)
        for column in ("dedup_ratio", "compression_ratio")
    ]
    conditions = [
        frame["result"].eq("Failed"),
        frame["end_time"].isna(),
        frame["data_size_bytes"].eq(0) | frame["dedup_ratio_raw"].eq(0) | frame["compress_ratio_raw"].eq(0),
        ~(in_range[0] & in_range[1]),
    ]
    reasons = np.select(conditions, list(EXCLUSION_REASONS), default="")
    return pd.Series(reasons, index=frame.index, dtype=object).replace("", np.nan)


# A job tally (:func:`job_tally`): per job, the sessions, the scorable ones and those excluded by each
# reason (counts, which add up over disjoint sets of sessions), and its newest session.
TALLY_COUNTS = ("sessions", "found", *EXCLUSION_REASONS)
TALLY_NEWEST = ("newest_created", "newest_session_id", "job_name")


def job_tally(window: pd.DataFrame) -> pd.DataFrame:
    """Per job of a window table (:func:`window_table`): :data:`TALLY_COUNTS` and :data:`TALLY_NEWEST`.

    Tallies of disjoint sessions combine (:func:`combined_tallies`), so the window's stored
    sessions can be counted where they are (``history_reads.stored_tally``) instead of read.
    """
    codes, job_ids = job_codes(window["job_id"])
    jobs = len(job_ids)
    reasons = window["excluded_reason"]
    tally = pd.DataFrame({"job_id": job_ids.to_numpy(), "sessions": np.bincount(codes, minlength=jobs)})
    tally["found"] = np.bincount(codes[reasons.isna().to_numpy()], minlength=jobs)
    for reason in EXCLUSION_REASONS:
        tally[reason] = np.bincount(codes[reasons.eq(reason).to_numpy()], minlength=jobs)
    order = chronological_order(_ticks(window["creation_time"]), window["session_id"].to_numpy())
    _, last_of_job = np.unique(codes[order][::-1], return_index=True)  # each job's last in time
    newest = window.iloc[order[::-1][last_of_job]].reset_index(drop=True)
    tally["newest_created"] = newest["creation_time"]
    tally["newest_session_id"] = newest["session_id"]
    tally["job_name"] = newest["job_name"]
    return tally


def combined_tallies(*tallies: pd.DataFrame) -> pd.DataFrame:
    """The tally of the sessions of ``tallies`` together (each a tally of sessions none of the others holds)."""
    both = pd.concat(tallies, ignore_index=True)
    counts = both.groupby("job_id", sort=True)[list(TALLY_COUNTS)].sum()
    order = chronological_order(_ticks(both["newest_created"]), both["newest_session_id"].to_numpy())
    newest = both.take(order).drop_duplicates("job_id", keep="last").set_index("job_id")[list(TALLY_NEWEST)]
    return counts.join(newest).reset_index()


def job_sufficiency(tally: pd.DataFrame, min_sessions: int) -> pd.DataFrame:
    """Per job of a :func:`job_tally`: scorable sessions found against the ``min_sessions`` needed.

    Jobs with sessions in the window but none scorable are listed too (found 0), so a
    job whose every session failed is reported rather than silently absent. The newest
    session's name is the job's: a renamed job keeps its job_id.
    """
    table = tally.sort_values("job_id", ignore_index=True)[["job_id", "job_name", "found"]]
    table["found"] = table["found"].astype(int)
    table["needed"] = min_sessions
    table["qualifies"] = table["found"] >= min_sessions
    return table


def job_codes(job_ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """An integer code per session and the sorted distinct job_ids the codes index.

    Grouping by the code is integer work; grouping by the job_id text would hash a
    million strings again for every statistic.
    """
    codes, uniques = pd.factorize(job_ids, sort=True)
    return codes, pd.Index(np.asarray(uniques, dtype=object), dtype=object, name="job_id")


def latest_job_names(sessions: pd.DataFrame) -> pd.Series:
    """A renamed job keeps its job_id; its scorecard shows the newest name."""
    codes, job_ids = job_codes(sessions["job_id"])
    order = np.argsort(_ticks(sessions["creation_time"]), kind="stable")
    names = pd.Series(sessions["job_name"].to_numpy()[order], dtype=object).groupby(codes[order]).last()
    return pd.Series(names.to_numpy(), index=job_ids[names.index], name="job_name", dtype=object)
