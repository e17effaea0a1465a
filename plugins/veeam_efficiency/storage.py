"""Everything the DAG says to PostgreSQL: the schema, and one all-or-nothing write per run.

A run's rows are streamed with ``COPY`` into temporary tables and merged with
``INSERT ... ON CONFLICT`` on the natural keys, in one transaction under an advisory
lock per VBR host: re-running a day, a backfill, or two runs of the same day at once
leave the same rows, never duplicates or half a run. Statements are composed with
``psycopg.sql`` from the column lists below (identifiers quoted by psycopg, values
always bound), so the tables and the writer cannot drift apart.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from psycopg.errors import UniqueViolation

from veeam_efficiency.copy_binary import NotBinaryCopyable, binary_copy
from veeam_efficiency.tables import HISTORY, SCHEMA, SCORECARDS, UNSCORED

SCHEMA_SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "schema.sql"

# column -> kind: "text", "int", "float", "bool", "time", "date", "json"
SCORECARD_COLUMNS: dict[str, str] = {
    "vbr_host": "text", "job_id": "text", "analysis_date": "date", "scope": "text", "job_name": "text",
    "window_start": "time", "window_end": "time",
    "sessions_in_window": "int", "sessions_scored": "int", "sessions_excluded": "int",
    "excluded_by_reason": "json", "anomalous_sessions": "int", "critical_anomalies": "int",
    "data_scored_bytes": "float", "dedup_factor": "float", "compression_factor": "float",
    "combined_factor": "float", "coefficient_of_variation": "float",
    "dedup_score": "float", "compression_score": "float", "trend_score": "float",
    "consistency_score": "float", "anomaly_score": "float", "overall_score": "float",
    "grade": "text", "efficiency_rating": "text", "trend_classification": "text",
    "trend_p_value": "float", "trend_change": "float",
    "raw_daily_gb": "float", "current_daily_gb": "float", "target_daily_gb": "float",
    "optimization_potential_gb": "float", "projected_monthly_savings_gb": "float",
    "annual_savings_usd": "float", "quality_flags": "json",
    # the grade in context (context_scores.py, docs/context-grade.md)
    "context_expected_dedup_factor": "float", "context_expected_compression_factor": "float",
    "context_score": "float", "context_grade": "text",
    "attainable_potential_gb": "float", "attainable_annual_savings_usd": "float",
    "recommendations": "json", "change_point_at": "time", "change_point_shift": "float",
}  # fmt: skip
SCORECARD_KEY = ("vbr_host", "job_id", "analysis_date")

HISTORY_COLUMNS: dict[str, str] = {
    "vbr_host": "text", "session_id": "text", "vbr_version": "text", "collected_at": "time",
    "job_id": "text", "job_name": "text", "job_type": "text", "algorithm": "text", "result": "text",
    "is_retry": "bool", "creation_time": "time", "end_time": "time",
    "data_size_bytes": "int", "backup_size_bytes": "int", "read_size_bytes": "int",
    "transferred_size_bytes": "int", "dedup_ratio_raw": "int", "compress_ratio_raw": "int",
    "dedup_ratio": "float", "compression_ratio": "float", "combined_ratio": "float",
    "excluded_reason": "text", "is_anomaly": "bool", "anomaly_score": "float", "anomaly_reason": "text",
    "analysis_date": "date",
}  # fmt: skip
HISTORY_KEY = ("vbr_host", "session_id")

UNSCORED_COLUMNS: dict[str, str] = {
    "vbr_host": "text", "job_id": "text", "analysis_date": "date", "job_name": "text",
    "sessions_found": "int", "sessions_needed": "int", "reason": "text",
}  # fmt: skip
UNSCORED_KEY = ("vbr_host", "job_id", "analysis_date")
TOO_FEW_SESSIONS = "too_few_scorable_sessions"
# Every run sets up the schema at once (a backfill starts several): one at a time, or their
# concurrent CREATE ... IF NOT EXISTS and migrations collide on the catalog.
SCHEMA_LOCK_KEY = f"{SCHEMA}:schema"


class SchemaNotReady(RuntimeError):
    """The tables are missing, lack a column, or the role may not write them; the DBA must act."""


def ensure_schema(conn: Any) -> None:
    """Create or migrate the ``feature3`` tables when this role may, else check they are usable.

    A role that owns ``feature3`` (or finds it missing) runs the idempotent DDL. A
    least-privilege loader (``include/sql/grants.sql``: rows only, the schema belongs to
    another role) cannot, and need not: it checks that every column it writes is there and
    that it may write it, and raises :class:`SchemaNotReady` saying what the DBA must apply.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT n.oid IS NULL OR pg_has_role(current_user, n.nspowner, 'USAGE') "
            "FROM (SELECT 1) AS one LEFT JOIN pg_namespace AS n ON n.nspname = %s",
            (SCHEMA,),
        )
        if cur.fetchone()[0]:
            # held until the commit below: the other runs wait, then find everything in place
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (SCHEMA_LOCK_KEY,))
            cur.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
        else:
            problems = _unusable_columns(cur)
            if problems:
                conn.rollback()
                raise SchemaNotReady(
                    f"schema {SCHEMA} belongs to another role and is not ready for this one: "
                    f"{'; '.join(problems)}. Have the DBA apply include/sql/grants.sql (it applies schema.sql too)."
                )
    conn.commit()


