"""Run the DAG once on the bundled sample data and print the scorecards it wrote, for a backup admin.

Uses the PostgreSQL of the Airflow connection ``postgres_default`` (env
``AIRFLOW_CONN_POSTGRES_DEFAULT``); when none is set or it does not answer, starts an
embedded PostgreSQL (the ``pgserver`` wheel) in ``.demo/pg``, which keeps running for
``make ui`` until ``make stop``. Airflow's own metadata goes to a SQLite file in
``.demo/airflow``. Nothing outside ``.demo/`` (env ``VEEAM_DEMO_DIR``) is touched.

The run is the stock ``airflow dags test`` with the collector chosen in the run's conf
(``replay``): the DAG itself has no default collector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = Path(os.environ.get("VEEAM_DEMO_DIR") or REPO / ".demo").resolve()
DAG_ID = "veeam_storage_efficiency"
RUN_DATE = date(2026, 11, 27)  # the bundled sample ends at 2026-11-27 00:00 UTC
RUN_CONF = {"collector": "replay"}  # the demo chooses the sample data explicitly
DSN_FILE = "results_dsn"  # where `make ui` finds the results database the demo used

sys.path.insert(0, str(REPO / "plugins"))


def shown(path: Path) -> str:
    """A path as the user typed it: relative to the repository when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def embedded_postgres() -> str:
    """Start (or find running) the embedded PostgreSQL in ``.demo/pg``; its URI."""
    run_dir = DEMO / "run"  # platformdirs warns on every start when XDG_RUNTIME_DIR is unset
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(run_dir))
    import pgserver

    return str(pgserver.get_server(DEMO / "pg", cleanup_mode=None).get_uri())


def results_dsn() -> tuple[str, str]:
    """The results database's URI and how to describe it."""
    import psycopg

    dsn = os.environ.get("AIRFLOW_CONN_POSTGRES_DEFAULT", "")
    if dsn:
        try:
            psycopg.connect(dsn.replace("postgres://", "postgresql://"), connect_timeout=3).close()
            return dsn, f"{dsn.split('@')[-1]} (AIRFLOW_CONN_POSTGRES_DEFAULT)"
        except psycopg.Error as exc:
            print(f"AIRFLOW_CONN_POSTGRES_DEFAULT does not answer ({exc}); starting an embedded PostgreSQL")
    uri = embedded_postgres()
    return uri, f"embedded PostgreSQL in {shown(DEMO / 'pg')} (keeps running until `make stop`)"


