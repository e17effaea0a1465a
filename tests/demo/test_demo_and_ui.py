"""`make ui` on a fresh checkout: it runs the demo (whose output is compared with a golden copy),
starts Airflow on the demo's results and prints how to log in; `make stop` stops all of it.

One real run of each (the demo, `airflow standalone`, the embedded PostgreSQL), in a
directory of the test's own (env ``VEEAM_DEMO_DIR``), with a shell's environment: no
AIRFLOW_* or VEEAM_* variables of the test session.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg
import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(1800)]  # one demo run and one Airflow start

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "demo_output.txt"
ACCESS = re.compile(r"Airflow UI: http://localhost:(\d+)/  user: (\S+)  password: (\S+)")


def _shell_env(demo_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VEEAM_", "PYTEST", "XDG_RUNTIME"))}
    return {**env, "VEEAM_DEMO_DIR": str(demo_dir)}


def _make(target: str, demo_dir: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target, f"VENV={sys.prefix}"],
        cwd=REPO, env=_shell_env(demo_dir), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def demo_part(stdout: str, demo_dir: Path) -> str:
    """The demo's own lines of `make ui`'s output, with the test's demo directory shown as `.demo`."""
    lines = stdout.replace(str(demo_dir), ".demo").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("results database:"))
    end = next(i for i, line in enumerate(lines) if line.startswith("  DAG log:"))
    return "\n".join(lines[start : end + 1]) + "\n"


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    demo_dir = tmp_path_factory.mktemp("demo")
    started = _make("ui", demo_dir, timeout=1500)
    try:
        yield demo_dir, started
    finally:
        _make("stop", demo_dir, timeout=120)


def test_make_ui_runs_the_demo_first_and_its_output_reads_well(ui):
    demo_dir, started = ui
    assert started.returncode == 0, started.stdout + started.stderr
    output = demo_part(started.stdout, demo_dir)
    if os.environ.get("VEEAM_UPDATE_GOLDEN"):
        GOLDEN.write_text(output, encoding="utf-8")
    assert output == GOLDEN.read_text(encoding="utf-8")
    assert "Warning" not in started.stdout + started.stderr  # no platform or library warnings


def test_golden_table_columns_line_up_with_wide_names():
    """Columns are aligned by terminal width: 東京 takes four columns, not two."""
    sys.path.insert(0, str(REPO / "scripts"))
    import demo

    lines = [line for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line.startswith("vbr01")]
    sessions_column = {demo.width(line[: line.index(" 36 ")]) for line in lines if " 36 " in line}
    assert lines and len(sessions_column) == 1, lines
    cjk = next(line for line in lines if "東京" in line)
    assert demo.width(cjk.split("  C  ")[0]) == demo.width(lines[0].split("  F  ")[0])


def test_make_ui_prints_a_login_that_works_and_make_stop_stops_everything(ui):
    demo_dir, started = ui
    match = ACCESS.search(started.stdout)
    assert match, started.stdout
    port, user, password = match.groups()
    token_request = urllib.request.Request(
        f"http://127.0.0.1:{port}/auth/token",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(token_request, timeout=30) as response:
        token = json.load(response)["access_token"]
    runs_request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2/dags/veeam_storage_efficiency/dagRuns",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(runs_request, timeout=30) as response:
        runs = json.load(response)["dag_runs"]
    assert [(run["logical_date"][:10], run["state"]) for run in runs] == [("2026-11-27", "success")]

    ui_pid = int((demo_dir / "ui.pid").read_text())
    results = (demo_dir / "results_dsn").read_text()
    psycopg.connect(results, connect_timeout=5).close()  # the embedded PostgreSQL the demo left running
    stopped = _make("stop", demo_dir, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert "Airflow UI: stopped" in stopped.stdout and "embedded PostgreSQL: stopped" in stopped.stdout
    with pytest.raises(ProcessLookupError):
        os.killpg(ui_pid, 0)  # the whole process group: api-server, scheduler, dag-processor, triggerer
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(results, connect_timeout=5).close()
