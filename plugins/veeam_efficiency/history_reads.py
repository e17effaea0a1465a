"""What an incremental collection reads back from the results database: the collection log and stored sessions.

The reads take a connection the caller owns (``collect`` holds the server's collection
lock on it) and commit, so no transaction stays open while the collector runs. A table
that is not there yet reads as empty: a run's collections start beside its schema step, so
on a first run they may look before the tables exist.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from psycopg import sql

from veeam_efficiency.collection_plan import Collected
from veeam_efficiency.sessions import EXCLUSION_REASONS, TALLY_COUNTS, TALLY_NEWEST
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.tables import COLLECTION_LOG, HISTORY, HISTORY_TABLE, SCHEMA, SESSION_RECORD, Column

# What a run derives and stores beside a session's record: factors, exclusion, anomaly verdict
# (the history's columns but the record, the key and the provenance)
RESULT_COLUMNS: tuple[Column, ...] = tuple(
    column
    for column in HISTORY_TABLE.columns
    if column.name not in {*SESSION_RECORD.names, *HISTORY_TABLE.key, *HISTORY_TABLE.provenance}
)


def collected_intervals(
    conn: Any, collection_target: str, start: datetime, end: datetime
) -> tuple[str | None, list[Collected]]:
    """The logged collections through ``collection_target`` that overlap ``[start, end)``, and the
    ``vbr_host`` the latest of them answered as (None: no collection logged)."""
    if not _exists(conn, COLLECTION_LOG):
        return None, []
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT vbr_host, interval_start, interval_end, collected_at, sessions_returned FROM {log} "
                "WHERE collection_target = %s AND interval_end > %s AND interval_start < %s ORDER BY collected_at"
            ).format(log=sql.Identifier(SCHEMA, COLLECTION_LOG)),
            (collection_target, start, end),
        )
        rows = cur.fetchall()
    conn.commit()
    return (rows[-1][0] if rows else None), [Collected(*row[1:]) for row in rows]


def stored_counts(conn: Any, vbr_host: str, intervals: Sequence[tuple[datetime, datetime]]) -> list[int]:
    """How many of the host's sessions the history holds in each of ``intervals`` (one scan, counted by PostgreSQL)."""
    if not intervals:
        return []
    counts = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE creation_time >= %s AND creation_time < %s)") for _ in intervals
    )
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT {counts} FROM {history} WHERE vbr_host = %s AND creation_time >= %s AND creation_time < %s"
            ).format(counts=counts, history=sql.Identifier(SCHEMA, HISTORY)),
            [
                *(moment for interval in intervals for moment in interval),
                vbr_host,
                min(start for start, _ in intervals),
                max(end for _, end in intervals),
            ],
        )
        row = cur.fetchone()
    conn.commit()
    return [int(count) for count in row]


