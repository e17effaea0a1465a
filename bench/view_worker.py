"""The Storage efficiency view's measurements, in a fresh interpreter: ``python -m bench.view_worker DOC``.

1. The load cost of the history index ``(hashtextextended(job_id, 0), creation_time)`` that the view's
   job page reads by: the DAG's history rows of DOC written with ``storage.write_run`` into a
   fresh database with the project's schema, and into one with that index dropped, rounds
   alternating; medians compared.
2. An estate of 10,000 jobs (10 VBR servers x 1,000 jobs, 30 days of scorecards, 60 sessions
   per job in the history; made with ``generate_series`` in the database): each view request
   through the plugin's FastAPI app (``TestClient``; the Airflow auth check, a JWT check and
   one metadata-database look-up, is replaced by a pass so only the view's own work counts),
   the first request and the median of 5 more, after one request that pays the process's
   one-time imports (timed apart).
Set AIRFLOW_HOME before running (bench.__main__ does).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import drop_database, emit, new_database
from bench.load_worker import history_rows

HOSTS, JOBS_PER_HOST, DAYS, SESSIONS_PER_JOB = 10, 1_000, 30, 60
INDEX = "feature3.storage_efficiency_history_job_hash_time_idx"

SEED_SCORECARDS = """
INSERT INTO feature3.metrics_storage_efficiency (
    vbr_host, job_id, analysis_date, scope, job_name, window_start, window_end, sessions_in_window,
    sessions_scored, sessions_excluded, excluded_by_reason, anomalous_sessions, critical_anomalies,
    data_scored_bytes, dedup_factor, compression_factor, combined_factor, coefficient_of_variation,
    dedup_score, compression_score, trend_score, consistency_score, anomaly_score, overall_score, grade,
    efficiency_rating, trend_classification, trend_p_value, trend_change, raw_daily_gb, current_daily_gb,
    target_daily_gb, optimization_potential_gb, projected_monthly_savings_gb, annual_savings_usd,
    quality_flags, dag_run_id, context_score, context_grade
)
SELECT host, job_id, day, scope, job_name, day - 30, day + 1, 30, 28, 2, '{"failed": 2}'::jsonb,
       (score < 50)::int, (score < 40)::int, 1e12, dedup, compression, dedup * compression, 0.1,
       score, score, score, score, score, score,
       CASE WHEN score >= 90 THEN 'A' WHEN score >= 80 THEN 'B' WHEN score >= 70 THEN 'C' WHEN score >= 60 THEN 'D' ELSE 'F' END,
       'Good', 'stable', 0.5, 0.0, 100, 60, 40, 20, 600, 5000 * random(),
       jsonb_build_object('CRITICAL_ANOMALIES', score < 40, 'DEGRADING_TREND', score < 55, 'HIGH_VARIANCE', false),
       'scheduled__' || day || 'T00:00:00+00:00', least(100, score + 20),
       CASE WHEN score >= 70 THEN 'A' WHEN score >= 60 THEN 'B' WHEN score >= 50 THEN 'C' WHEN score >= 40 THEN 'D' ELSE 'F' END
FROM (
    SELECT format('vbr%%s.bench.local', lpad(h::text, 2, '0')) AS host,
           CASE WHEN j = 0 THEN '*' ELSE format('%%s-%%s', h, j) END AS job_id,
           d::date AS day, CASE WHEN j = 0 THEN 'host' ELSE 'job' END AS scope,
           CASE WHEN j = 0 THEN 'host' ELSE format('Backup job %%s "%%s"; 東京', j, h) END AS job_name,
           30 + 70 * random() AS score, 1 + 3 * random() AS dedup, 1 + random() AS compression
    FROM generate_series(1, %(hosts)s) AS h, generate_series(0, %(jobs)s) AS j,
         generate_series(DATE '2026-11-26' - %(days)s + 1, DATE '2026-11-26', INTERVAL '1 day') AS d
) AS cards
"""
SEED_HISTORY = """
INSERT INTO feature3.storage_efficiency_history (
    vbr_host, session_id, vbr_version, collected_at, job_id, job_name, job_type, algorithm, result, is_retry,
    creation_time, end_time, data_size_bytes, backup_size_bytes, read_size_bytes, transferred_size_bytes,
    dedup_ratio_raw, compress_ratio_raw, dedup_ratio, compression_ratio, combined_ratio, excluded_reason,
    is_anomaly, anomaly_score, anomaly_reason, analysis_date
)
SELECT host, md5(host || '/' || job_id || '/' || s), '12.3', TIMESTAMPTZ '2026-11-27', job_id, 'Backup job', 'Backup',
       CASE WHEN s %% 7 = 0 THEN 'Full' ELSE 'Increment' END, 'Success', false,
       TIMESTAMPTZ '2026-11-27' - s * INTERVAL '1 day', NULL, 1e10::bigint, 4e9::bigint, 1e10::bigint, 4e9::bigint,
       60, 50, 1.6, 2.0, 3.2, NULL, s %% 29 = 0, 0.5, NULL, DATE '2026-11-26'
FROM (SELECT format('vbr%%s.bench.local', lpad(h::text, 2, '0')) AS host, format('%%s-%%s', h, j) AS job_id, s
      FROM generate_series(1, %(hosts)s) AS h, generate_series(1, %(jobs)s) AS j,
           generate_series(1, %(sessions)s) AS s) AS rows
