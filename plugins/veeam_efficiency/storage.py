"""Everything the DAG says to PostgreSQL: the schema, and one all-or-nothing write per run.

A run's rows are streamed with ``COPY`` into temporary tables and merged with
``INSERT ... ON CONFLICT`` on the natural keys, in one transaction under an advisory
lock per VBR host: re-running a day, a backfill, or two runs of the same day at once
leave the same rows, never duplicates or half a run. Statements are composed with
``psycopg.sql`` from the column registry (:mod:`veeam_efficiency.tables`; identifiers
quoted by psycopg, values always bound), so the tables and the writer cannot drift apart.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from psycopg.errors import UniqueViolation

from veeam_efficiency.copy_binary import binary_copy
from veeam_efficiency.locks import SCHEMA_LOCK_KEY, load_lock_key
from veeam_efficiency.sessions import byte_order_keys
from veeam_efficiency.tables import (
    COLLECTION_LOG_TABLE,
    HISTORY,
    HISTORY_TABLE,
    JOB_SETTINGS,
    JOB_SETTINGS_TABLE,
    SCHEMA,
    SCORECARD_TABLE,
    SCORECARDS,
    UNSCORED,
    UNSCORED_TABLE,
    WRITTEN,
    Table,
)

__all__ = [
    "HISTORY",
    "HISTORY_COLUMNS",
    "JOB_SETTINGS",
    "JOB_SETTINGS_COLUMNS",
    "SCHEMA",
    "SCHEMA_SQL",
    "SCORECARDS",
    "SCORECARD_COLUMNS",
    "TOO_FEW_SESSIONS",
    "UNSCORED",
    "UNSCORED_COLUMNS",
    "SchemaNotReady",
    "drop_history_before",
    "ensure_schema",
    "in_key_order",
    "write_run",
]  # fmt: skip

SCHEMA_SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "schema.sql"

# column -> kind, for code that still reads the old names (the registry in tables.py is the source)
SCORECARD_COLUMNS: dict[str, str] = dict(SCORECARD_TABLE.kinds)
HISTORY_COLUMNS: dict[str, str] = dict(HISTORY_TABLE.kinds)
UNSCORED_COLUMNS: dict[str, str] = dict(UNSCORED_TABLE.kinds)
JOB_SETTINGS_COLUMNS: dict[str, str] = dict(JOB_SETTINGS_TABLE.kinds)
TOO_FEW_SESSIONS = "too_few_scorable_sessions"
# the history's partitions are made and dropped only through these (SECURITY DEFINER, schema.sql)
PARTITION_FUNCTIONS = (
    f"{SCHEMA}.ensure_history_partitions(timestamptz, timestamptz)",
    f"{SCHEMA}.drop_history_partitions(timestamptz)",
)
# Every run sets up the schema at once (a backfill starts several): one at a time, or their
# concurrent CREATE ... IF NOT EXISTS and migrations collide on the catalog (SCHEMA_LOCK_KEY).


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
    for table in WRITTEN:
        cur.execute(
            "SELECT wanted.name, a.attname IS NOT NULL, a.attname IS NOT NULL "  # a privilege list means "any of"
            "AND has_column_privilege(c.oid, a.attnum, 'SELECT') AND has_column_privilege(c.oid, a.attnum, 'INSERT') "
            "AND has_column_privilege(c.oid, a.attnum, 'UPDATE') "
            "FROM unnest(%s::text[]) AS wanted(name) "
            "LEFT JOIN pg_class AS c ON c.oid = to_regclass(%s) "
            "LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = wanted.name AND NOT a.attisdropped",
            (list(table.names), f"{SCHEMA}.{table.name}"),
        )
        rows = cur.fetchall()
        missing = [name for name, present, _ in rows if not present]
        denied = [name for name, present, writable in rows if present and not writable]
        where = f"{SCHEMA}.{table.name}"
        if len(missing) == len(rows):
            problems.append(f"table {where} is missing")
        elif missing:
            problems.append(f"{where} lacks column(s) {', '.join(missing)}")
        if len(denied) == len(rows):
            problems.append(f"no SELECT, INSERT and UPDATE on {where}")
        elif denied:
            problems.append(f"no SELECT, INSERT and UPDATE on {where} column(s) {', '.join(denied)}")
    for signature in PARTITION_FUNCTIONS:
        cur.execute(
            "SELECT p IS NOT NULL AND has_function_privilege(p, 'EXECUTE') FROM to_regprocedure(%s) AS p", (signature,)
        )
        if not cur.fetchone()[0]:
            problems.append(f"no EXECUTE on {signature}")
    for name in (SCORECARDS, UNSCORED, JOB_SETTINGS):  # stale rows of a re-run day are deleted
        cur.execute("SELECT has_table_privilege(to_regclass(%s), 'DELETE')", (f"{SCHEMA}.{name}",))
        if cur.fetchone()[0] is False:
            problems.append(f"no DELETE on {SCHEMA}.{name}")
    return problems


def write_run(
    conn: Any,
    *,
    vbr_host: str,
    analysis_date: date,
    history: pd.DataFrame,
    scorecards: pd.DataFrame,
    unscored: pd.DataFrame | None = None,
    job_settings: pd.DataFrame | None = None,
    collection_log: pd.DataFrame | None = None,
) -> dict[str, int]:
    """Write one host's day in a single transaction: history upserted; scorecards, unscored jobs and job settings replaced.

    Scorecards of that host and day that this run no longer produces (a job that fell
    below ``min_sessions`` on a re-run) are deleted, and so are unscored-job rows of jobs
    now scored and job settings of jobs the server no longer listed: the tables always say
    what the latest run of the day found. ``unscored`` holds ``job_id``, ``job_name``,
    ``sessions_found``, ``sessions_needed`` and ``reason``. ``job_settings`` holds the
    ``job_settings`` columns but the host and day; it is ``None`` for a version 1 document:
    that run knows no settings and leaves the table alone. ``collection_log`` rows say what
    the history now holds for good: in this transaction, so never before the history does.
    Returns the row counts written.
    """
    unscored = _unscored_rows(unscored, vbr_host, analysis_date)
    if not history.empty:  # committed apart: a new month's partition locks the table only for a moment
        created = history["creation_time"]
        _call(conn, "ensure_history_partitions", created.min().to_pydatetime(), created.max().to_pydatetime())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (load_lock_key(vbr_host),))
            history_rows = _merge(cur, HISTORY_TABLE, in_key_order(history))
            scorecard_rows = _merge(cur, SCORECARD_TABLE, scorecards)
            stale = _delete_other_jobs(cur, SCORECARDS, vbr_host, analysis_date, scorecards["job_id"])
            unscored_rows = _merge(cur, UNSCORED_TABLE, unscored)
            _delete_other_jobs(cur, UNSCORED, vbr_host, analysis_date, unscored["job_id"])
            counts = {
                "history_rows": history_rows,
                "scorecard_rows": scorecard_rows,
                "stale_scorecards_deleted": stale,
                "unscored_jobs": unscored_rows,
            }
            if job_settings is not None:
                rows = job_settings.assign(vbr_host=vbr_host, analysis_date=analysis_date)
                counts["job_settings_rows"] = _merge(cur, JOB_SETTINGS_TABLE, rows[list(JOB_SETTINGS_TABLE.names)])
                _delete_other_jobs(cur, JOB_SETTINGS, vbr_host, analysis_date, rows["job_id"])
            if collection_log is not None and not collection_log.empty:
                counts["collection_log_rows"] = _merge(
                    cur, COLLECTION_LOG_TABLE, collection_log[list(COLLECTION_LOG_TABLE.names)]
                )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return counts


def drop_history_before(conn: Any, horizon: datetime) -> int:
    """Drop the history's months that ended by ``horizon`` (whole partitions), and the collection
    log's intervals that did; returns the partitions dropped."""
    return int(_call(conn, "drop_history_partitions", horizon))


