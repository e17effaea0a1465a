"""Benchmark of the veeam_efficiency package: ``python -m bench [--quick] [--only ...] [--out bench/RESULTS.md]``.

Every measurement runs in a fresh interpreter (bench.*_worker) on documents written
beforehand by ``tools.synthetic`` in another one, so neither generation nor
an earlier size counts in a timing or a peak RSS. Results go to a markdown file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import celery_scale, dag_parse, steady_state
from bench.common import REPO, SERVER_DSN, dag_test_env, drop_database, new_database, run_worker, write_generated

GIB_KIB = 2**20
ANALYSIS_SIZES = [(10_000, 100), (100_000, 1_000), (1_000_000, 10_000)]
LOAD_SIZES = [(100_000, 1_000), (1_000_000, 10_000)]
E2E_SIZE = (100_000, 1_000)
ANALYSIS_REPEATS = 4  # more runs of the analysis after the first, in the same process
LOAD_REPEATS = 2  # more interleaved rounds of write_run / raw binary COPY / insert_rows, fresh databases
QUICK = {
    "analysis": [(10_000, 100), (100_000, 1_000)], "load": [(10_000, 100)], "e2e": (5_000, 50), "parse_runs": 3,
    "view": (10_000, 100), "celery": (4, 2_000, 20), "steady": (20_000, 200),
}  # fmt: skip
VIEW_SIZE = (1_000_000, 10_000)  # history rows of this document measure the view's index cost
CELERY_SIZE = (100, 10_000, 50)  # VBR servers, sessions and jobs each
STEADY_SIZE = (1_000_000, 10_000)
SECTIONS = ("analysis", "load", "parse", "e2e", "view", "steady", "celery")
DEFAULT_SECTIONS = SECTIONS[:-1]  # celery (two stacks, about an hour on 2 cores) only when asked: --only celery


def machine() -> dict[str, str]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    import numpy
    import pandas
    import psycopg

    with psycopg.connect(f"{SERVER_DSN}/postgres") as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    airflow = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('apache-airflow'))"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "cpu": cpu,
        "nproc": str(os.cpu_count()),
        "ram": f"{int(meminfo['MemTotal'].split()[0]) / GIB_KIB:.1f} GiB",
        "python": platform.python_version(),
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "psycopg": psycopg.__version__,
        "airflow": airflow,
        "postgresql": server,
    }


def verdict(ok: bool, text: str) -> str:
    return f"**{'PASS' if ok else 'MISS'}** {text}"


def run_analysis(sizes: list[tuple[int, int]], docs: Path) -> list[dict[str, Any]]:
    out = []
    for sessions, jobs in sizes:
        doc = write_generated(docs / f"bench_{sessions}.json", sessions, jobs)
        print(f"analysis {sessions:,} sessions / {jobs:,} jobs ...", flush=True)
        args = [str(doc), "--repeat", str(ANALYSIS_REPEATS)] + (["--profile"] if (sessions, jobs) == sizes[-1] else [])
        out.append({"sessions": sessions, "jobs_generated": jobs, **run_worker("analysis_worker", args)})
    return out


def run_load(sizes: list[tuple[int, int]], docs: Path, home: str) -> list[dict[str, Any]]:
    out = []
    for sessions, jobs in sizes:
        doc = write_generated(docs / f"bench_{sessions}.json", sessions, jobs)
        print(f"load {sessions:,} sessions ...", flush=True)
        args = [str(doc), "--repeat", str(LOAD_REPEATS)] + (["--profile"] if (sessions, jobs) == sizes[-1] else [])
        env = {"AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        out.append({"sessions": sessions, **run_worker("load_worker", args, env=env)})
    return out


def run_view(size: tuple[int, int], docs: Path, home: str) -> dict[str, Any]:
    sessions, jobs = size
    doc = write_generated(docs / f"bench_{sessions}.json", sessions, jobs)
    print(f"view: index load cost over {sessions:,} sessions, then the 10,000-job estate ...", flush=True)
    env = {"AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    return dict(run_worker("view_worker", [str(doc)], env=env))


def run_e2e(size: tuple[int, int], docs: Path, home: str) -> dict[str, Any]:
    sessions, jobs = size
    replay = docs / "replay"
    replay.mkdir(exist_ok=True)
    write_generated(replay / "vbr-bench.json", sessions, jobs)
    meta, meta_dsn = new_database("veeam_bench_meta")
    results, results_dsn = new_database()
    env = dag_test_env(home, meta_dsn, results_dsn, replay)
    try:
        print("e2e: airflow db migrate ...", flush=True)
        start = time.perf_counter()
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if migrate.returncode != 0:
            return {"error": f"airflow db migrate failed: {migrate.stderr[-2000:]}"}
        migrate_s = time.perf_counter() - start
        from veeam_efficiency.settings import create_pool_argv  # the DAG's first task checks the pool

        subprocess.run([sys.executable, "-m", "airflow", *create_pool_argv()], env={**os.environ, **env},
                       capture_output=True, timeout=300, check=True)  # fmt: skip
        print(f"e2e: dag.test over {sessions:,} sessions ...", flush=True)
        try:
            result = run_worker("e2e_worker", [], env=env, timeout=1800)
        except RuntimeError as exc:
            return {"error": str(exc)[-3000:], "sessions": sessions, "jobs": jobs}
        if result["run_state"] != "success":
            return {
                "error": f"the run ended {result['run_state']}: {result['tasks']}",
                "sessions": sessions,
                "jobs": jobs,
            }
        import psycopg

        with psycopg.connect(results_dsn) as conn:
            counts = {
                table: conn.execute(f"SELECT count(*) FROM feature3.{table}").fetchone()[0]
                for table in ("storage_efficiency_history", "metrics_storage_efficiency")
            }
        return {"sessions": sessions, "jobs": jobs, "migrate_s": migrate_s, "rows": counts, **result}
    finally:
        drop_database(results)
        drop_database(meta)


# ---------------------------------------------------------------- report


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def profile_table(profile: dict[str, Any], rows: int = 10) -> list[str]:
    lines = [
        f"Profiled total {profile['total_s']} s (cProfile adds overhead). Hot spots by own time, "
        "each attributed to the package functions whose calls cost it:",
        "",
        "| function (own time) | calls | own s | share | caused by (package function: s) |",
        "|---|---:|---:|---:|---|",
    ]
    for row in profile["by_own_time"][:rows]:
        causes = "; ".join(f"`{name.split('/')[-1]}` {t}" for name, t in row["caused_by"].items())
        lines.append(
            f"| `{row['function']}` | {row['calls']} | {row['tottime_s']} | {row['share_own']:.0%} | {causes} |"
        )
    lines += [
        "",
        "Package functions by cumulative time:",
        "",
        "| function | calls | cum s | share |",
        "|---|---:|---:|---:|",
    ]
    for row in profile["package_by_cumulative"][:14]:
        lines.append(f"| `{row['function']}` | {row['calls']} | {row['cumtime_s']} | {row['share_cum']:.0%} |")
    return lines


def report(results: dict[str, Any], command: str, started: datetime, elapsed: float) -> str:
    env = results["machine"]
    lines = [
        "# veeam_efficiency benchmark",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC (took {elapsed / 60:.1f} min)",
        f"- Command: `{command}` (from the repository root)",
        f"- Machine: {env['cpu']}, nproc {env['nproc']}, RAM {env['ram']}",
        f"- Python {env['python']}, pandas {env['pandas']}, numpy {env['numpy']}, psycopg {env['psycopg']}, "
        f"Airflow {env['airflow']}, PostgreSQL {env['postgresql']} (local, 127.0.0.1)",
        "- Data: `tools.synthetic.generate_document`, seed fixed, a 30-day window "
        "(2026-10-28..2026-11-27), analysed with lookback_days=30 and the default settings.",
        "",
    ]
    targets: list[str] = []
    if "analysis" in results:
        rows = results["analysis"]
        lines += [
            "## Analysis (window_sessions + job_sufficiency + score_window + add_context + add_optimization_potential)",
            "",
            "Each size in a fresh interpreter, on a document already parsed by `columnar.parse_document_columns` as the DAG's validate task does, "
            "on the ASCII text `collect` hands on (`collectors.ascii_text`: the file's non-ASCII job names escaped first). "
            "Escaping and parsing are timed apart: they are not part of the 10 s target. *RSS before* is the process after parsing, "
            "holding the parsed document the analysis reads; *analysis peak* is `ru_maxrss` read at the end, "
            "after resetting the peak once parsing was done (`/proc/self/clear_refs` 5); *process peak* "
            "includes parsing (the DAG's `validate` task parses and runs window_sessions in one process). "
            "*analysis* and its stages are the first run, as the DAG pays it; the same analysis then runs "
            f"{ANALYSIS_REPEATS} more times in that process, and *median* (of all runs) is what the growth "
            "criterion compares, since one run of a fraction of a second moves with the machine's noise.",
            "",
            "| sessions / jobs | in window | scorecards | parse | analysis | median | µs / session (median) | window_sessions "
            "| job_sufficiency | score_window | add_context | optimize | RSS before | analysis peak "
            "| process peak (incl. parse) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            st = r["stages"]
            lines.append(
                f"| {r['sessions']:,} / {r['jobs_generated']:,} | {r['sessions_in_window']:,} | {r['scorecards']:,} "
                f"| {fmt_s(r['parse_s'])} | {fmt_s(r['analysis_s'])} | {fmt_s(r['analysis_median_s'])} "
                f"| {1e6 * r['analysis_median_s'] / r['sessions']:.2f} "
                f"| {fmt_s(st['window_sessions']['s'])} | {fmt_s(st['job_sufficiency']['s'])} "
                f"| {fmt_s(st['score_window']['s'])} | {fmt_s(st['add_context']['s'])} "
                f"| {fmt_s(st['add_optimization_potential']['s'])} "
                f"| {mib(r['rss_before_kib'])} | {mib(r['analysis_peak_kib'])} | {mib(r['process_peak_kib'])} |"
            )
        lines += ["", "Peak RSS per stage (MiB, peak reset before each stage): "]
        for r in rows:
            lines.append(
                f"- {r['sessions']:,}: "
                + ", ".join(f"{name} {mib(stage['peak_kib'])}" for name, stage in r["stages"].items())
                + f"; parsed document holds ≈ {mib(r['rss_before_kib'] - r['rss_start_kib'])}"
            )
        big = rows[-1]
        if big["sessions"] == 1_000_000:
            t, peak, process = big["analysis_s"], big["analysis_peak_kib"], big["process_peak_kib"]
            per = {r["sessions"]: r["analysis_median_s"] / r["sessions"] for r in rows}
            growth = per[1_000_000] / per[100_000]
            first = {r["sessions"]: r["analysis_s"] / r["sessions"] for r in rows}
            first_growth = first[1_000_000] / first[100_000]
            targets += [
                verdict(t < 10, f"1,000,000 sessions / 10,000 jobs analysed in {t:.2f} s vs < 10 s "
                        f"({'margin' if t < 10 else 'over by'} {abs(10 - t):.2f} s, {t / 10:.0%} of target)"),
                verdict(peak < 2 * GIB_KIB, f"analysis peak RSS {peak / GIB_KIB:.2f} GiB vs < 2 GiB "
                        f"({peak / (2 * GIB_KIB):.0%} of target; process with the parsed document in memory)"),
                verdict(process < 2 * GIB_KIB, f"same process including parse_document_columns: peak {process / GIB_KIB:.2f} GiB "
                        f"vs 2 GiB ({process / (2 * GIB_KIB):.0%}); parse itself took {big['parse_s']:.1f} s"),
                verdict(big["parse_s"] <= 3, f"#16 goal: parse_document_columns of 1,000,000 sessions in "
                        f"{big['parse_s']:.2f} s vs ≤ 3 s (on the ASCII text collect hands on; collect's "
                        f"escaping of the file's non-ASCII names took {big['escape_s']:.1f} s, peak "
                        f"{mib(big['escape_peak_kib'])} with the bytes read)"),
                verdict(process <= 1.2 * GIB_KIB, f"#16 goal: parse plus analysis peak {process / GIB_KIB:.2f} GiB vs "
                        f"≤ 1.2 GiB (the document's text alone holds {mib(big['text_kib'])}: "
                        + ("ASCII)" if big["text_ascii"] else "its non-ASCII job names make Python hold the "
                           "whole text at 2 or 4 bytes a character; an ASCII document is parsed in place)")),
                verdict(growth <= 1.5, f"linear growth: median time per session at 1,000,000 is {growth:.2f}x that at "
                        f"100,000 (criterion ≤ 1.5x; first runs alone: {first_growth:.2f}x; 10,000 is dominated by "
                        "fixed costs)"),
            ]  # fmt: skip
        if "profile" in big:
            lines += ["", f"### Where the analysis time goes ({big['sessions']:,} sessions)", ""]
            lines += profile_table(big["profile"])
        lines.append("")
    if "load" in results:
        lines += [
            "## Load: the history rows into `feature3.storage_efficiency_history`",
            "",
            "Each method into its own fresh, empty database with the project's schema (identifiers COLLATE \"C\", the primary key and the view's job index). "
            "*write_run* is the project's path (one transaction, advisory lock; rows sorted into primary-key order and "
            "encoded as binary COPY, included in its time, while a writer thread sends the previous chunk; on an empty table the sampled keys are absent, so the "
            "rows are copied straight into the table under a savepoint; scorecards left empty so all methods "
            "write the same rows). *re-run* is a second write_run of the same rows onto the full table (every "
            "row conflicts: temp table + INSERT ... ON CONFLICT DO UPDATE). *raw binary COPY* streams exactly "
            "the bytes write_run sends (sorting and encoding timed apart as *binary serialise*) straight into the "
            "table. *no probe* is write_run with its savepoint key probe switched off, so a new day's rows also go "
            "through the temp table and INSERT ... ON CONFLICT (what the probe saves); *probe* is the probe's own "
            "look-up on the full table (what it costs a re-run). *insert_rows* is `PostgresHook.insert_rows(replace=True, "
            "replace_index=[vbr_host, session_id, creation_time])`, default commit_every=1000, psycopg 3 executemany; converting "
            "the frame to Python tuples is timed apart and not counted. The targets compare write_run with the "
            "raw binary COPY.",
            "",
            "| rows | write_run | rows/s | re-run (upsert) | no probe | probe | binary serialise "
            "| raw binary COPY (DB only) | insert_rows | insert_rows / write_run "
            "| write_run / (serialise + COPY) | write_run / COPY |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["load"]:
            n = r["rows"]
            note = (
                f" (extrapolated from {r['insert_rows_measured_rows']:,} rows)" if r["insert_rows_extrapolated"] else ""
            )
            raw = r["raw_binary_copy_s"]
            whole = r["serialise_binary_s"] + r["raw_binary_copy_s"]
            lines.append(
                f"| {n:,} | {fmt_s(r['write_run_s'])} | {n / r['write_run_s']:,.0f} | {fmt_s(r['write_run_again_s'])} "
                f"| {fmt_s(r['write_run_no_probe_s'])} | {r['probe_full_table_s'] * 1000:.1f} ms "
                f"| {fmt_s(r['serialise_binary_s'])} | {fmt_s(r['raw_binary_copy_s'])} "
                f"| {fmt_s(r['insert_rows_s'])}{note} "
                f"| {r['insert_rows_s'] / r['write_run_s']:.2f}x | {r['write_run_s'] / whole:.2f}x "
                f"| {r['write_run_s'] / raw:.2f}x |"
            )
        lines += [
            "",
            "Tuple preparation for insert_rows (not counted above): "
            + ", ".join(f"{r['rows']:,} rows {fmt_s(r['insert_rows_prep_s'])}" for r in results["load"])
            + ".",
        ]
        lines += [
            "",
            f"Then {LOAD_REPEATS} more rounds of the three compared methods, one after the other, each into a fresh "
            "database; the targets use the **median** of all rounds (first pass included), because one load moves "
            "with this machine's noise by 25% or more:",
            "",
            "| rows | write_run rounds | raw binary COPY rounds | insert_rows rounds | insert_rows / write_run "
            "(per round) | medians: insert_rows / write_run | write_run / COPY |",
            "|---:|---|---|---|---|---:|---:|",
        ]
        for r in results["load"]:
            rounds = r["rounds"]
            med = {name: statistics.median(values) for name, values in rounds.items()}
            per_round = [i / w for i, w in zip(rounds["insert_rows_s"], rounds["write_run_s"], strict=True)]
            lines.append(
                f"| {r['rows']:,} | {', '.join(map(fmt_s, rounds['write_run_s']))} "
                f"| {', '.join(map(fmt_s, rounds['raw_binary_copy_s']))} "
                f"| {', '.join(map(fmt_s, rounds['insert_rows_s']))} "
                f"| {', '.join(f'{x:.2f}x' for x in per_round)} "
                f"| {med['insert_rows_s'] / med['write_run_s']:.2f}x "
                f"| {med['write_run_s'] / med['raw_binary_copy_s']:.2f}x |"
            )
        big = results["load"][-1]
        med = {name: statistics.median(values) for name, values in big["rounds"].items()}
        speedup = med["insert_rows_s"] / med["write_run_s"]
        like = big["write_run_s"] / (big["serialise_binary_s"] + big["raw_binary_copy_s"])
        db_only = med["write_run_s"] / med["raw_binary_copy_s"]
        lines += [
            "",
            "Savepoint key probe (medians of all rounds): "
            + "; ".join(
                f"{r['rows']:,} rows: new day {fmt_s(statistics.median(r['rounds']['write_run_s']))} with the probe vs "
                f"{fmt_s(statistics.median(r['rounds']['write_run_no_probe_s']))} without "
                f"({statistics.median(r['rounds']['write_run_no_probe_s']) / statistics.median(r['rounds']['write_run_s']):.2f}x); "
                f"the probe itself on a full table {r['probe_full_table_s'] * 1000:.1f} ms"
                for r in results["load"]
            )
            + ".",
        ]
        targets += [
            verdict(speedup >= 5, f"load {big['rows']:,} rows: write_run is {speedup:.2f}x faster than insert_rows vs ≥ 5x "
                    f"({'margin' if speedup >= 5 else 'short by'} {abs(speedup - 5):.2f}x; medians of "
                    f"{len(big['rounds']['write_run_s'])} rounds; first pass alone "
                    f"{big['insert_rows_s'] / big['write_run_s']:.2f}x)"),
            verdict(like <= 1.5, f"write_run takes {like:.2f}x the raw binary COPY + its serialisation vs ≤ 1.5x"),
            verdict(db_only <= 1.5, f"write_run takes {db_only:.2f}x the raw binary COPY's database time alone vs ≤ 1.5x (medians) "
                    f"(its sorting and encoding are {big['serialise_binary_s'] / big['write_run_s']:.0%} of write_run)"),
        ]  # fmt: skip
        if "write_run_profile" in big:
            lines += ["", f"### Where write_run's time goes ({big['rows']:,} rows; `psycopg` `wait` = the server)", ""]
            lines += profile_table(big["write_run_profile"])
        lines.append("")
    if "parse" in results:
        p = results["parse"]
        own = p["sdk_plus_dag_median_s"] - p["sdk_median_s"]
        lines += [
            "## DAG file import (as the dag-processor pays it)",
            "",
            f"Median of {p['runs']} fresh interpreters each (alternating, after one warm-up), AIRFLOW_HOME a temp "
            "dir, DAGS_FOLDER/PLUGINS_FOLDER set, LOAD_EXAMPLES False.",
            "",
            "| import airflow.sdk | airflow.sdk + DAG file | DAG file (difference) | DAG file (timed in-process) |",
            "|---:|---:|---:|---:|",
            f"| {fmt_s(p['sdk_median_s'])} | {fmt_s(p['sdk_plus_dag_median_s'])} | {fmt_s(own)} "
            f"| {fmt_s(p['dag_in_process_median_s'])} |",
            "",
            f"Heavy modules in sys.modules after airflow.sdk: {p['heavy_after_sdk'] or 'none'}; after the DAG file: "
            f"{p['heavy_after_dag'] or 'none'}. Top-level modules the DAG file added: {', '.join(p['dag_new_top_level_modules'])}.",
            "",
        ]
        heavy = [m for m in ("pandas", "scipy", "numpy") if m in p["heavy_after_dag"]]
        worst = max(own, p["dag_in_process_median_s"])
        targets += [
            verdict(worst < 0.5, f"DAG file import {worst:.3f} s vs < 0.5 s (larger of difference and in-process)"),
            verdict(not heavy, f"pandas/scipy/numpy not imported by the DAG file (found: {heavy or 'none'})"),
        ]
    if "e2e" in results:
        e = results["e2e"]
        lines += ["## End to end: one `dag.test()` of the real DAG", ""]
        if "error" in e:
            lines += ["The run failed:", "", "```", e["error"], "```", ""]
            targets.append(verdict(False, "end-to-end run failed (see above)"))
        else:
            lines += [
                f"{e['sessions']:,} sessions / {e['jobs']:,} jobs in one replay file; metadata in a fresh PostgreSQL "
                f"database (`airflow db migrate` {e['migrate_s']:.0f} s, not counted), results in another. "
                f"Run state **{e['run_state']}**, dag.test wall {e['wall_s']:.1f} s, process peak RSS "
                f"{mib(e['process_peak_kib'])}; rows written: {e['rows']}.",
                "",
                "| task | state | try | duration |",
                "|---|---|---:|---:|",
            ]
            for t in e["tasks"]:
                took = "-" if t["duration_s"] is None else fmt_s(t["duration_s"])
                lines.append(f"| {t['task']} | {t['state']} | {t['try_number']} | {took} |")
            lines.append("")
    if "view" in results:
        lines_view, targets_view = view_report(results["view"])
        lines += lines_view
        targets += targets_view
    if "steady" in results:
        lines_steady, targets_steady = steady_state.report(results["steady"])
        lines += ["## Steady state: the daily run after the previous day is loaded", "", *lines_steady, ""]
        targets += targets_steady
    if "celery" in results:
        lines_celery, targets_celery = celery_scale.report(results["celery"], env["nproc"])
        lines += lines_celery
        targets += targets_celery
    lines = [*lines[:8], "## Targets", "", *(f"- {t}" for t in targets), "", *lines[8:]]
    return "\n".join(lines) + "\n"


def view_report(view: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The Storage efficiency view: the history index's load cost and the 10,000-job estate's requests."""
    index, estate = view["index"], view["estate"]
    with_s, without_s = index["medians"]["with_index"], index["medians"]["without_index"]
    lines = [
        "## Storage efficiency view",
        "",
        f"**History index `(hashtextextended(job_id, 0), creation_time)`, load cost.** `write_run` of the same {index['rows']:,} "
        f"history rows into a fresh database with the project's schema, and into one with that index dropped, "
        f"{len(index['rounds']['with_index'])} alternating rounds (bench/view_worker.py):",
        "",
        "| history table | rounds | median |",
        "|---|---|---:|",
        f"| PK + (hash of job, time) index (now) | {', '.join(fmt_s(t) for t in index['rounds']['with_index'])} | {fmt_s(with_s)} |",
        f"| PK only (before) | {', '.join(fmt_s(t) for t in index['rounds']['without_index'])} | {fmt_s(without_s)} |",
        "",
        f"The index costs {index['ratio']:.2f}x the load time ({with_s - without_s:+.1f} s) and {index['index_mb']:.0f} MB "
        "at this size; it turns the job page's session query from a scan of the whole history into an index range read.",
        "",
        f"**An estate of {estate['jobs']:,} jobs** (10 VBR servers x 1,000 jobs, {estate['scorecards']:,} scorecards over "
        f"30 days, {estate['sessions']:,} history rows; seeded in {estate['seed_s']:.0f} s, not counted). Each request "
        "through the plugin's FastAPI app in-process (`TestClient`), the Airflow auth check replaced by a pass, "
        f"after one request that paid the process's one-time imports ({estate['warm_up_s']:.1f} s, once per "
        "api-server process); the first request of each kind and the median of 5 more:",
        "",
        "| request | first | median | response |",
        "|---|---:|---:|---:|",
    ]
    for label, t in estate["requests"].items():
        lines.append(f"| {label} | {fmt_s(t['first_s'])} | {fmt_s(t['median_s'])} | {t['bytes'] / 1024:.0f} KiB |")
    lines.append("")
    opening = estate["requests"]["estate (latest day, all 10 servers)"]
    worst = max(opening["first_s"], opening["median_s"])
    targets = [
        verdict(worst < 2.0, f"estate of {estate['jobs']:,} jobs opens in {worst:.3f} s vs < 2 s (first request)")
    ]
    return lines, targets


