"""Read back the job scorecards of given (VBR host, analysis day) pairs, for alerts and downstream DAGs.

Only the pairs a run actually loaded are read, so a summary never repeats a host that
an earlier run of the same day already reported, and a consumer triggered by an asset
event reads exactly the host and day that event announced.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg import sql

from veeam_efficiency.tables import FLAGS_ALERTED, SCHEMA, SCORECARDS

COLUMNS = (
    "vbr_host", "job_id", "job_name", "analysis_date", "grade", "overall_score", "trend_classification",
    "trend_change", "annual_savings_usd", "optimization_potential_gb", "quality_flags",
    "context_grade", "context_score", "attainable_annual_savings_usd", "recommendations",
    "change_point_at", "change_point_shift",
)  # fmt: skip


def job_scorecards(conn: Any, loaded: Iterable[tuple[str, str]], *, flagged_only: bool = False) -> list[dict[str, Any]]:
    """Job scorecards (not the host roll-ups) of the ``(vbr_host, analysis_date)`` pairs.

    ``flagged_only``: just those with a flag of ``tables.FLAGS_ALERTED`` (CRITICAL_ANOMALIES,
    DEGRADING_TREND, MISCONFIGURED, LEVEL_SHIFT). ``change_point_at`` comes back as ISO text.
    """
    pairs = sorted(set(loaded))
    if not pairs:
        return []
    query = sql.SQL(
        "SELECT {columns} FROM {table} AS m "
        "JOIN unnest(%s::text[], %s::date[]) AS r(vbr_host, analysis_date) USING (vbr_host, analysis_date) "
        "WHERE m.scope = 'job' {flagged} ORDER BY m.annual_savings_usd DESC, m.vbr_host, m.job_id"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("m", name) for name in COLUMNS),
        table=sql.Identifier(SCHEMA, SCORECARDS),
        flagged=sql.SQL(
            "AND EXISTS (SELECT 1 FROM unnest(%s::text[]) AS f(flag) "
            "WHERE m.quality_flags @> jsonb_build_object(f.flag, true))"
            if flagged_only
            else ""
        ),
    )
    params: list[Any] = [[host for host, _ in pairs], [day for _, day in pairs]]
    if flagged_only:
        params.append(list(FLAGS_ALERTED))
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    at = COLUMNS.index("change_point_at")
    return [
        dict(zip(COLUMNS, row, strict=True))
        | {"analysis_date": str(row[3]), "change_point_at": None if row[at] is None else row[at].isoformat()}
        for row in rows
    ]