def airflow_env(dsn: str) -> dict[str, str]:
    """The environment of every Airflow command of the demo and of `make ui`."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(DEMO / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{DEMO / 'airflow' / 'airflow.db'}",
        "AIRFLOW_CONN_POSTGRES_DEFAULT": dsn,
        "VEEAM_REPLAY_DIR": str(REPO / "include" / "sample_data"),
        "PYTHONWARNINGS": "ignore",  # library deprecation notices are not the admin's business
    }


def run_dag(dsn: str) -> bool:
    from veeam_efficiency.settings import create_pool_argv

    env = airflow_env(dsn)
    airflow = [sys.executable, "-m", "airflow"]
    (DEMO / "airflow").mkdir(parents=True, exist_ok=True)
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    # the collector pool, as any deployment creates it (the DAG's first task checks it exists)
    subprocess.run([*airflow, *create_pool_argv()], env=env, check=True, capture_output=True)
    run = subprocess.run(
        [*airflow, "dags", "test", DAG_ID, RUN_DATE.isoformat(), "-c", json.dumps(RUN_CONF)],
        env=env,
        capture_output=True,
        text=True,
    )
    (DEMO / "dag_test.log").write_text(run.stdout + run.stderr)
    return run.returncode == 0 and "state=success" in run.stdout + run.stderr


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal: East Asian wide and full-width characters take two."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text
    )


def clip(text: str, columns: int) -> str:
    """``text`` cut to at most ``columns`` terminal columns (an ellipsis marks the cut)."""
    if width(text) <= columns:
        return text
    out = ""
    for char in text:
        if width(out + char) > columns - 1:
            break
        out += char
    return out + "…"


def table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    """Rows aligned in columns of terminal width (numbers right-aligned)."""
    grid = [header, *rows]
    widths = [max(width(row[i]) for row in grid) for i in range(len(header))]
    lines = []
    for row in grid:
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - width(cell))
            cells.append(pad + cell if i in right else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return lines


def report(dsn: str) -> list[str]:
    """The scorecards and the unscored jobs of the run's day, with how to read them."""
    import psycopg

    from veeam_efficiency.settings import AnalysisSettings

    settings = AnalysisSettings()
    day = RUN_DATE - timedelta(days=1)  # a run of day D+1 (data interval D .. D+1) scores day D
    with psycopg.connect(dsn.replace("postgres://", "postgresql://")) as conn:
        cards = conn.execute(
            "SELECT vbr_host, scope, job_name, sessions_scored, overall_score, grade, efficiency_rating, "
            "dedup_factor, compression_factor, trend_classification, annual_savings_usd, "
            "(SELECT string_agg(key, ' ' ORDER BY key) FROM jsonb_each(quality_flags) WHERE value = 'true'), "
            "window_start, window_end "
            "FROM feature3.metrics_storage_efficiency WHERE analysis_date = %s "
            "ORDER BY vbr_host, scope DESC, overall_score, job_name",
            (day,),
        ).fetchall()
        unscored = conn.execute(
            "SELECT vbr_host, job_name, sessions_found, sessions_needed FROM feature3.unscored_jobs "
            "WHERE analysis_date = %s ORDER BY vbr_host, job_name",
            (day,),
        ).fetchall()
    if not cards:
        return [f"no scorecards dated {day} in feature3.metrics_storage_efficiency"]
    start, end = cards[0][12], cards[0][13]
    jobs = [card for card in cards if card[1] == "job"]
    lines = [
        f"Scorecards dated {day}: the {(end - start).days} days from {start:%Y-%m-%d %H:%M} "
        f"to {end:%Y-%m-%d %H:%M} UTC (run {DAG_ID}, logical date {RUN_DATE}).",
        f"{len(jobs)} jobs scored on {len({card[0] for card in cards})} VBR servers, {len(unscored)} not scored.",
        "",
        "How to read it:",
        "  overall    0-100: dedup 30%, compression 25%, trend 20%, consistency 15%, anomalies 10%",
        f"  grade      A from {settings.grade_a_min:g}, B {settings.grade_b_min:g}, C {settings.grade_c_min:g}, "
        f"D {settings.grade_d_min:g}, F below; rating EXCELLENT, GOOD, FAIR, POOR",
        "  dedup, compr  factors: 2.00x = the data takes half the space "
        f"(good: {settings.target_dedup_factor:g}x dedup, {settings.target_compression_factor:g}x compression)",
        "  trend      change of the combined factor between the older and the newer half of the window",
        f"  $/year     storage the job wastes against the good factors, at {settings.price_per_tb_usd:g} USD "
        "per TB-month (Param price_per_tb_usd)",
        "  (all jobs) the server's roll-up: its jobs weighted by the data each protects; $/year summed;",
        "             a flag or DEGRADING trend when any job has one",
        "",
    ]
    header = (
        "VBR server",
        "job",
        "sessions",
        "overall",
        "grade",
        "rating",
        "dedup",
        "compr",
        "trend",
        "$/year",
        "flags",
    )
    lines += table(header, [_card_row(card) for card in cards], right={2, 3, 6, 7, 9})
    if unscored:
        lines += [
            "",
            f"Not scored: fewer than min_sessions ({settings.min_sessions}) scorable sessions in the window "
            "(feature3.unscored_jobs):",
        ]
        lines += table(
            ("VBR server", "job", "found", "needed"),
            [(host, clip(name, 28), str(found), str(needed)) for host, name, found, needed in unscored],
            right={2, 3},
        )
    return lines


def _card_row(card: tuple) -> tuple[str, ...]:
    host, _, name, scored, overall, grade, rating, dedup, compression, trend, savings, flags, _, _ = card
    return (
        host, clip(name, 28), str(scored), f"{overall:.1f}", grade, rating,
        f"{dedup:.2f}x", f"{compression:.2f}x", trend, f"{savings:,.0f}", flags or "",
    )  # fmt: skip


def main() -> int:
    DEMO.mkdir(exist_ok=True)
    dsn, where = results_dsn()
    (DEMO / DSN_FILE).write_text(dsn)
    print(f"results database: {where}")
    print(f"running {DAG_ID} for {RUN_DATE} on the bundled synthetic sample data (include/sample_data) ...")
    if not run_dag(dsn):
        print(f"the DAG run failed; log: {shown(DEMO / 'dag_test.log')}")
        return 1
    print()
    print("\n".join(report(dsn)))
    print(
        "\nNext steps:\n"
        "  make ui     the same results in the Airflow UI (DAG veeam_storage_efficiency, its run and task logs)\n"
        "  make stop   stops the UI and the embedded PostgreSQL\n"
        '  README.md, "Point it at your VBR server": score your own backup jobs\n'
        f"  DAG log: {shown(DEMO / 'dag_test.log')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
