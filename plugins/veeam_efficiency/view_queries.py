"""The read-only queries behind the "Storage efficiency" view (no Airflow import).

Every statement is fixed text or composed with ``psycopg.sql`` from the names below;
request values are only ever bound parameters. Columns other features add to the
scorecards later (context grade, attainable savings, recommendations, change point)
are selected only when the table has them, so the view works on every schema version.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from psycopg import sql
from psycopg.rows import dict_row

from veeam_efficiency.tables import HISTORY, SCHEMA, SCORECARDS

UNSCORED = "unscored_jobs"
MAX_PAGE = 500
GRADES = ("A", "B", "C", "D", "F")
FLAGGED = "jsonb_path_exists(quality_flags, '$.* ? (@ == true)')"
# A flag is on when its key maps to true; the query binds the flag's name.
FLAG_ON = "coalesce((quality_flags ->> %s)::boolean, false)"

# What the host table shows; the optional ones only when the column exists.
JOB_COLUMNS = (
    "job_id", "job_name", "grade", "overall_score", "dedup_factor", "compression_factor", "combined_factor",
    "trend_classification", "quality_flags", "annual_savings_usd", "optimization_potential_gb",
    "sessions_scored", "sessions_in_window", "dag_run_id",
)  # fmt: skip
OPTIONAL_JOB_COLUMNS = ("context_grade", "context_score", "attainable_annual_savings_usd", "attainable_potential_gb")
SortKey = Literal[
    "job_name", "grade", "overall_score", "dedup_factor", "compression_factor", "combined_factor",
    "annual_savings_usd", "trend_classification", "context_grade",
]  # fmt: skip
CARD_OPTIONAL = (*OPTIONAL_JOB_COLUMNS, "recommendations", "change_point_at", "change_point_shift")
SESSION_COLUMNS = (
    "session_id", "creation_time", "end_time", "algorithm", "result", "is_retry",
    "dedup_ratio", "compression_ratio", "combined_ratio", "data_size_bytes", "backup_size_bytes",
    "excluded_reason", "is_anomaly", "anomaly_score", "anomaly_reason", "job_name",
)  # fmt: skip


@dataclass(frozen=True)
class JobFilter:
    """Which of a host's jobs the table lists, in which order (every field a bound value or a whitelisted name)."""

    vbr_host: str
    analysis_date: date
    name_contains: str | None = None
    grade: str | None = None
    flag: str | None = None
    sort: SortKey = "overall_score"
    descending: bool = False


