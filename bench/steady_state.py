"""The steady state: the daily run of a large server after the previous day is loaded, incremental vs full.

One seeded document holds the server's sessions over the 31 days before WINDOW_END. Day D
(window ending WINDOW_END - 1 day) is loaded once by ``dag.test`` into a results database,
which is then copied (``CREATE DATABASE ... TEMPLATE``), so both runs of day D+1 start from the
same state: one with ``collection_mode`` ``incremental`` (the default), one ``full`` (what
every daily run did before). Each run is a fresh ``dag.test`` interpreter (bench.e2e_worker),
with XComs in object storage as the README sets up large servers.
The replay file answers as the script would: the asked window's sessions, recorded an hour
after the run's day ended. Measured: wall time and tasks, sessions the server was asked for
(``feature3.collection_log``), and history rows written (new or changed: a row left alone
keeps the provenance of the run that wrote it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import msgspec

from bench.common import (
    PLUGINS,
    REPO,
    SEED,
    SERVER_DSN,
    WINDOW_END,
    dag_test_env,
    drop_database,
    new_database,
    run_worker,
)

DAY = timedelta(days=1)
LOOKBACK_DAYS = 30
FIRST_DAY = WINDOW_END - DAY  # day D's run: its data interval ends here
HOST = "vbr-steady.example.local"


def _generate(path: Path, sessions: int, jobs: int) -> None:
    """``sessions`` in the 30-day window of D+1 (31 days generated), in a fresh interpreter."""
    subprocess.run(
        [
            sys.executable, "-m", "tools.synthetic", "--host", HOST, "--jobs", str(jobs),
            "--sessions", str(sessions * 31 // 30), "--seed", str(SEED),
            "--start", (WINDOW_END - 31 * DAY).isoformat(), "--end", WINDOW_END.isoformat(), "--out", str(path),
        ],
        check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(PLUGINS)}, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _recorded_at(source: Path, target: Path, day_end: Any) -> None:
    """``source`` as the server answered an hour after ``day_end`` (its ``collected_at``)."""
    document = msgspec.json.decode(source.read_bytes(), type=dict[str, msgspec.Raw])
    stamp = (day_end + timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    document["collected_at"] = msgspec.Raw(msgspec.json.encode(stamp))
    target.write_bytes(msgspec.json.encode(document))


def _airflow_env(home: str, meta_dsn: str, results_dsn: str, replay: Path) -> dict[str, str]:
    """A deployment for large servers: XComs in object storage (a 1M-session document is more than
    PostgreSQL's 255 MB ``jsonb`` limit of the default XCom table)."""
    from bench.xcom_payload import xcom_env

    return {**xcom_env(Path(home)), **dag_test_env(home, meta_dsn, results_dsn, replay)}


def _run(env: dict[str, str], day_end: Any, conf: dict[str, Any]) -> dict[str, Any]:
    worker_env = {
        **env,
        "BENCH_LOGICAL_DATE": day_end.isoformat(),
        "BENCH_RUN_CONF": msgspec.json.encode({"lookback_days": LOOKBACK_DAYS, **conf}).decode(),
    }
    result = run_worker("e2e_worker", [], env=worker_env, timeout=3600)
    if result["run_state"] != "success":
        raise RuntimeError(f"the run of {day_end.date()} {conf} ended {result['run_state']}: {result['tasks']}")
    return dict(result)


def _written(results_dsn: str, day_end: Any) -> dict[str, Any]:
    """What the run of the day ending ``day_end`` asked for and wrote."""
    import psycopg

    analysis_date = (day_end - timedelta(microseconds=1)).date()
    with psycopg.connect(results_dsn) as conn:
        asked = conn.execute(
            "SELECT interval_start, interval_end, sessions_returned FROM feature3.collection_log "
            "WHERE interval_end > %s ORDER BY interval_start",
            (day_end - LOOKBACK_DAYS * DAY,),
        ).fetchall()
        latest = [row for row in asked if row[1] == day_end]
        history_written, window = conn.execute(
            "SELECT count(*) FILTER (WHERE analysis_date = %s), count(*) FROM feature3.storage_efficiency_history "
            "WHERE creation_time >= %s AND creation_time < %s",
            (analysis_date, day_end - LOOKBACK_DAYS * DAY, day_end),
        ).fetchone()
        cards = conn.execute(
            "SELECT count(*) FROM feature3.metrics_storage_efficiency WHERE analysis_date = %s", (analysis_date,)
        ).fetchone()[0]
    return {
        "asked": [[start.isoformat(), end.isoformat(), returned] for start, end, returned in latest],
        "asked_days": sum(((end - start) for start, end, _ in latest), timedelta()) / DAY,
        "sessions_asked": sum(returned for _, _, returned in latest),
        "history_rows_written": history_written,
        "sessions_in_window": window,
        "scorecards": cards,
    }


def run(sessions: int, jobs: int, work: Path, home: str) -> dict[str, Any]:
    """Day D loaded, then D+1 incremental and D+1 full from that same state; the figures of both."""
    import psycopg
    from psycopg import sql

    replay, generated = work / "steady_replay", work / f"steady_{sessions}.json"
    replay.mkdir(parents=True, exist_ok=True)
    if not generated.exists():
        print(f"steady: generating {sessions * 31 // 30:,} sessions over 31 days ...", flush=True)
        _generate(generated, sessions, jobs)
    meta, meta_dsn = new_database("veeam_bench_meta")
    incremental_db, incremental_dsn = new_database("veeam_bench_steady")
    full_db = f"{incremental_db}_full"
    try:
        env = _airflow_env(home, meta_dsn, incremental_dsn, replay)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env={**os.environ, **env},
                       capture_output=True, timeout=900, check=True)  # fmt: skip
        from veeam_efficiency.settings import create_pool_argv

        subprocess.run([sys.executable, "-m", "airflow", *create_pool_argv()], env={**os.environ, **env},
                       capture_output=True, timeout=300, check=True)  # fmt: skip
        print(f"steady: day D ({FIRST_DAY.date()}) into an empty database ...", flush=True)
        _recorded_at(generated, replay / f"{HOST}.json", FIRST_DAY)
        first = _run(env, FIRST_DAY, {})
        with psycopg.connect(f"{SERVER_DSN}/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(full_db), sql.Identifier(incremental_db)))  # fmt: skip
        _recorded_at(generated, replay / f"{HOST}.json", WINDOW_END)
        out: dict[str, Any] = {"sessions": sessions, "jobs": jobs, "first_day": _summary(first)}
        for mode, dsn in (("incremental", incremental_dsn), ("full", f"{SERVER_DSN}/{full_db}")):
            print(f"steady: day D+1 ({WINDOW_END.date()}), {mode} ...", flush=True)
            started = time.perf_counter()
            result = _run({**env, "AIRFLOW_CONN_POSTGRES_DEFAULT": dsn}, WINDOW_END, {"collection_mode": mode})
            out[mode] = {**_summary(result), **_written(dsn, WINDOW_END), "process_s": time.perf_counter() - started}
        return out
    finally:
        for name in (full_db, incremental_db, meta):
            drop_database(name)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "wall_s": result["wall_s"],
        "tasks": {task["task"]: task["duration_s"] for task in result["tasks"]},
        "process_peak_kib": result["process_peak_kib"],
    }