def _unusable_columns(cur: Any) -> list[str]:
    """Each table this DAG writes whose columns are missing or not writable by the current role."""
    problems = []
    for table, columns in ((SCORECARDS, SCORECARD_COLUMNS), (HISTORY, HISTORY_COLUMNS), (UNSCORED, UNSCORED_COLUMNS)):
        cur.execute(
            "SELECT wanted.name, a.attname IS NOT NULL, a.attname IS NOT NULL "  # a privilege list means "any of"
            "AND has_column_privilege(c.oid, a.attnum, 'SELECT') AND has_column_privilege(c.oid, a.attnum, 'INSERT') "
            "AND has_column_privilege(c.oid, a.attnum, 'UPDATE') "
            "FROM unnest(%s::text[]) AS wanted(name) "
            "LEFT JOIN pg_class AS c ON c.oid = to_regclass(%s) "
            "LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = wanted.name AND NOT a.attisdropped",
            (list(columns), f"{SCHEMA}.{table}"),
        )
        rows = cur.fetchall()
        missing = [name for name, present, _ in rows if not present]
        denied = [name for name, present, writable in rows if present and not writable]
        if len(missing) == len(rows):
            problems.append(f"table {SCHEMA}.{table} is missing")
        elif missing:
            problems.append(f"{SCHEMA}.{table} lacks column(s) {', '.join(missing)}")
        if len(denied) == len(rows):
            problems.append(f"no SELECT, INSERT and UPDATE on {SCHEMA}.{table}")
        elif denied:
            problems.append(f"no SELECT, INSERT and UPDATE on {SCHEMA}.{table} column(s) {', '.join(denied)}")
    for table in (SCORECARDS, UNSCORED):  # stale rows of a re-run day are deleted
        cur.execute("SELECT has_table_privilege(to_regclass(%s), 'DELETE')", (f"{SCHEMA}.{table}",))
        if cur.fetchone()[0] is False:
            problems.append(f"no DELETE on {SCHEMA}.{table}")
    return problems


def write_run(
    conn: Any,
    *,
    vbr_host: str,
    analysis_date: date,
    history: pd.DataFrame,
    scorecards: pd.DataFrame,
    unscored: pd.DataFrame | None = None,
) -> dict[str, int]:
    """Write one host's day in a single transaction: history upserted, scorecards and unscored jobs replaced.

    Scorecards of that host and day that this run no longer produces (a job that fell
    below ``min_sessions`` on a re-run) are deleted, and so are unscored-job rows of jobs
    now scored: both tables always say what the latest run of the day found. ``unscored``
    holds ``job_id``, ``job_name``, ``sessions_found``, ``sessions_needed`` and ``reason``.
    Returns the row counts written.
    """
    unscored = _unscored_rows(unscored, vbr_host, analysis_date)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{SCHEMA}:{vbr_host}",))
            history_rows = _merge(cur, HISTORY, HISTORY_COLUMNS, HISTORY_KEY, in_key_order(history))
            scorecard_rows = _merge(cur, SCORECARDS, SCORECARD_COLUMNS, SCORECARD_KEY, scorecards)
            stale = _delete_other_jobs(cur, SCORECARDS, vbr_host, analysis_date, scorecards["job_id"])
            unscored_rows = _merge(cur, UNSCORED, UNSCORED_COLUMNS, UNSCORED_KEY, unscored)
            _delete_other_jobs(cur, UNSCORED, vbr_host, analysis_date, unscored["job_id"])
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return {
        "history_rows": history_rows,
        "scorecard_rows": scorecard_rows,
        "stale_scorecards_deleted": stale,
        "unscored_jobs": unscored_rows,
    }


