"""The package's layers: only veeam_efficiency.airflow imports Airflow."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import veeam_efficiency

PACKAGE = Path(veeam_efficiency.__file__).parent
# the old home of the notifiers: resolves its names from veeam_efficiency.airflow on first use
COMPATIBILITY_SHIMS = {"veeam_efficiency.notifications"}


def _modules() -> dict[str, Path]:
    found = {"veeam_efficiency": PACKAGE / "__init__.py"}
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="veeam_efficiency."):
        path = Path(info.module_finder.path) / info.name.rsplit(".", 1)[-1]  # type: ignore[union-attr]
        found[info.name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return found


def _airflow_free() -> list[str]:
    return sorted(name for name in _modules() if not name.startswith("veeam_efficiency.airflow"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_layers_are_found() -> None:
    modules = _modules()
    assert {"veeam_efficiency.airflow.notifiers", "veeam_efficiency.airflow.errors"} <= set(modules)
    assert {"veeam_efficiency.pipeline", "veeam_efficiency.storage", "veeam_efficiency.tables"} <= set(modules)


def test_no_module_outside_the_airflow_layer_imports_airflow_even_late() -> None:
    """Also the imports inside functions: a late import is still a dependency."""
    offenders = {
        name: sorted(
            module
            for module in _imports(_modules()[name])
            if module.split(".")[0] == "airflow" or module.startswith("veeam_efficiency.airflow")
        )
        for name in _airflow_free()
        if name not in COMPATIBILITY_SHIMS
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_importing_every_airflow_free_module_leaves_airflow_unimported() -> None:
    """In a fresh interpreter, where nothing else has imported Airflow yet."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {_airflow_free()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"},
        timeout=540,  # a hang guard, not a speed check: importing pandas and scipy on a loaded machine is slow
    )
    assert json.loads(done.stdout) == []


def test_old_import_paths_still_resolve() -> None:
    """README and stored Deadline Alert callbacks name veeam_efficiency.notifications.* ."""
    script = (
        "from veeam_efficiency import notifications\n"
        "from veeam_efficiency.airflow import notifiers as moved\n"
        "from veeam_efficiency.flagged_jobs import job_scorecards\n"
        "assert notifications.TaskFailureAlert is moved.TaskFailureAlert\n"
        "assert notifications.RunDeadlineMissed is moved.RunDeadlineMissed\n"
    )
    subprocess.run(
        [sys.executable, "-c", script], check=True, env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"}
    )