# the titles (their beginnings) of the sections this bench writes; any other section is kept
OWN_SECTIONS = (
    "## Targets",
    "## Analysis",
    "## Load",
    "## DAG file import",
    "## End to end",
    "## Storage efficiency view",
    "## Steady state",
)


def keep_other_sections(text: str, path: Path) -> str:
    """``text`` plus the ``## `` sections of the file at ``path`` that this run did not write.

    Other benchmarks (``python -m bench.change_points``, the celery bench) and notes added by
    hand live in the same file; a run of this one must not erase them.
    """
    if not path.exists():
        return text
    sections = re.split(r"(?m)^(?=## )", path.read_text(encoding="utf-8"))[1:]
    written = {line for line in text.splitlines() if line.startswith("## ")}  # e.g. the celery section, re-run
    kept = [
        section.rstrip("\n")
        for section in sections
        if not section.startswith(OWN_SECTIONS) and section.split("\n", 1)[0] not in written
    ]
    return "\n\n".join([text.rstrip("\n"), *kept]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes only: a smoke check")
    parser.add_argument(
        "--only", default=",".join(DEFAULT_SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument(
        "--steady-size", default=None, help="SESSIONS,JOBS of the steady-state section (default 1000000,10000)"
    )
    parser.add_argument(
        "--steady-baseline",
        default=steady_state.BASELINE,
        help="commit whose daily run the steady state is measured against (default %(default)s, the daily run "
        "when #16 was filed; about 13 minutes at 1M sessions); empty: left out",
    )
    args = parser.parse_args()
    only = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    command = " ".join(["python -m bench", shlex.join(sys.argv[1:])]).strip()

    started, clock = datetime.now(UTC), time.perf_counter()
    results: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="veeam-bench-") as tmp:
        docs, home = Path(tmp) / "docs", str(Path(tmp) / "airflow_home")
        docs.mkdir()
        if "analysis" in only:
            results["analysis"] = run_analysis(QUICK["analysis"] if args.quick else ANALYSIS_SIZES, docs)
        if "load" in only:
            results["load"] = run_load(QUICK["load"] if args.quick else LOAD_SIZES, docs, home)
        if "parse" in only:
            print("DAG file import ...", flush=True)
            results["parse"] = dag_parse.measure(QUICK["parse_runs"] if args.quick else 7)
        if "e2e" in only:
            results["e2e"] = run_e2e(QUICK["e2e"] if args.quick else E2E_SIZE, docs, home)
        if "view" in only:
            results["view"] = run_view(QUICK["view"] if args.quick else VIEW_SIZE, docs, home)
        if "steady" in only:
            try:
                size = tuple(map(int, args.steady_size.split(","))) if args.steady_size else None
                results["steady"] = steady_state.run(
                    *(size or (QUICK["steady"] if args.quick else STEADY_SIZE)), docs, home, args.steady_baseline
                )
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                results["steady"] = {"error": str(exc)[-3000:]}
        if "celery" in only:
            results["celery"] = celery_scale.measure(*(QUICK["celery"] if args.quick else CELERY_SIZE), docs)
    text = keep_other_sections(report(results, command, started, time.perf_counter() - clock), args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    raw = REPO / "bench" / "out" / "results.json"
    raw.parent.mkdir(exist_ok=True)
    raw.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
