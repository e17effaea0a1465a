"""`make ui` / `make stop`: a local Airflow UI on the demo's results, and stopping everything the demo left running.

``start`` runs the demo first when it has not run, then ``airflow standalone`` (api-server,
scheduler, dag-processor, triggerer; LocalExecutor on the demo's SQLite metadata database)
on this repository's dags and plugins and the demo's results database, in the background
(``.demo/ui.log``), on port 8080 unless it is taken; it prints the address, user and password.
``stop`` stops it (its whole process group) and the demo's embedded PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo

PID_FILE = demo.DEMO / "ui.pid"
PORT_FILE = demo.DEMO / "ui.port"
LOG_FILE = demo.DEMO / "ui.log"
PREFERRED_PORT = 8080
READY_TIMEOUT_S = 600  # a first start migrates nothing (the demo did) but a busy laptop is slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid(path: Path) -> int | None:
    """The pid recorded in ``path`` (first line) when that process still runs."""
    try:
        pid = int(path.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104  (taken on any interface: where the api-server binds)
        except OSError:
            return False
    return True


def _free_port() -> int:
    if _port_free(PREFERRED_PORT):
        return PREFERRED_PORT
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as response:
            health = json.load(response)
    except (OSError, ValueError):
        return False
    return health.get("metadatabase", {}).get("status") == "healthy"  # the UI answers; the scheduler follows


def _password() -> str:
    path = demo.DEMO / "airflow" / "simple_auth_manager_passwords.json.generated"
    try:
        return str(json.loads(path.read_text())["admin"])
    except (OSError, ValueError, KeyError):
        return f"(see {demo.shown(path)})"


def _print_access(port: int) -> None:
    print(
        f"Airflow UI: http://localhost:{port}/  user: admin  password: {_password()}\n"
        f"  DAG {demo.DAG_ID}: the demo's run of {demo.RUN_DATE}, its task logs; trigger runs on the sample data\n"
        f"  log: {demo.shown(LOG_FILE)}; `make stop` stops the UI and the embedded PostgreSQL"
    )


def start() -> int:
    if (pid := _pid(PID_FILE)) is not None:
        print(f"the UI is already running (pid {pid})")
        _print_access(int(PORT_FILE.read_text()))
        return 0
    dsn_file = demo.DEMO / demo.DSN_FILE
    if not dsn_file.exists() or not (demo.DEMO / "airflow" / "airflow.db").exists():
        print("no demo results yet: running `make demo` first")
        if demo.main() != 0:
            return 1
        print()
    dsn = dsn_file.read_text().strip()
    if str(demo.DEMO / "pg") in dsn:
        demo.embedded_postgres()  # stopped since the demo (`make stop`): start it again
    port = _free_port()
    if port != PREFERRED_PORT:
        print(f"port {PREFERRED_PORT} is taken: using {port}")
    env = {
        **demo.airflow_env(dsn),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "VEEAM_COLLECTOR": "replay",  # runs triggered in this UI score the bundled sample data
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # standalone starts its components as `airflow ...`: this interpreter's, also when the venv is not activated
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with LOG_FILE.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: `make stop` stops all of it
            cwd=demo.DEMO,
        )
    PID_FILE.write_text(str(process.pid))
    PORT_FILE.write_text(str(port))
    print(f"starting Airflow (standalone) on port {port} ...")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _ready(port):
        if process.poll() is not None or time.monotonic() > deadline:
            print(f"Airflow did not start; log: {demo.shown(LOG_FILE)}")
            _stop_ui()
            return 1
        time.sleep(2)
    _print_access(port)
    return 0


def _stop_ui() -> bool:
    pid = _pid(PID_FILE)
    PID_FILE.unlink(missing_ok=True)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.3)
    os.killpg(pid, signal.SIGKILL)
    return True


def _stop_postgres() -> bool:
    """Fast shutdown of the embedded PostgreSQL (SIGINT to its postmaster), waiting for it to exit."""
    pid = _pid(demo.DEMO / "pg" / "postmaster.pid")
    if pid is None:
        return False
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return True


def stop() -> int:
    print("Airflow UI: " + ("stopped" if _stop_ui() else "not running"))
    print("embedded PostgreSQL: " + ("stopped" if _stop_postgres() else "not running"))
    return 0


if __name__ == "__main__":
    commands = {"start": start, "stop": stop}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} start|stop")
    sys.exit(commands[sys.argv[1]]())