def report(steady: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Markdown lines of the section, and the target verdict lines."""
    if "error" in steady:
        return [f"Failed: {steady['error']}"], []
    incremental, full = steady["incremental"], steady["full"]
    window = incremental["sessions_in_window"]
    lines = [
        f"{steady['sessions']:,} sessions / {steady['jobs']:,} jobs in the 30-day window; day D loaded "
        f"first ({steady['first_day']['wall_s']:.1f} s), then day D+1 from that same state, once per mode. "
        "Each run a fresh `dag.test` interpreter, XComs in object storage (zstd, local files) as the README sets "
        "up large servers (bench/steady_state.py).",
        "",
        "| day D+1 | wall | sessions asked of the server | days asked | history rows written | scorecards |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, result in (("incremental", incremental), ("full", full)):
        lines.append(
            f"| {mode} | {result['wall_s']:.1f} s | {result['sessions_asked']:,} | {result['asked_days']:.2f} | "
            f"{result['history_rows_written']:,} of {result['sessions_in_window']:,} | {result['scorecards']:,} |"
        )
    lines += ["", "| task | incremental | full |", "|---|---:|---:|"]
    for task, seconds in incremental["tasks"].items():
        other = full["tasks"].get(task)
        lines.append(f"| {task} | {seconds or 0:.1f} s | {(other or 0):.1f} s |")
    share = incremental["sessions_asked"] / max(window, 1)
    ratio = incremental["wall_s"] / full["wall_s"]
    verdicts = [
        (
            share <= 3 / 30,
            f"#16 steady state: sessions asked of the server {share:.3f} of the window vs ≤ 3/30 (0.100)",
        ),
        (
            incremental["history_rows_written"] <= full["history_rows_written"],
            f"#16 steady state: history rows written {incremental['history_rows_written']:,} (full: "
            f"{full['history_rows_written']:,}; new and changed only, of {window:,})",
        ),
        (ratio <= 0.25, f"#16 steady state: whole run {ratio:.2f}x the full run's wall time vs ≤ 0.25"),
    ]
    return lines, [f"**{'PASS' if ok else 'MISS'}** {text}" for ok, text in verdicts]
