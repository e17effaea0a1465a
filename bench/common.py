"""Shared bits of the bench: the data window, generated documents, memory readings, throwaway databases."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
DAGS = REPO / "dags"
ADMIN_DSN = os.environ.get("VEEAM_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVER_DSN = ADMIN_DSN.rsplit("/", 1)[0]

# A manual run on RUN_DATE with lookback_days=LOOKBACK_DAYS analyses [WINDOW_START, WINDOW_END);
# the synthetic sessions are generated over exactly that window, so every one is in it.
LOOKBACK_DAYS = 30
WINDOW_END = datetime(2026, 11, 27, tzinfo=UTC)
WINDOW_START = WINDOW_END - timedelta(days=LOOKBACK_DAYS)
HOST = "vbr-bench.example.local"
SEED = 20261127

if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))


def write_generated(path: Path, sessions: int, jobs: int, host: str = HOST) -> Path:
    """Generate a seeded document in a fresh subprocess (its memory never counts here) and write it."""
    if not path.exists():
        subprocess.run(
            [
                sys.executable, "-m", "tools.synthetic", "--host", host,
                "--jobs", str(jobs), "--sessions", str(sessions),
                "--start", WINDOW_START.isoformat(), "--end", WINDOW_END.isoformat(),
                "--seed", str(SEED), "--out", str(path),
            ],
            check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(PLUGINS)}, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return path


def dag_test_env(home: str, meta_dsn: str, results_dsn: str, replay: Path) -> dict[str, str]:
    """The environment of a ``dag.test`` worker: its AIRFLOW_HOME and metadata database, the
    results database and the replay files it collects."""
    return {
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_dsn.replace("postgresql://", "postgresql+psycopg://"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(Path(home) / "logs"),
        "AIRFLOW_CONN_POSTGRES_DEFAULT": results_dsn,
        "VEEAM_REPLAY_DIR": str(replay),
        "VEEAM_COLLECTOR": "replay",  # the product has no default collector: a deployment chooses one
    }


def rss_kib() -> int:
    """Current resident set size (VmRSS), KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_kib() -> int:
    """Peak resident set size of this process so far (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs`` 5); True when it took effect."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return peak_kib() <= rss_kib() + 1024


def new_database(prefix: str = "veeam_bench") -> tuple[str, str]:
    """Create an empty database ``<prefix>_<random>``; returns (name, DSN)."""
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, f"{SERVER_DSN}/{name}"


def drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_worker(
    module: str, args: list[str], env: dict[str, str] | None = None, timeout: int = 3600, repo: Path = REPO
) -> Any:
    """Run ``python -m bench.<module>`` of ``repo`` (default this checkout) in a fresh interpreter; its
    last stdout line is JSON."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=repo, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"bench.{module} {args} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def emit(result: Any) -> None:
    """A worker's answer: one JSON line, last on stdout."""
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def top_functions(profile: Any, limit: int = 12) -> dict[str, Any]:
    """The costliest functions of a ``cProfile.Profile``: by own time (each attributed to the package
    functions that caused it, split along caller edges by cumulative time) and the package's own
    functions by cumulative time."""
    import pstats

    stats = pstats.Stats(profile)
    table = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt or 1e-9  # type: ignore[attr-defined]

    def label(func: tuple[str, int, str]) -> str:
        filename, line, name = func
        return f"{filename.split('site-packages/')[-1].replace(str(REPO) + '/', '')}:{line}({name})"

    def ours(func: tuple[str, int, str]) -> bool:
        return "veeam_efficiency" in func[0]

    memo: dict[Any, dict[str, float]] = {}
    visiting: set[Any] = set()

    def shares(func: Any) -> dict[str, float]:
        """Which package functions ``func``'s time comes from, as fractions (memoised, cycle-safe)."""
        if func in memo:
            return memo[func]
        callers = table[func][4]
        if ours(func) or not callers or func in visiting:
            return {label(func): 1.0}
        visiting.add(func)
        whole = sum(edge[3] for edge in callers.values()) or 1.0
        out: dict[str, float] = {}
        for caller, edge in callers.items():
            for name, part in shares(caller).items():
                out[name] = out.get(name, 0.0) + part * edge[3] / whole
        visiting.discard(func)
        memo[func] = out
        return out

    def attribute(func: Any, amount: float, into: dict[str, float]) -> None:
        for name, part in shares(func).items():
            into[name] = into.get(name, 0.0) + amount * part

    rows = []
    for func, (_, calls, tottime, cumtime, _) in table.items():
        rows.append((func, calls, tottime, cumtime))
    by_own = []
    for func, calls, tottime, _cum in sorted(rows, key=lambda row: row[2], reverse=True)[:limit]:
        causes: dict[str, float] = {}
        attribute(func, tottime, causes)
        by_own.append(
            {
                "function": label(func), "calls": calls, "tottime_s": round(tottime, 3),
                "share_own": round(tottime / total, 3),
                "caused_by": {name: round(t, 3) for name, t in sorted(causes.items(), key=lambda kv: -kv[1])[:3]},
            }
        )  # fmt: skip
    by_cum = [
        {
            "function": label(func),
            "calls": calls,
            "cumtime_s": round(cumtime, 3),
            "share_cum": round(cumtime / total, 3),
        }
        for func, calls, _, cumtime in sorted(rows, key=lambda row: row[3], reverse=True)
        if ours(func)
    ][: limit + 8]
    return {"total_s": round(total, 3), "by_own_time": by_own, "package_by_cumulative": by_cum}
