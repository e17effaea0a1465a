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
                (sql.SQL("{c} IS NULL").format(c=sql.Identifier(column.name)), f"{column.name}__null", object)
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
    }
    if not _exists(conn, HISTORY):
        return _typed(pd.read_csv(io.BytesIO(), **options), columns)
    with conn.cursor() as cur, cur.copy(query) as copy:
        raw = pd.read_csv(io.BufferedReader(_CopyStream(copy), buffer_size=1 << 20), **options)
    conn.commit()
    return _typed(raw, columns)


# What stands in for a NULL before its flag column says it is one
_EMPTY = {"text": sql.SQL("''"), "bool": sql.SQL("false"), "time": sql.SQL("0"), "int": sql.SQL("0")}
# How each CSV field parses: text (and a flag, "t"/"f") as text, the rest straight into its type
_CSV_TYPES: dict[str, Any] = {"text": object, "bool": object, "int": np.int64, "time": np.int64, "float": np.float64}


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
        elif column.kind == "bool":
            values = pd.Series(values.to_numpy() == "t", index=raw.index)
        if _flagged(column):  # None for text and flags, NaT for times
            missing = raw[f"{column.name}__null"].to_numpy() == "t"
            values = (values if column.kind == "time" else values.astype(object)).where(~missing, None)
        frame[column.name] = values
    return frame
