"""Loading the plugin (every task runner does, for macros) costs no FastAPI, pandas or database import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, airflow.sdk\n"
        "before = set(sys.modules)\n"
        "import storage_efficiency_view\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new & {'fastapi', 'pandas', 'psycopg', 'numpy', 'starlette'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO / "plugins")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