def stored_sessions(conn: Any, vbr_host: str, start: datetime, end: datetime, *, results: bool = False) -> pd.DataFrame:
    """The host's stored sessions created in ``[start, end)``, in the contract's session columns and types.

    ``results``: with the :data:`RESULT_COLUMNS` as stored too. Read with ``COPY ... TO
    STDOUT (FORMAT csv)`` and parsed by pandas in C while PostgreSQL still sends (a cursor
    would build a Python tuple per row). Times travel as epoch microseconds; a nullable time,
    text or flag as its value and an explicit null flag (no value can be taken for a null
    marker), so every column but the text parses straight into its type; floats in
    PostgreSQL's shortest exact text, parsed back exactly.
    """
    columns = (*SESSION_RECORD.columns, *(RESULT_COLUMNS if results else ()))
    selected: list[tuple[sql.Composable, str, Any]] = []  # expression, CSV name, how pandas parses it
    for column in columns:
        value: sql.Composable = sql.Identifier(column.name)
        if column.kind == "time":
            value = sql.SQL("(extract(epoch FROM {c}) * 1000000)::bigint").format(c=value)
        parse = _CSV_TYPES[column.kind]
        if _flagged(column):
            selected.append(
                (sql.SQL("coalesce({v}, {empty})").format(v=value, empty=_EMPTY[column.kind]), column.name, parse)
            )
            selected.append(
                (sql.SQL("{c} IS NULL").format(c=sql.Identifier(column.name)), f"{column.name}__null", bool)
            )
        else:
            selected.append((value, column.name, parse))
    query = sql.SQL(
        "COPY (SELECT {columns} FROM {history} WHERE vbr_host = {host} "
        "AND creation_time >= {start} AND creation_time < {end}) TO STDOUT (FORMAT csv)"
    ).format(
        columns=sql.SQL(", ").join(expression for expression, _, _ in selected),
        history=sql.Identifier(SCHEMA, HISTORY),
        host=sql.Literal(vbr_host),
        start=sql.Literal(start),
        end=sql.Literal(end),
    )
    floats = [column.name for column in columns if column.kind == "float"]
    options: dict[str, Any] = {
        "header": None,
        "names": [name for _, name, _ in selected],
        "dtype": {name: parse for _, name, parse in selected},
        "keep_default_na": False,
        "na_values": {name: [""] for name in floats},  # an empty field is NULL for a float, text for the rest
        "float_precision": "round_trip",
        "true_values": ["t"],
        "false_values": ["f"],
    }
    if not _exists(conn, HISTORY):
        return _typed(pd.read_csv(io.BytesIO(), **options), columns)
    with conn.cursor() as cur, cur.copy(query) as copy:
        raw = pd.read_csv(io.BufferedReader(_CopyStream(copy), buffer_size=1 << 20), **options)
    conn.commit()
    return _typed(raw, columns)


def stored_tally(
    conn: Any,
    vbr_host: str,
    start: datetime,
    end: datetime,
    reported: Sequence[str],
    settings: AnalysisSettings,
) -> tuple[pd.DataFrame, int]:
    """The :func:`~veeam_efficiency.sessions.job_tally` of the host's stored sessions created in
    ``[start, end)`` but those ``reported`` (by session_id), counted by PostgreSQL with the run's
    ``settings``; and how many of them repeat a session_id (the tally counts each row: exact
    only when none does).

    ``validate`` needs only these counts of the stored month, not its rows: counting 966,000
    stored sessions where they are took 2.2 s, reading and windowing them about 9 s.

    Nested loops are off for the query. A history written moments ago has no statistics yet
    (autovacuum analyses it within a minute or more), so the planner takes it for nearly empty
    and compares each stored session with every reported id: 14 s for 20,000 sessions (bench
    steady state, a full run right after day D), hours for a million. Hashing the reported ids
    costs the same whatever the statistics say.
    """
    counts = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE reason = {r}) AS {name}").format(
            r=sql.Literal(reason), name=sql.Identifier(reason)
        )
        for reason in EXCLUSION_REASONS
    )
    query = sql.SQL(
        "WITH reported AS (SELECT unnest({reported}::text[]) AS session_id), "
        "rest AS MATERIALIZED (SELECT session_id, job_id, job_name, creation_time, {reason} AS reason "
        "FROM {history} AS h WHERE vbr_host = {host} AND creation_time >= {start} AND creation_time < {end} "
        "AND NOT EXISTS (SELECT FROM reported AS r WHERE r.session_id = h.session_id)), "
        "counted AS (SELECT job_id, count(*) AS sessions, count(*) FILTER (WHERE reason IS NULL) AS found, {counts}, "
        "max(creation_time) AS newest_created FROM rest GROUP BY job_id) "
        "SELECT DISTINCT ON (c.job_id) c.*, r.session_id, r.job_name, "
        "(SELECT count(*) - count(DISTINCT session_id) FROM rest) "
        "FROM counted AS c JOIN rest AS r ON r.job_id = c.job_id AND r.creation_time = c.newest_created "
        "ORDER BY c.job_id, r.session_id DESC"  # the newest session: latest created, then highest id (COLLATE "C")
    ).format(
        reported=sql.Placeholder("reported"),
        reason=_exclusion_reason(),
        history=sql.Identifier(SCHEMA, HISTORY),
        host=sql.Placeholder("host"),
        start=sql.Placeholder("start"),
        end=sql.Placeholder("end"),
        counts=counts,
    )
    names = ["job_id", *TALLY_COUNTS, *TALLY_NEWEST]
    rows: list[Any] = []
    if _exists(conn, HISTORY):
        params = {"reported": list(reported), "host": vbr_host, "start": start, "end": end,
                  "min_factor": settings.min_factor, "max_factor": settings.max_factor}  # fmt: skip
        with conn.cursor() as cur:
            cur.execute("SET LOCAL enable_nestloop = off")  # until the commit below
            cur.execute(query, params)
            rows = cur.fetchall()
        conn.commit()
    tally = pd.DataFrame([row[:-1] for row in rows], columns=names)
    tally = tally.astype({name: np.int64 for name in TALLY_COUNTS} | {"job_id": object, "job_name": object})
    tally["newest_created"] = pd.to_datetime(tally["newest_created"], utc=True)
    tally["newest_session_id"] = tally["newest_session_id"].astype(object)
    return tally, int(rows[0][-1]) if rows else 0


