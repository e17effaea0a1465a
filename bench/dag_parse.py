"""DAG-file import cost, as the dag-processor pays it: a fresh interpreter per measurement.

(a) ``import airflow.sdk`` alone; (b) ``import airflow.sdk`` and then exec of
dags/veeam_storage_efficiency.py. The DAG file's own cost is (b) - (a), and is also
timed directly inside (b). Also lists which heavy modules the DAG file pulled in.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from bench.common import DAGS, PLUGINS, REPO

HEAVY = ("pandas", "numpy", "scipy", "pyarrow", "psycopg", "psycopg2", "paramiko", "veeam_efficiency")
DAG_FILE = DAGS / "veeam_storage_efficiency.py"

SNIPPET = """
import time; t = time.perf_counter()
import json, sys
import airflow.sdk
t_sdk = time.perf_counter() - t
before = {{name.split(".")[0] for name in sys.modules}}
if {with_dag}:
    import importlib.util
    spec = importlib.util.spec_from_file_location("veeam_storage_efficiency", {dag_file!r})
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
total = time.perf_counter() - t
added = sorted({{name.split(".")[0] for name in sys.modules}} - before - {{"veeam_storage_efficiency"}})
print(json.dumps({{"total_s": total, "sdk_s": t_sdk, "dag_only_s": total - t_sdk, "new_top_level_modules": added,
                  "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def airflow_env(home: str) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def one(with_dag: bool, env: dict[str, str]) -> dict[str, Any]:
    code = SNIPPET.format(with_dag=with_dag, dag_file=str(DAG_FILE), heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"DAG import failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(runs: int = 7) -> dict[str, Any]:
    """Median of ``runs`` fresh imports, alternating (a) and (b) so drift hits both alike."""
    with tempfile.TemporaryDirectory(prefix="veeam-bench-airflow-") as home:
        env = airflow_env(home)
        one(True, env)  # warm the OS page cache and __pycache__; not counted
        sdk, full = [], []
        for _ in range(runs):
            sdk.append(one(False, env))
            full.append(one(True, env))
    return {
        "runs": runs,
        "sdk_median_s": statistics.median(r["total_s"] for r in sdk),
        "sdk_plus_dag_median_s": statistics.median(r["total_s"] for r in full),
        "dag_in_process_median_s": statistics.median(r["dag_only_s"] for r in full),
        "heavy_after_sdk": sdk[-1]["heavy"],
        "heavy_after_dag": full[-1]["heavy"],
        "dag_new_top_level_modules": full[-1]["new_top_level_modules"],
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))