def _unscored_rows(unscored: pd.DataFrame | None, vbr_host: str, analysis_date: date) -> pd.DataFrame:
    """The unscored jobs as rows of ``feature3.unscored_jobs`` (host and day added)."""
    if unscored is None or unscored.empty:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in UNSCORED_COLUMNS})
    rows = unscored.assign(vbr_host=vbr_host, analysis_date=analysis_date)
    rows["job_id"] = rows["job_id"].astype(str)
    return rows[list(UNSCORED_COLUMNS)].reset_index(drop=True)


def _delete_other_jobs(cur: Any, table: str, vbr_host: str, analysis_date: date, job_ids: pd.Series) -> int:
    """Delete the host's rows of that day in ``table`` whose job is not in ``job_ids``; how many."""
    cur.execute(
        sql.SQL(
            "DELETE FROM {table} AS t WHERE t.vbr_host = %s AND t.analysis_date = %s "
            "AND NOT (t.job_id = ANY(%s::text[]))"
        ).format(table=sql.Identifier(SCHEMA, table)),
        (vbr_host, analysis_date, [str(job_id) for job_id in job_ids]),
    )
    return int(cur.rowcount)


def in_key_order(history: pd.DataFrame) -> pd.DataFrame:
    """The rows (one host's) in primary-key order: by session_id, byte by byte (``COLLATE "C"``).

    PostgreSQL then fills each primary-key page once, in order, instead of touching a
    random page per row: Veeam's session ids are random GUIDs, and a million random
    key inserts were most of a large load's time.
    """
    if history.empty:
        return history
    session_ids = history["session_id"].to_numpy(dtype=object)
    try:
        keys: np.ndarray = session_ids.astype("S")  # ASCII (every Veeam GUID): sorted in C as bytes
    except UnicodeEncodeError:
        keys = session_ids  # code-point order, which is UTF-8 byte order, in Python
    return history.take(np.argsort(keys, kind="stable")).reset_index(drop=True)


def _merge(cur: Any, table: str, columns: dict[str, str], key: tuple[str, ...], frame: pd.DataFrame) -> int:
    """Upsert ``frame`` into ``feature3.<table>``; returns the rows inserted or updated.

    When none of a sample of the rows' keys is in the table yet (a first load, a
    backfill of a new day), the rows are copied straight into it under a savepoint; if a
    key exists after all, that is undone and the rows take the general path: COPY into
    a temporary table, then ``INSERT ... ON CONFLICT DO UPDATE``.
    """
    if frame.empty:
        return 0
    target = sql.Identifier(SCHEMA, table)
    pg_types = _column_types(cur, table, columns)
    if not _any_key_exists(cur, target, key, frame):
        try:
            with cur.connection.transaction():  # a savepoint
                _copy(cur, target, frame, columns, pg_types)
            return len(frame)
        except UniqueViolation:
            pass
    staged = sql.Identifier(f"staged_{table}")
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {staged} (LIKE {target}) ON COMMIT DROP").format(staged=staged, target=target)
    )
    _copy(cur, staged, frame, columns, pg_types)
    updates = sql.SQL(", ").join(
        sql.SQL("{col} = EXCLUDED.{col}").format(col=sql.Identifier(name)) for name in columns if name not in key
    )
    cur.execute(
        sql.SQL(
            "INSERT INTO {target} ({names}) SELECT {names} FROM {staged} "
            "ON CONFLICT ({key}) DO UPDATE SET {updates}"
        ).format(
            target=target, names=names, staged=staged,
            key=sql.SQL(", ").join(map(sql.Identifier, key)), updates=updates,
        )
    )  # fmt: skip
    return int(cur.rowcount)


