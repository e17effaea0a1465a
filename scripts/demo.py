"""Run the DAG once on the bundled sample data and print the scorecards it wrote.

Uses the PostgreSQL of the Airflow connection ``postgres_default`` (env
``AIRFLOW_CONN_POSTGRES_DEFAULT``); when none is set or it does not answer, starts an
embedded PostgreSQL (the ``pgserver`` wheel) in ``.demo/pg``. Airflow's own metadata
goes to a SQLite file in ``.demo/airflow``. Nothing outside ``.demo/`` is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / ".demo"
RUN_DATE = "2026-11-27"  # the bundled sample ends here: the window is 2026-10-28 .. 2026-11-27


def results_dsn() -> str:
    import psycopg

    dsn = os.environ.get("AIRFLOW_CONN_POSTGRES_DEFAULT", "")
    if dsn:
        try:
            psycopg.connect(dsn.replace("postgres://", "postgresql://"), connect_timeout=3).close()
            print(f"results database: {dsn.split('@')[-1]} (AIRFLOW_CONN_POSTGRES_DEFAULT)")
            return dsn
        except psycopg.Error as exc:
            print(f"AIRFLOW_CONN_POSTGRES_DEFAULT does not answer ({exc}); starting an embedded PostgreSQL")
    import pgserver

    server = pgserver.get_server(DEMO / "pg", cleanup_mode=None)
    uri = server.get_uri()
    print(f"results database: embedded PostgreSQL in {DEMO / 'pg'}")
    return uri


def main() -> int:
    DEMO.mkdir(exist_ok=True)
    dsn = results_dsn()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(DEMO / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{DEMO / 'airflow' / 'airflow.db'}",
        "AIRFLOW_CONN_POSTGRES_DEFAULT": dsn,
        "VEEAM_RUN_DEADLINE_MINUTES": "0",  # `airflow dags test` of Airflow 3.3.2 fails on a DAG with a deadline
    }
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    print(f"running veeam_storage_efficiency for {RUN_DATE} on include/sample_data ...")
    run = subprocess.run(
        [*airflow, "dags", "test", "veeam_storage_efficiency", RUN_DATE], env=env, capture_output=True, text=True
    )
    (DEMO / "dag_test.log").write_text(run.stdout + run.stderr)
    if run.returncode != 0 or "state=success" not in run.stdout + run.stderr:
        print(f"the DAG run failed; log: {DEMO / 'dag_test.log'}")
        return 1
    import psycopg

    with psycopg.connect(dsn.replace("postgres://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT vbr_host, left(job_name, 28), analysis_date, sessions_scored, round(overall_score::numeric, 1), grade, "
            "efficiency_rating, round(dedup_factor::numeric, 2), round(compression_factor::numeric, 2), "
            "trend_classification, round(annual_savings_usd::numeric, 0), context_grade, "
            "round(attainable_annual_savings_usd::numeric, 0), "
            "(SELECT string_agg(key, ',') FROM jsonb_each(quality_flags) WHERE value = 'true') "
            "FROM feature3.metrics_storage_efficiency WHERE analysis_date = %s::date - 1 "
            "ORDER BY vbr_host, scope DESC, overall_score",
            (RUN_DATE,),
        ).fetchall()
    header = (
        "host", "job", "date", "sessions", "overall", "grade", "rating", "dedup", "compr", "trend", "usd/yr",
        "in context", "attainable usd/yr", "flags",
    )  # fmt: skip
    table = [header, *[tuple("" if v is None else str(v) for v in row) for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print_top_recommendations(dsn)
    print(f"\n{len(rows)} scorecards written to feature3.metrics_storage_efficiency; DAG log: {DEMO / 'dag_test.log'}")
    return 0


def print_top_recommendations(dsn: str) -> None:
    """Each job's first recommendation: what to change first, and what it is worth."""
    import psycopg

    with psycopg.connect(dsn.replace("postgres://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT vbr_host, job_name, recommendations->0 FROM feature3.metrics_storage_efficiency "
            "WHERE analysis_date = %s::date - 1 AND scope = 'job' AND jsonb_array_length(recommendations) > 0 "
            "ORDER BY vbr_host, job_name",
            (RUN_DATE,),
        ).fetchall()
    print("\nTop recommendation per job (settings not collected in this sample: contract v1):")
    for host, job, top in rows:
        money = top["est_annual_savings_usd"]
        worth = f"${money:,.0f}/year" if money is not None else "no storage figure"
        print(f"  {host}  {job}: [{top['severity']}] {top['title']} ({worth})")
        print(f"      {top['detail']}")
    if not rows:
        print("  none")


if __name__ == "__main__":
    sys.exit(main())
