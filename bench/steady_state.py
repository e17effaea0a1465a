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

#16 sets its wall-time goal against "today's full run": the daily run as it was when the issue was
filed (BASELINE), which collected and upserted the whole window on every run. That commit is
checked out in a ``git worktree`` and driven the same way on the same server data, in the same
bench run: day D, then day D+1, with the same deployment (XComs in object storage, zstd).
It uses this checkout's worker (bench.e2e_worker, copied into the worktree: that commit's worker
could not be given the day), which imports the worktree's package because it runs from there.
"""

from __future__ import annotations

import os
import shutil
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
# The daily run when #16 was filed: every run collected the whole window and upserted all of it.
BASELINE = "37c88dc"


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


def _run(env: dict[str, str], day_end: Any, conf: dict[str, Any], repo: Path = REPO) -> dict[str, Any]:
    worker_env = {
        **env,
        "BENCH_LOGICAL_DATE": day_end.isoformat(),
        "BENCH_RUN_CONF": msgspec.json.encode({"lookback_days": LOOKBACK_DAYS, **conf}).decode(),
    }
    result = run_worker("e2e_worker", [], env=worker_env, timeout=3600, repo=repo)
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


def _row_versions(results_dsn: str) -> int:
    """History row versions written so far (inserted or updated, any layout of the table): what a
    run wrote is the difference before and after it, for code that logs no provenance."""
    import psycopg

    with psycopg.connect(results_dsn) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables "
            "WHERE schemaname = 'feature3' AND relname LIKE 'storage\\_efficiency\\_history%'"
        ).fetchone()
    return int(row[0]) if row else 0


def _scorecards(results_dsn: str, day_end: Any) -> int:
    import psycopg

    with psycopg.connect(results_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM feature3.metrics_storage_efficiency WHERE analysis_date = %s",
            ((day_end - timedelta(microseconds=1)).date(),),
        ).fetchone()
    return int(row[0]) if row else 0


def _migrated(env: dict[str, str]) -> None:
    """The metadata database migrated and the collector pool created, as whoever starts Airflow does."""
    from veeam_efficiency.settings import create_pool_argv

    for argv in (["db", "migrate"], create_pool_argv()):
        subprocess.run([sys.executable, "-m", "airflow", *argv], env={**os.environ, **env},
                       capture_output=True, timeout=900, check=True)  # fmt: skip


def _worktree(commit: str, work: Path) -> tuple[Path, str]:
    """``commit`` checked out beside this checkout, with this checkout's worker; (path, full hash)."""
    git = ["git", "-C", str(REPO)]
    try:
        full = subprocess.run([*git, "rev-parse", "--verify", f"{commit}^{{commit}}"],
                              check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(
            f"the baseline commit {commit} is not in this checkout's history (a shallow clone or no git): "
            "clone with full history, or pass --steady-baseline '' to leave the baseline out"
        ) from exc
    tree = work / f"baseline-{full[:12]}"
    if not tree.exists():
        subprocess.run(
            [*git, "worktree", "add", "--detach", "--force", str(tree), full], check=True, capture_output=True
        )
    shutil.copy2(REPO / "bench" / "e2e_worker.py", tree / "bench" / "e2e_worker.py")
    return tree, full


def baseline(commit: str, generated: Path, work: Path, home: str) -> dict[str, Any]:
    """Day D, then day D+1, by the code of ``commit`` on the same server data, each a fresh ``dag.test``."""
    tree, full = _worktree(commit, work)
    replay = work / "baseline_replay"
    replay.mkdir(exist_ok=True)
    meta, meta_dsn = new_database("veeam_bench_meta")
    results_db, results_dsn = new_database("veeam_bench_baseline")
    try:
        env = {
            **_airflow_env(f"{home}_baseline", meta_dsn, results_dsn, replay),
            "AIRFLOW__CORE__DAGS_FOLDER": str(tree / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(tree / "plugins"),
        }
        _migrated(env)
        print(f"steady: baseline {full[:12]}, day D ({FIRST_DAY.date()}) into an empty database ...", flush=True)
        _recorded_at(generated, replay / f"{HOST}.json", FIRST_DAY)
        first = _run(env, FIRST_DAY, {}, repo=tree)
        print(f"steady: baseline {full[:12]}, day D+1 ({WINDOW_END.date()}) ...", flush=True)
        _recorded_at(generated, replay / f"{HOST}.json", WINDOW_END)
        before = _row_versions(results_dsn)
        daily = _run(env, WINDOW_END, {}, repo=tree)
        written = {
            "history_row_versions_written": _row_versions(results_dsn) - before,
            "scorecards": _scorecards(results_dsn, WINDOW_END),
        }
        return {"commit": full, "first_day": _summary(first), "daily": {**_summary(daily), **written}}
    finally:
        for name in (results_db, meta):
            drop_database(name)
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)


def run(sessions: int, jobs: int, work: Path, home: str, baseline_commit: str = BASELINE) -> dict[str, Any]:
    """Day D loaded, then D+1 incremental and D+1 full from that same state; the figures of both, and
    of the daily run of ``baseline_commit`` (empty: left out) on the same data."""
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
        _migrated(env)
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
            started, before = time.perf_counter(), _row_versions(dsn)
            result = _run({**env, "AIRFLOW_CONN_POSTGRES_DEFAULT": dsn}, WINDOW_END, {"collection_mode": mode})
            out[mode] = {**_summary(result), **_written(dsn, WINDOW_END), "process_s": time.perf_counter() - started,
                         "history_row_versions_written": _row_versions(dsn) - before}  # fmt: skip
    finally:
        for name in (full_db, incremental_db, meta):
            drop_database(name)
    if baseline_commit:
        out["baseline"] = baseline(baseline_commit, generated, work, home)
    return out


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
    incremental, full, base = steady["incremental"], steady["full"], steady.get("baseline")
    window = incremental["sessions_in_window"]
    lines = [
        f"{steady['sessions']:,} sessions / {steady['jobs']:,} jobs in the 30-day window; day D loaded "
        f"first ({steady['first_day']['wall_s']:.1f} s), then day D+1 from that same state, once per mode. "
        "Each run a fresh `dag.test` interpreter, XComs in object storage (zstd, local files) as the README sets "
        "up large servers (bench/steady_state.py).",
    ]
    if base:
        lines += [
            "",
            f"The baseline is the daily run as it was when #16 was filed (commit {base['commit'][:7]}: every run "
            "collected the whole window and upserted all of it), checked out in a `git worktree` and run the same "
            f"way on the same server data in this bench run: its day D took {base['first_day']['wall_s']:.1f} s.",
        ]
    lines += [
        "",
        "| day D+1 | wall | sessions asked of the server | days asked | history rows written | row versions "
        "written (pg_stat) | scorecards |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, result in (("incremental", incremental), ("full", full)):
        lines.append(
            f"| {mode} | {result['wall_s']:.1f} s | {result['sessions_asked']:,} | {result['asked_days']:.2f} | "
            f"{result['history_rows_written']:,} of {result['sessions_in_window']:,} | "
            f"{result['history_row_versions_written']:,} | {result['scorecards']:,} |"
        )
    if base:
        lines.append(
            f"| baseline {base['commit'][:7]} (full, its only mode) | {base['daily']['wall_s']:.1f} s | "
            f"all the server holds (it asked for no window) | - | - | "
            f"{base['daily']['history_row_versions_written']:,} | {base['daily']['scorecards']:,} |"
        )
    runs = [("incremental", incremental), ("full", full), *([("baseline", base["daily"])] if base else [])]
    lines += ["", f"| task | {' | '.join(name for name, _ in runs)} |", f"|---|{'---:|' * len(runs)}"]
    tasks = list(dict.fromkeys(task for _, result in runs for task in result["tasks"]))
    for task in tasks:
        cells = [result["tasks"].get(task) for _, result in runs]
        lines.append(f"| {task} | {' | '.join('-' if c is None else f'{c:.1f} s' for c in cells)} |")
    share = incremental["sessions_asked"] / max(window, 1)
    own_ratio = incremental["wall_s"] / full["wall_s"]
    lines += [
        "",
        f"Against this code's own `full` mode the incremental run takes {own_ratio:.2f}x the wall time: both pay "
        "`dag.test`'s start, the analysis of the whole window and the load of the new rows.",
    ]
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
    ]
    out = [f"**{'PASS' if ok else 'MISS'}** {text}" for ok, text in verdicts]
    if base:
        ratio = incremental["wall_s"] / base["daily"]["wall_s"]
        out.append(
            f"**{'PASS' if ratio <= 0.25 else 'MISS'}** #16 steady state: whole run {ratio:.3f}x the wall time of "
            f"the daily run when #16 was filed ({base['commit'][:7]}) vs ≤ 0.25 (this code's own full mode: "
            f"{own_ratio:.2f}x)"
        )
    else:
        out.append(
            "**NOT MEASURED** #16 steady state: whole run against the daily run when #16 was filed (no baseline)"
        )
    return lines, out