def _copy(
    cur: Any, table: sql.Identifier, frame: pd.DataFrame, columns: dict[str, str], pg_types: dict[str, str]
) -> None:
    """Stream ``frame`` into ``table``: binary COPY, or text when a value has no binary form here."""
    try:
        order, chunks = binary_copy(frame, {name: pg_types[name] for name in columns})
        statement = sql.SQL("COPY {table} ({names}) FROM STDIN (FORMAT BINARY)")
    except NotBinaryCopyable:
        order, chunks = list(columns), copy_text_chunks(frame, columns)
        statement = sql.SQL("COPY {table} ({names}) FROM STDIN")
    names = sql.SQL(", ").join(map(sql.Identifier, order))
    # a writer thread sends each chunk while this one encodes the next: the server's work
    # and ours overlap instead of taking turns
    with cur.copy(statement.format(table=table, names=names), writer=QueuedLibpqWriter(cur)) as copy:
        for chunk in chunks:
            copy.write(chunk)


def _column_types(cur: Any, table: str, columns: dict[str, str]) -> dict[str, str]:
    """Each column's PostgreSQL type as the table defines it (the binary format must match it)."""
    cur.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (f"{SCHEMA}.{table}",),
    )
    types = dict(cur.fetchall())
    return {name: types.get(name, "unknown") for name in columns}


def _any_key_exists(
    cur: Any, target: sql.Identifier, key: tuple[str, ...], frame: pd.DataFrame, sample: int = 1000
) -> bool:
    """Whether the table holds one of up to ``sample`` keys spread over ``frame`` (index look-ups only)."""
    rows = frame.iloc[np.unique(np.linspace(0, len(frame) - 1, min(len(frame), sample)).astype(int))]
    conditions, params = [], []
    for name in key:
        values = list(dict.fromkeys(rows[name].tolist()))
        conditions.append(sql.SQL("{col} = ANY(%s)").format(col=sql.Identifier(name)))
        params.append(values)
    cur.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {target} WHERE {conditions})").format(
            target=target, conditions=sql.SQL(" AND ").join(conditions)
        ),
        params,
    )
    return bool(cur.fetchone()[0])


def copy_text_chunks(frame: pd.DataFrame, columns: dict[str, str], rows: int = 100_000) -> Any:
    """Yield ``frame`` in PostgreSQL's COPY text format, ``rows`` at a time.

    Written by hand because pandas' CSV writer cannot tell NULL from an empty string
    (a job may have an empty name); the text format can (``\\N``), and each column
    is converted as a whole, never row by row.
    """
    for start in range(0, len(frame), rows):
        part = frame.iloc[start : start + rows]
        fields = [_copy_field(part[name], kind).tolist() for name, kind in columns.items()]
        yield "\n".join(map("\t".join, zip(*fields, strict=True))) + "\n"  # joined in C, not per row in Python


_ESCAPES = (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_NEEDS_ESCAPE = r"[\\\n\r\t]"


def _copy_field(values: pd.Series, kind: str) -> pd.Series:
    missing = values.isna().to_numpy()
    if kind == "bool":
        text = pd.Series(np.where(values.astype(bool), "t", "f"), index=values.index, dtype=object)
    elif kind == "int":
        text = values.astype("Int64").astype(str)
    elif kind == "float":
        text = values.astype(float).astype(str)
    elif kind == "time":
        instants = pd.to_datetime(values, utc=True).to_numpy("datetime64[us]")
        text = pd.Series(np.datetime_as_string(instants, unit="us", timezone="UTC"), index=values.index)
    elif kind == "date":
        text = values.astype(str)
    elif kind == "json":
        text = values.map(json.dumps, na_action="ignore")
    else:
        text = values.astype(object).astype(str)
    if kind in ("text", "json"):
        special = text.str.contains(_NEEDS_ESCAPE, regex=True, na=False).to_numpy()
        if special.any():  # rare: escape only the values that need it
            escaped = text[special]
            for raw, replacement in _ESCAPES:
                escaped = escaped.str.replace(raw, replacement, regex=False)
            text = text.astype(object)
            text[special] = escaped
    return text.astype(object).where(~missing, "\\N")
