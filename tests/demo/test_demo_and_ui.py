"""`make ui` on a fresh checkout: it runs the demo (whose output is compared with a golden copy),
starts Airflow on the demo's results and prints how to log in; `make stop` stops all of it.

One real run of each (the demo, `airflow standalone`, the embedded PostgreSQL), in a
directory of the test's own (env ``VEEAM_DEMO_DIR``), with a shell's environment: no
AIRFLOW_* or VEEAM_* variables of the test session. The demo's run is a user's first
command: the stock ``airflow dags test`` of the DAG as shipped, no collector or deadline in
the environment, only the run's conf choosing the collector; it must exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(1800)]  # one demo run and one Airflow start

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "demo_output.txt"
ACCESS = re.compile(r"Airflow UI: http://localhost:(\d+)/  user: (\S+)  password: (\S+)")


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Not 8080: another Airflow on this machine (a user's, a parallel run's) may start there at any moment.
UI_PORT = _unused_port()


def _shell_env(demo_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VEEAM_", "PYTEST", "XDG_RUNTIME"))}
    return {**env, "VEEAM_DEMO_DIR": str(demo_dir), "VEEAM_UI_PORT": str(UI_PORT)}


def _make(target: str, demo_dir: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    """``make <target>``; on timeout, a failed result with the output so far (the fixture still stops all)."""
    command = ["make", "--no-print-directory", target, f"VENV={sys.prefix}"]
    with subprocess.Popen(
        command, cwd=REPO, env=_shell_env(demo_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    ) as make:  # fmt: skip
        try:
            stdout, stderr = make.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)  # make and the script it runs
            stdout, stderr = make.communicate()
            stderr += f"\n`make {target}` did not finish in {timeout} s"
    return subprocess.CompletedProcess(command, make.returncode, stdout, stderr)


def processes_of(demo_dir: Path) -> list[str]:
    """Every running process started for this demo directory (its environment names it)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "environ"]):
        if (process.info["environ"] or {}).get("VEEAM_DEMO_DIR") == str(demo_dir):
            found.append(f"{process.info['pid']}: {' '.join(process.info['cmdline'] or [])}")
    return found


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def demo_part(stdout: str, demo_dir: Path) -> str:
    """The demo's own lines of `make ui`'s output, with the test's demo directory shown as `.demo`."""
    lines = stdout.replace(str(demo_dir), ".demo").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("results database:"))
    end = next(i for i, line in enumerate(lines) if line.startswith("  DAG log:"))
    return "\n".join(lines[start : end + 1]) + "\n"


@pytest.fixture(scope="module")
def ui():  # type: ignore[no-untyped-def]
    # Not under pytest's basetemp: the embedded PostgreSQL runs as another OS user (pgserver, when
    # the tests run as root) and needs to traverse the path to its data directory; any pytest
    # starting on this machine resets /tmp/pytest-of-<user> to 0700, and the server then dies.
    demo_dir = Path(tempfile.mkdtemp(prefix="veeam-demo-"))
    demo_dir.chmod(0o755)
    try:
        yield demo_dir, _make("ui", demo_dir, timeout=1500)
    finally:
        _make("stop", demo_dir, timeout=300)  # whatever happened: nothing keeps running
        shutil.rmtree(demo_dir, ignore_errors=True)


def test_make_ui_runs_the_demo_first_and_its_output_reads_well(ui):
    demo_dir, started = ui
    assert started.returncode == 0, started.stdout + started.stderr
    output = demo_part(started.stdout, demo_dir)
    if os.environ.get("VEEAM_UPDATE_GOLDEN"):
        GOLDEN.write_text(output, encoding="utf-8")
    assert output == GOLDEN.read_text(encoding="utf-8")
    assert "Warning" not in started.stdout + started.stderr  # no platform or library warnings


def test_the_stock_dags_test_cli_of_the_shipped_dag_exits_0(ui):
    demo_dir, started = ui
    assert started.returncode == 0, started.stdout + started.stderr  # the demo fails on a non-zero exit
    log = (demo_dir / "dag_test.log").read_text()
    assert "state=success" in log and "Traceback" not in log, log[-5000:]


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
    # the Storage efficiency view (this repository's plugin) over the demo's results
    estate_request = urllib.request.Request(
        f"http://127.0.0.1:{port}/veeam-efficiency/api/estate", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(estate_request, timeout=60) as response:
        estate = json.load(response)
    assert estate["analysis_date"] == "2026-11-26" and estate["totals"]["jobs_scored"] > 0
    assert {host["vbr_host"] for host in estate["hosts"]} == {"vbr01.example.local", "vbr02.example.local"}
    assert {host["dag_run_id"] for host in estate["hosts"]} == {runs[0]["dag_run_id"]}
    assert estate["unscored_jobs"]["available"] and estate["totals"]["jobs_unscored"] > 0

    ui_pid = int((demo_dir / "ui.pid").read_text())
    running = processes_of(demo_dir)
    assert any("standalone" in line for line in running) and any("postgres" in line for line in running), running
    results = (demo_dir / "results_dsn").read_text()
    psycopg.connect(results, connect_timeout=5).close()  # the embedded PostgreSQL the demo left running
    stopped = _make("stop", demo_dir, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert "Airflow UI: stopped" in stopped.stdout and "embedded PostgreSQL: stopped" in stopped.stdout
    with pytest.raises(ProcessLookupError):
        os.killpg(ui_pid, 0)  # the whole process group: api-server, scheduler, dag-processor, triggerer
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(results, connect_timeout=5).close()
    assert processes_of(demo_dir) == []  # no component, task runner or PostgreSQL backend left
    assert not port_open(int(port))

    again = _make("stop", demo_dir, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "Airflow UI: not running" in again.stdout and "embedded PostgreSQL: not running" in again.stdout