def _call(conn: Any, function: str, *args: Any) -> Any:
    """``SELECT feature3.<function>(args)`` in its own transaction (the schema's functions that make
    and drop partitions for a role that owns no table); its result."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT {}({})").format(
                sql.Identifier(SCHEMA, function), sql.SQL(", ").join(sql.Placeholder() * len(args))
            ),
            args,
        )
        result = cur.fetchone()[0]
    conn.commit()
    return result


def _unscored_rows(unscored: pd.DataFrame | None, vbr_host: str, analysis_date: date) -> pd.DataFrame:
    """The unscored jobs as rows of ``feature3.unscored_jobs`` (host and day added)."""
    if unscored is None or unscored.empty:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in UNSCORED_TABLE.names})
    rows = unscored.assign(vbr_host=vbr_host, analysis_date=analysis_date)
    rows["job_id"] = rows["job_id"].astype(str)
    return rows[list(UNSCORED_TABLE.names)].reset_index(drop=True)


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
    keys = byte_order_keys(history["session_id"].to_numpy(dtype=object))
    return history.take(np.argsort(keys, kind="stable")).reset_index(drop=True)


def _merge(cur: Any, table: Table, frame: pd.DataFrame) -> int:
    """Upsert ``frame`` into ``feature3.<table>``; returns the rows inserted or changed.

    A row whose content (all but the key and ``table.provenance``; of ``table.drifting`` only
    whether it is null) is already stored is left alone, so it keeps the provenance of the run
    that last changed it.

    When none of a sample of the rows' keys is in the table yet (a first load, a
    backfill of a new day), the rows are copied straight into it under a savepoint; if a
    key exists after all, that is undone and the rows take the general path: COPY into
    a temporary table, then ``INSERT ... ON CONFLICT DO UPDATE``.
    """
    if frame.empty:
        return 0
    assert table.name is not None
    target = sql.Identifier(SCHEMA, table.name)
    if not _any_key_exists(cur, target, table.key, frame):
        try:
            with cur.connection.transaction():  # a savepoint
                _copy(cur, target, frame, table)
            return len(frame)
        except UniqueViolation:
            pass
    staged = sql.Identifier(f"staged_{table.name}")
    names = sql.SQL(", ").join(map(sql.Identifier, table.names))
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {staged} (LIKE {target}) ON COMMIT DROP").format(staged=staged, target=target)
    )
    _copy(cur, staged, frame, table)
    values = [name for name in table.names if name not in table.key]
    updates = sql.SQL(", ").join(sql.SQL("{col} = EXCLUDED.{col}").format(col=sql.Identifier(name)) for name in values)
    content = [name for name in values if name not in table.provenance]
    current = [
        sql.SQL("t.{} IS NULL" if name in table.drifting else "t.{}").format(sql.Identifier(name)) for name in content
    ]
    incoming = [
        sql.SQL("EXCLUDED.{} IS NULL" if name in table.drifting else "EXCLUDED.{}").format(sql.Identifier(name))
        for name in content
    ]
    # a row whose content is unchanged is not rewritten: no dead tuple, no WAL, and a re-run
    # of an unchanged day writes nothing
    cur.execute(
        sql.SQL(
            "INSERT INTO {target} AS t ({names}) SELECT {names} FROM {staged} "
            "ON CONFLICT ({key}) DO UPDATE SET {updates} "
            "WHERE ({current}) IS DISTINCT FROM ({incoming})"
        ).format(
            target=target, names=names, staged=staged,
            key=sql.SQL(", ").join(map(sql.Identifier, table.key)), updates=updates,
            current=sql.SQL(", ").join(current),
            incoming=sql.SQL(", ").join(incoming),
        )
    )  # fmt: skip
    return int(cur.rowcount)


def _copy(cur: Any, target: sql.Identifier, frame: pd.DataFrame, table: Table) -> None:
    """Stream ``frame`` into ``target`` with binary COPY, in the registry's PostgreSQL types."""
    order, chunks = binary_copy(frame, table.pg_types)
    statement = sql.SQL("COPY {table} ({names}) FROM STDIN (FORMAT BINARY)").format(
        table=target, names=sql.SQL(", ").join(map(sql.Identifier, order))
    )
    # a writer thread sends each chunk while this one encodes the next: the server's work
    # and ours overlap instead of taking turns
    with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
        for chunk in chunks:
            copy.write(chunk)


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