def _table(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


def _names(columns: tuple[str, ...] | list[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def scorecard_columns(cur: Any) -> set[str]:
    """The scorecard table's columns as the database has them (empty when the table is missing)."""
    cur.execute(
        "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped",
        (f"{SCHEMA}.{SCORECARDS}",),
    )
    return {row["attname"] if isinstance(row, dict) else row[0] for row in cur.fetchall()}


def _present(cur: Any, optional: tuple[str, ...]) -> list[str]:
    have = scorecard_columns(cur)
    return [name for name in optional if name in have]


def analysis_dates(cur: Any, limit: int = 400) -> list[date]:
    """The days that have scorecards, newest first (the date picker's choices)."""
    cur.execute(
        sql.SQL(
            "WITH RECURSIVE days(d) AS ("  # a loose index scan: one index probe per day, not a scan of every row
            " SELECT max(analysis_date) FROM {t}"
            " UNION ALL SELECT (SELECT max(analysis_date) FROM {t} WHERE analysis_date < days.d)"
            " FROM days WHERE days.d IS NOT NULL) "
            "SELECT d FROM days WHERE d IS NOT NULL LIMIT %s"
        ).format(t=_table(SCORECARDS)),
        (limit,),
    )
    return [_first(row) for row in cur.fetchall()]


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def estate(cur: Any, analysis_date: date | None, preview: int = 50) -> dict[str, Any]:
    """Every VBR host of one day (the latest by default): roll-up grades, grades, flagged and unscored jobs, savings."""
    if not scorecard_columns(cur):
        return {"analysis_date": None, "dates": [], "hosts": [], "grade_distribution": {}, "totals": {}}
    dates = analysis_dates(cur)
    day = analysis_date or (dates[0] if dates else None)
    optional = _present(cur, OPTIONAL_JOB_COLUMNS)
    host_columns = [
        "vbr_host",
        "grade",
        "overall_score",
        "annual_savings_usd",
        "optimization_potential_gb",
        "dag_run_id",
    ]
    host_columns += [name for name in optional if name in ("context_grade", "context_score")]
    cur.execute(
        sql.SQL("SELECT {cols} FROM {t} WHERE analysis_date = %s AND scope = 'host' ORDER BY vbr_host").format(
            cols=_names(host_columns), t=_table(SCORECARDS)
        ),
        (day,),
    )
    hosts = {row["vbr_host"]: {**row, "jobs": 0, "flagged_jobs": 0, "grades": {}} for row in cur.fetchall()}
    attainable = "attainable_annual_savings_usd" in optional
    cur.execute(
        sql.SQL(
            "SELECT vbr_host, grade, count(*) AS jobs, count(*) FILTER (WHERE {flagged}) AS flagged, "
            "sum(annual_savings_usd) AS savings, {attainable} AS attainable "
            "FROM {t} WHERE analysis_date = %s AND scope = 'job' GROUP BY vbr_host, grade"
        ).format(
            flagged=sql.SQL(FLAGGED),
            attainable=sql.SQL("sum(attainable_annual_savings_usd)" if attainable else "NULL::float8"),
            t=_table(SCORECARDS),
        ),
        (day,),
    )
    distribution = dict.fromkeys(GRADES, 0)
    totals: dict[str, Any] = {"jobs_scored": 0, "jobs_flagged": 0, "annual_savings_usd": 0.0}
    totals["attainable_annual_savings_usd"] = 0.0 if attainable else None
    for row in cur.fetchall():
        host = hosts.setdefault(
            row["vbr_host"], {"vbr_host": row["vbr_host"], "jobs": 0, "flagged_jobs": 0, "grades": {}}
        )
        host["jobs"] += row["jobs"]
        host["flagged_jobs"] += row["flagged"]
        host["grades"][row["grade"]] = row["jobs"]
        distribution[row["grade"]] = distribution.get(row["grade"], 0) + row["jobs"]
        totals["jobs_scored"] += row["jobs"]
        totals["jobs_flagged"] += row["flagged"]
        totals["annual_savings_usd"] += row["savings"] or 0.0
        if attainable:
            totals["attainable_annual_savings_usd"] += row["attainable"] or 0.0
    unscored = unscored_jobs(cur, None, day, limit=preview, offset=0)
    for host_name, count in unscored.pop("per_host").items():
        hosts.setdefault(host_name, {"vbr_host": host_name, "jobs": 0, "flagged_jobs": 0, "grades": {}})
        hosts[host_name]["unscored_jobs"] = count
    totals["jobs_unscored"] = unscored["total"]
    return {
        "analysis_date": day,
        "dates": dates,
        "hosts": sorted(hosts.values(), key=lambda host: host["vbr_host"]),
        "grade_distribution": distribution,
        "totals": totals,
        "flagged_jobs": flagged_jobs(cur, None, day, limit=preview, offset=0),
        "unscored_jobs": unscored,
        "has_context_grade": "context_grade" in optional,
    }


def flagged_jobs(
    cur: Any, vbr_host: str | None, analysis_date: date | None, *, limit: int, offset: int
) -> dict[str, Any]:
    """Jobs with at least one quality flag on that day, worst score first; one page and the total."""
    cur.execute(
        sql.SQL(
            "SELECT vbr_host, job_id, job_name, grade, overall_score, quality_flags, count(*) OVER () AS total "
            "FROM {t} WHERE analysis_date = %s AND scope = 'job' AND {flagged} "
            "AND (%s::text IS NULL OR vbr_host = %s) "
            "ORDER BY overall_score, vbr_host, job_id LIMIT %s OFFSET %s"
        ).format(t=_table(SCORECARDS), flagged=sql.SQL(FLAGGED)),
        (analysis_date, vbr_host, vbr_host, _page(limit), offset),
    )
    rows = cur.fetchall()
    total = rows[0]["total"] if rows else _count_flagged(cur, vbr_host, analysis_date) if offset else 0
    for row in rows:
        row.pop("total")
    return {"total": total, "rows": rows}


def _count_flagged(cur: Any, vbr_host: str | None, analysis_date: date | None) -> int:
    cur.execute(
        sql.SQL(
            "SELECT count(*) FROM {t} WHERE analysis_date = %s AND scope = 'job' AND {flagged} "
            "AND (%s::text IS NULL OR vbr_host = %s)"
        ).format(t=_table(SCORECARDS), flagged=sql.SQL(FLAGGED)),
        (analysis_date, vbr_host, vbr_host),
    )
    return int(_first(cur.fetchone()))


def unscored_jobs(
    cur: Any, vbr_host: str | None, analysis_date: date | None, *, limit: int, offset: int
) -> dict[str, Any]:
    """Jobs of that day without a scorecard and why (``feature3.unscored_jobs``, when the table exists)."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (f"{SCHEMA}.{UNSCORED}",))
    if not _first(cur.fetchone()):
        return {"available": False, "total": 0, "rows": [], "per_host": {}}
    cur.execute(
        sql.SQL(
            "SELECT vbr_host, count(*) AS jobs FROM {t} WHERE analysis_date = %s "
            "AND (%s::text IS NULL OR vbr_host = %s) GROUP BY vbr_host"
        ).format(t=_table(UNSCORED)),
        (analysis_date, vbr_host, vbr_host),
    )
    per_host = {row["vbr_host"]: row["jobs"] for row in cur.fetchall()}
    cur.execute(
        sql.SQL(
            "SELECT vbr_host, job_id, job_name, sessions_found, sessions_needed, reason FROM {t} "
            "WHERE analysis_date = %s AND (%s::text IS NULL OR vbr_host = %s) "
            "ORDER BY vbr_host, job_name, job_id LIMIT %s OFFSET %s"
        ).format(t=_table(UNSCORED)),
        (analysis_date, vbr_host, vbr_host, _page(limit), offset),
    )
    return {"available": True, "total": sum(per_host.values()), "rows": cur.fetchall(), "per_host": per_host}


def _page(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE))


def _job_query(cur: Any, where: JobFilter, *, paged: bool) -> tuple[sql.Composed, list[Any], list[str]]:
    optional = _present(cur, OPTIONAL_JOB_COLUMNS)
    columns = [*JOB_COLUMNS, *optional]
    has_recommendations = "recommendations" in scorecard_columns(cur)
    top = sql.SQL(
        ", recommendations -> 0 ->> 'title' AS top_recommendation"
        if has_recommendations
        else ", NULL AS top_recommendation"
    )
    sort = where.sort if where.sort in columns else "overall_score"
    order = sql.SQL("DESC NULLS LAST" if where.descending else "ASC NULLS LAST")
    statement = sql.SQL(
        "SELECT {cols}{top}{total} FROM {t} WHERE vbr_host = %s AND analysis_date = %s AND scope = 'job' "
        "AND (%s::text IS NULL OR strpos(lower(job_name), lower(%s)) > 0) "
        "AND (%s::text IS NULL OR grade = %s) "
        "AND (%s::text IS NULL OR {flag_on}) "
        "ORDER BY {sort} {order}, job_name, job_id"
    ).format(
        cols=_names(columns), top=top, total=sql.SQL(", count(*) OVER () AS total" if paged else ""),
        t=_table(SCORECARDS), flag_on=sql.SQL(FLAG_ON), sort=sql.Identifier(sort), order=order,
    )  # fmt: skip
    params = [where.vbr_host, where.analysis_date, where.name_contains, where.name_contains]
    params += [where.grade, where.grade, where.flag, where.flag]
    return statement, params, [*columns, "top_recommendation"]


def host_jobs(cur: Any, where: JobFilter, *, limit: int, offset: int) -> dict[str, Any]:
    """One page of a host's jobs of one day, filtered and sorted, with the number that match."""
    statement, params, columns = _job_query(cur, where, paged=True)
    cur.execute(statement + sql.SQL(" LIMIT %s OFFSET %s"), [*params, _page(limit), max(0, offset)])
    rows = cur.fetchall()
    total = rows[0]["total"] if rows else 0
    for row in rows:
        row.pop("total")
    return {"total": total, "columns": columns, "rows": rows}


def host_jobs_all(cur: Any, where: JobFilter, batch: int = 2000) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """Every matching job (the CSV download), fetched ``batch`` rows at a time from a server-side cursor."""
    statement, params, columns = _job_query(cur, where, paged=False)

    def rows() -> Iterator[tuple[Any, ...]]:
        with cur.connection.cursor(name="veeam_view_csv") as named:
            named.execute(statement, params)
            while chunk := named.fetchmany(batch):
                yield from chunk

    return columns, rows()


def job(cur: Any, vbr_host: str, job_id: str, analysis_date: date | None, days: int = 400) -> dict[str, Any] | None:
    """A job's scorecard of one day (its latest by default) and its daily scores over time."""
    optional = _present(cur, CARD_OPTIONAL)
    card_columns = [
        "analysis_date", "job_name", "window_start", "window_end", "grade", "overall_score", "efficiency_rating",
        "dedup_factor", "compression_factor", "combined_factor", "dedup_score", "compression_score",
        "trend_score", "consistency_score", "anomaly_score", "trend_classification", "trend_change",
        "sessions_in_window", "sessions_scored", "sessions_excluded", "excluded_by_reason",
        "anomalous_sessions", "critical_anomalies", "optimization_potential_gb", "projected_monthly_savings_gb",
        "annual_savings_usd", "quality_flags", "dag_run_id", *optional,
    ]  # fmt: skip
    cur.execute(
        sql.SQL(
            "SELECT {cols} FROM {t} WHERE vbr_host = %s AND job_id = %s AND scope = 'job' "
            "AND (%s::date IS NULL OR analysis_date <= %s) ORDER BY analysis_date DESC LIMIT 1"
        ).format(cols=_names(card_columns), t=_table(SCORECARDS)),
        (vbr_host, job_id, analysis_date, analysis_date),
    )
    card = cur.fetchone()
    if card is None:
        return None
    series_columns = ["analysis_date", "overall_score", "grade", "dedup_factor", "compression_factor",
                      "combined_factor", "dag_run_id"]  # fmt: skip
    series_columns += [name for name in ("context_score", "context_grade") if name in optional]
    cur.execute(
        sql.SQL(
            "SELECT {cols} FROM {t} WHERE vbr_host = %s AND job_id = %s AND scope = 'job' "
            "ORDER BY analysis_date DESC LIMIT %s"
        ).format(cols=_names(series_columns), t=_table(SCORECARDS)),
        (vbr_host, job_id, days),
    )
    scores = list(reversed(cur.fetchall()))
    return {"vbr_host": vbr_host, "job_id": job_id, "scorecard": card, "daily_scores": scores}


def job_sessions(
    cur: Any, vbr_host: str, job_id: str, *, before: datetime | None, limit: int = MAX_PAGE
) -> dict[str, Any]:
    """A job's sessions newest first, ``limit`` at a time before ``before``.

    Read through the (hash of job_id, creation_time) index (schema.sql says why a hash); the
    rows of another job with the same hash, or of the same job_id on another host, are
    filtered out by the exact conditions.
    """
    cur.execute(
        sql.SQL(
            "SELECT {cols} FROM {t} WHERE hashtextextended(job_id, 0) = hashtextextended(%s, 0) "
            "AND vbr_host = %s AND job_id = %s "
            "AND (%s::timestamptz IS NULL OR creation_time < %s) ORDER BY creation_time DESC LIMIT %s"
        ).format(cols=_names(SESSION_COLUMNS), t=_table(HISTORY)),
        (job_id, vbr_host, job_id, before, before, _page(limit) + 1),
    )
    rows = cur.fetchall()
    more = len(rows) > _page(limit)
    rows = rows[: _page(limit)]
    return {"rows": rows, "older": rows[-1]["creation_time"] if more and rows else None}


def read_only_cursor(conn: Any) -> Any:
    """A dict-row cursor in a read-only transaction: the view can never write, whatever it is asked."""
    conn.read_only = True
    return conn.cursor(row_factory=dict_row)