def _exclusion_reason() -> sql.Composable:
    """:func:`veeam_efficiency.sessions.exclusion_reasons` in SQL: the first reason that holds, else NULL.

    The factors as ``add_factors`` computes them, ``100 / raw`` in double precision (``100.0 / raw``
    alone would be exact numeric and could disagree with pandas at a bound), NaN for a raw not above 0.
    """

    def plausible(raw: str) -> sql.Composable:
        return sql.SQL("({raw} > 0 AND 100.0::float8 / {raw} BETWEEN {low} AND {high})").format(
            raw=sql.Identifier(raw), low=sql.Placeholder("min_factor"), high=sql.Placeholder("max_factor")
        )

    when = {
        "failed": sql.SQL("result = 'Failed'"),
        "running": sql.SQL("end_time IS NULL"),
        "no_data": sql.SQL("(data_size_bytes = 0 OR dedup_ratio_raw = 0 OR compress_ratio_raw = 0)"),
        "implausible_ratio": sql.SQL("NOT ({} AND {})").format(
            plausible("dedup_ratio_raw"), plausible("compress_ratio_raw")
        ),
    }
    return sql.SQL("CASE {} END").format(  # in the order of EXCLUSION_REASONS: the first that holds
        sql.SQL(" ").join(
            sql.SQL("WHEN {} THEN {}").format(when[reason], sql.Literal(reason)) for reason in EXCLUSION_REASONS
        )
    )


# What stands in for a NULL before its flag column says it is one
_EMPTY = {"text": sql.SQL("''"), "bool": sql.SQL("false"), "time": sql.SQL("0"), "int": sql.SQL("0")}
# How each CSV field parses: a text as text, a flag ("t"/"f") as bool, the rest straight into its type
_CSV_TYPES: dict[str, Any] = {"text": object, "bool": bool, "int": np.int64, "time": np.int64, "float": np.float64}


def _flagged(column: Column) -> bool:
    """A nullable column but a float (whose empty field is NULL) travels with a null flag beside it."""
    return column.nullable and column.kind != "float"


class _CopyStream(io.RawIOBase):
    """The rows of a ``COPY ... TO STDOUT`` as a file, so pandas parses while PostgreSQL still sends.

    Reading every row before parsing made the server's work and the parsing take turns;
    streamed, they run at once. psycopg offers the rows only one by one, hence this wrapper.
    """

    def __init__(self, copy: Any) -> None:
        self._rows = iter(copy)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            if not self._pending:
                block = next(self._rows, None)
                if block is None:
                    break
                self._pending = memoryview(block).cast("B")
            size = min(len(self._pending), len(target) - filled)
            target[filled : filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        return filled


def _exists(conn: Any, table: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{table}",))
        found = bool(cur.fetchone()[0])
    conn.commit()
    return found


def _typed(raw: pd.DataFrame, columns: tuple[Column, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(index=raw.index)
    for column in columns:
        values = raw[column.name]
        if column.kind == "time":
            values = pd.Series(pd.to_datetime(values.to_numpy(np.int64), unit="us", utc=True), index=raw.index)
        if _flagged(column):  # None for text and flags, NaT for times
            missing = raw[f"{column.name}__null"].to_numpy()
            values = (values if column.kind == "time" else values.astype(object)).where(~missing, None)
        frame[column.name] = values
    return frame
