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
    STDOUT (FORMAT csv)`` and parsed by pandas in C (a million rows in a few seconds; a
    cursor would build a Python tuple per row). Times travel as epoch microseconds, a
    nullable value with an explicit null flag (no value can be taken for a null marker), and
    floats in PostgreSQL's shortest exact text, parsed back exactly.
    """
    columns = (*SESSION_RECORD.columns, *(RESULT_COLUMNS if results else ()))
    selected: list[tuple[sql.Composable, str]] = []
    for column in columns:
        ident = sql.Identifier(column.name)
        if column.kind == "time":
            selected.append((sql.SQL("(extract(epoch FROM {c}) * 1000000)::bigint").format(c=ident), column.name))
        elif column.kind in ("text", "bool") and column.nullable:
            selected.append((sql.SQL("coalesce({c}::text, '')").format(c=ident), column.name))
            selected.append((sql.SQL("{c} IS NULL").format(c=ident), f"{column.name}__null"))
        else:
            selected.append((ident, column.name))
    names = [name for _, name in selected]
    query = sql.SQL(
        "COPY (SELECT {columns} FROM {history} WHERE vbr_host = {host} "
        "AND creation_time >= {start} AND creation_time < {end}) TO STDOUT (FORMAT csv)"
    ).format(
        columns=sql.SQL(", ").join(expression for expression, _ in selected),
        history=sql.Identifier(SCHEMA, HISTORY),
        host=sql.Literal(vbr_host),
        start=sql.Literal(start),
        end=sql.Literal(end),
    )
    buffer = io.BytesIO()
    if _exists(conn, HISTORY):
        with conn.cursor() as cur, cur.copy(query) as copy:
            for block in copy:
                buffer.write(block)
        conn.commit()
    buffer.seek(0)
    floats = [column.name for column in columns if column.kind == "float"]
    raw = pd.read_csv(
        buffer,
        header=None,
        names=names,
        dtype={name: float if name in floats else str for name in names},
        keep_default_na=False,
        na_values={name: [""] for name in floats},  # an empty field is NULL for a float, text for the rest
        float_precision="round_trip",
    )
    return _typed(raw, columns)


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
            micros = pd.to_numeric(values.replace("", None), errors="raise").astype("Int64")
            frame[column.name] = pd.to_datetime(micros, unit="us", utc=True)
        elif column.kind == "int":
            frame[column.name] = values.astype(np.int64)
        elif column.kind == "float":
            frame[column.name] = values.astype(float)
        elif column.kind == "bool" and not column.nullable:
            frame[column.name] = values.to_numpy() == "t"
        elif column.nullable:  # text, or a bool that may be unknown: True/False/None objects
            typed = values.map({"true": True, "false": False}) if column.kind == "bool" else values.astype(object)
            frame[column.name] = typed.astype(object).where(raw[f"{column.name}__null"] != "t", None)
        else:
            frame[column.name] = values.astype(object)
    return frame
