"""A large server through the DAG with XComs in object storage: ``python -m bench.xcom_payload``.

Runs ``airflow dags test`` (a real Airflow process, so the XCom backend is configured the
way a deployment configures it: by environment, read at Airflow import) over one replayed
document of ``--sessions`` sessions, with ``XComObjectStorageBackend`` writing every XCom
above the threshold under ``file://<AIRFLOW_HOME>/xcom``. Measures the metadata database
(the ``xcom`` table and the whole database) before and after, and the objects written.
Default 200,000 sessions (about 2-4 minutes); tests/operations/test_xcom_object_storage.py
runs the same at a size that suits the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DAGS, PLUGINS, REPO, WINDOW_END, drop_database, new_database, write_generated

DAG_ID = "veeam_storage_efficiency"
XCOM_BACKEND = "airflow.providers.common.io.xcom.backend.XComObjectStorageBackend"
THRESHOLD = 65_536  # bytes of JSON: scorecards of a few jobs stay in the database, session tables do not


def xcom_env(home: Path) -> dict[str, str]:
    """The XCom settings of a local deployment (README: "Large servers: XCom in object storage")."""
    return {
        "AIRFLOW__CORE__XCOM_BACKEND": XCOM_BACKEND,
        "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH": f"file://{home / 'xcom'}",
        "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_THRESHOLD": str(THRESHOLD),
        "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_COMPRESSION": "zstd",
    }


def _sizes(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size('xcom'), pg_database_size(current_database()), "
            "(SELECT count(*) FROM xcom), (SELECT coalesce(sum(pg_column_size(value)), 0) FROM xcom)"
        ).fetchone()
    assert row is not None
    return {"xcom_table_bytes": row[0], "database_bytes": row[1], "xcom_rows": row[2], "xcom_values_bytes": row[3]}


def _unpacked_bytes(path: Path) -> int:
    """An object's JSON size, read through fsspec's codec as the XCom backend reads it."""
    import fsspec

    with fsspec.open(str(path), compression="zstd") as unpacked:
        return len(unpacked.read())


def run_payload(sessions: int, jobs: int, home: Path, *, object_storage: bool = True) -> dict[str, Any]:
    """One ``airflow dags test`` over ``sessions`` sessions; the figures (see the module doc).

    ``object_storage=False`` runs with Airflow's default XCom backend, for comparison.
    """
    import psycopg

    replay = home / "replay"
    replay.mkdir(parents=True, exist_ok=True)
    document = write_generated(replay / "vbr-large.json", sessions, jobs, host="vbr-large.example.local")
    meta, meta_dsn = new_database("veeam_bench_xcom_meta")
    results, results_dsn = new_database("veeam_bench_xcom_results")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_dsn.replace("postgresql://", "postgresql+psycopg://"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW_CONN_POSTGRES_DEFAULT": results_dsn,
        "VEEAM_REPLAY_DIR": str(replay),
        "VEEAM_COLLECTOR": "replay",  # the product has no default collector: a deployment chooses one
        "PYTHONPATH": str(PLUGINS),
        "VEEAM_RUN_DEADLINE_MINUTES": "0",  # `airflow dags test` of Airflow 3.3.2 fails on a DAG with a deadline
        **(xcom_env(home) if object_storage else {}),
    }
    try:
        airflow = [sys.executable, "-m", "airflow"]
        subprocess.run([*airflow, "db", "migrate"], env=env, capture_output=True, check=True, timeout=900)
        from veeam_efficiency.settings import create_pool_argv  # the DAG's first task checks the pool

        subprocess.run([*airflow, *create_pool_argv()], env=env, capture_output=True, check=True, timeout=300)
        before = _sizes(meta_dsn)
        start = time.perf_counter()
        test = subprocess.run(
            [*airflow, "dags", "test", DAG_ID, WINDOW_END.isoformat()],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        wall = time.perf_counter() - start
        after = _sizes(meta_dsn)
        with psycopg.connect(meta_dsn) as conn:
            states = dict(
                conn.execute("SELECT task_id, state FROM task_instance WHERE dag_id = %s", (DAG_ID,)).fetchall()
            )
            rows = conn.execute(
                "SELECT task_id, key, map_index, value::text FROM xcom ORDER BY task_id, key"
            ).fetchall()
            rendered = conn.execute(
                "SELECT task_id, map_index, rendered_fields::text FROM rendered_task_instance_fields WHERE dag_id = %s",
                (DAG_ID,),
            ).fetchall()
        references = [row[3] for row in rows]
        with psycopg.connect(results_dsn) as conn:
            history_rows = conn.execute("SELECT count(*) FROM feature3.storage_efficiency_history").fetchone()
        objects = sorted((home / "xcom").rglob("*.zst"))
        return {
            "sessions": sessions,
            "jobs": jobs,
            "document_bytes": document.stat().st_size,
            "dags_test_returncode": test.returncode,
            "dags_test_output_bytes": len(test.stdout.encode()) + len(test.stderr.encode()),  # task logs included
            "dags_test_tail": (test.stdout + test.stderr)[-3000:] if test.returncode else "",
            "wall_s": round(wall, 1),
            "task_states": states,
            "history_rows": history_rows[0] if history_rows else None,
            "before": before,
            "after": after,
            "objects": [str(path.relative_to(home / "xcom")) for path in objects],
            "objects_compressed_bytes": sum(path.stat().st_size for path in objects),
            "payload_bytes": sum(_unpacked_bytes(path) for path in objects),
            "xcom_references": references,
            "xcom_keys": [f"{task}[{index}] {key}" for task, key, index, _ in rows],
            "xcom_root": f"file://{home / 'xcom'}",
            # what each task's arguments became for the UI's Rendered Template view (Airflow truncates long ones)
            "rendered_fields": {f"{task}[{index}]" if index >= 0 else task: text for task, index, text in rendered},
        }
    finally:
        drop_database(results)
        drop_database(meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--compare", action="store_true", help="also run with the default (database) XCom backend")
    args = parser.parse_args()
    for object_storage in (True, False) if args.compare else (True,):
        with tempfile.TemporaryDirectory(prefix="veeam-xcom-bench-") as home:
            figures = run_payload(args.sessions, args.jobs, Path(home), object_storage=object_storage)
        growth = {key: figures["after"][key] - figures["before"][key] for key in figures["before"]}
        label = "object storage" if object_storage else "default backend (metadata database)"
        print(f"--- XCom: {label}")
        print(json.dumps({**figures, "xcom_references": figures["xcom_references"][:3], "growth": growth}, indent=2))


if __name__ == "__main__":
    main()