"""


def index_cost(doc: Path, rounds: int) -> dict[str, Any]:
    """write_run of DOC's history rows with and without the job/time index; seconds per round and medians."""
    import psycopg

    from veeam_efficiency import payload
    from veeam_efficiency.storage import SCORECARD_COLUMNS, ensure_schema, write_run

    history, host, day = history_rows(doc)
    no_scorecards = payload.from_records([], SCORECARD_COLUMNS)
    times: dict[str, list[float]] = {"with_index": [], "without_index": []}
    index_mb = 0.0
    for _ in range(rounds):
        for case in times:
            name, dsn = new_database()
            try:
                with psycopg.connect(dsn) as conn:
                    ensure_schema(conn)
                    if case == "without_index":
                        conn.execute(f"DROP INDEX {INDEX}")
                        conn.commit()
                    start = time.perf_counter()
                    write_run(conn, vbr_host=host, analysis_date=day, history=history, scorecards=no_scorecards)
                    times[case].append(time.perf_counter() - start)
                    if case == "with_index":
                        size = conn.execute(  # a partitioned index: its partitions' sizes
                            "SELECT sum(pg_relation_size(relid))::bigint FROM pg_partition_tree(%s::regclass)", (INDEX,)
                        ).fetchone()[0]
                        index_mb = size / 2**20
            finally:
                drop_database(name)
    medians = {case: statistics.median(values) for case, values in times.items()}
    return {"rows": len(history), "rounds": times, "medians": medians, "index_mb": index_mb,
            "ratio": medians["with_index"] / medians["without_index"]}  # fmt: skip


def estate_timings(repeats: int) -> dict[str, Any]:
    """Seed the 10,000-job estate, then time each view request through the plugin's app."""
    import psycopg

    from veeam_efficiency.storage import ensure_schema

    name, dsn = new_database()
    try:
        sizes = {"hosts": HOSTS, "jobs": JOBS_PER_HOST, "days": DAYS, "sessions": SESSIONS_PER_JOB}
        with psycopg.connect(dsn) as conn:
            ensure_schema(conn)
            start = time.perf_counter()
            conn.execute(SEED_SCORECARDS, sizes)
            conn.execute(  # the months SEED_HISTORY's sessions fall in (write_run would make them)
                "SELECT feature3.ensure_history_partitions(TIMESTAMPTZ '2026-11-27' - %(sessions)s * INTERVAL '1 day', "
                "TIMESTAMPTZ '2026-11-27')",
                sizes,
            )
            conn.commit()
            conn.execute(SEED_HISTORY, sizes)
            conn.commit()
            conn.execute("ANALYZE")
            seed_s = time.perf_counter() - start
            cards, sessions = (
                conn.execute(f"SELECT count(*) FROM feature3.{table}").fetchone()[0]
                for table in ("metrics_storage_efficiency", "storage_efficiency_history")
            )
        os.environ["AIRFLOW_CONN_POSTGRES_DEFAULT"] = dsn
        from starlette.testclient import TestClient

        from veeam_efficiency.airflow.ui.access import dag_reader
        from veeam_efficiency.airflow.ui.app import create_app

        app = create_app()
        app.dependency_overrides[dag_reader] = lambda: None
        client = TestClient(app)
        host, job_id = "vbr01.bench.local", "1-500"
        # the process's first request imports the Postgres provider and reads the connection: once per
        # api-server process, not per page, so it is paid here, apart
        warm_up = time.perf_counter()
        assert client.get(f"/api/sessions?vbr_host={host}&job_id=none").status_code == 200
        warm_up_s = time.perf_counter() - warm_up
        requests = {
            "estate (latest day, all 10 servers)": "/api/estate",
            "estate of an earlier day": "/api/estate?date=2026-11-01",
            "host: first 100 jobs by score": f"/api/jobs?vbr_host={host}&limit=100",
            "host: filtered by name, sorted by $/year": f"/api/jobs?vbr_host={host}&name=job%2050&sort=annual_savings_usd&order=desc",
            "host: CSV of its 1,000 jobs": f"/api/jobs.csv?vbr_host={host}",
            "job: scorecard + 30 daily scores": f"/api/job?vbr_host={host}&job_id={job_id}",
            "job: its sessions": f"/api/sessions?vbr_host={host}&job_id={job_id}",
            "page shell + app.js": "/static/app.js",
        }
        timings = {}
        for label, path in requests.items():
            runs = []
            for _ in range(repeats + 1):
                start = time.perf_counter()
                response = client.get(path)
                runs.append(time.perf_counter() - start)
                assert response.status_code == 200, (path, response.status_code, response.text[:500])
            timings[label] = {
                "first_s": runs[0],
                "median_s": statistics.median(runs[1:]),
                "bytes": len(response.content),
            }
        return {
            "seed_s": seed_s,
            "warm_up_s": warm_up_s,
            "scorecards": cards,
            "sessions": sessions,
            "jobs": HOSTS * JOBS_PER_HOST,
            "requests": timings,
        }
    finally:
        drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("doc", type=Path, help="a generated document: its history rows measure the index's load cost")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    estate = estate_timings(args.repeats)  # the quick part first
    emit({"estate": estate, "index": index_cost(args.doc, args.rounds)})


if __name__ == "__main__":
    main()
