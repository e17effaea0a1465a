"""`make ui` / `make stop`: a local Airflow UI on the demo's results, and stopping everything the demo left running.

``start`` runs the demo first when it has not run, then ``airflow standalone`` (api-server,
scheduler, dag-processor, triggerer; LocalExecutor on the demo's SQLite metadata database)
on this repository's dags and plugins and the demo's results database, in the background
(``.demo/ui.log``), on port 8080 (env ``VEEAM_UI_PORT``) unless it is taken; it prints the
address, user and password once its own api-server answers on that port.
``stop`` stops it (its whole process group) and the demo's embedded PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo

PID_FILE = demo.DEMO / "ui.pid"
PORT_FILE = demo.DEMO / "ui.port"
LOG_FILE = demo.DEMO / "ui.log"
PREFERRED_PORT = int(os.environ.get("VEEAM_UI_PORT") or 8080)
READY_TIMEOUT_S = 600  # a first start migrates nothing (the demo did) but a busy laptop is slow
STOP_TIMEOUT_S = 60


def _process(path: Path, *marks: str) -> psutil.Process | None:
    """The process whose pid ``path`` records (first line), when it runs and its command line has ``marks``.

    A pid file outlives a crash or a reboot, and its pid may since belong to another program:
    the command line says whether it is still ours.
    """
    try:
        process = psutil.Process(int(path.read_text().split("\n", 1)[0]))
        command = " ".join(process.cmdline())
        running = process.status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, psutil.Error):
        return None
    return process if running and all(mark in command for mark in marks) else None


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


def _listener(port: int) -> int | None:
    """The pid listening on TCP ``port``, if any."""
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
            return connection.pid
    return None


def _ready(standalone: psutil.Process, port: int) -> bool:
    """Our api-server (not another program that took the port meanwhile) answers and reaches its database."""
    try:
        ours = {standalone.pid, *(child.pid for child in standalone.children(recursive=True))}
    except psutil.Error:
        return False
    listener = _listener(port)
    if listener is not None and listener not in ours:
        raise SystemExit(f"port {port} was taken by another program (pid {listener}) while Airflow started")
    if listener is None:
        return False
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
    if (running := _process(PID_FILE, "standalone")) is not None:
        print(f"the UI is already running (pid {running.pid})")
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
    _ensure_collector_pool(env)
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
    standalone = psutil.Process(process.pid)
    try:
        while not _ready(standalone, port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"Airflow did not start; log: {demo.shown(LOG_FILE)}")
            time.sleep(2)
    except SystemExit as failed:
        print(failed)
        _stop_ui()
        return 1
    _print_access(port)
    return 0


def _ensure_collector_pool(env: dict[str, str]) -> None:
    """Create the collector pool when missing (a demo made before it existed): runs triggered here check it."""
    from veeam_efficiency.settings import collector_pool, create_pool_argv

    airflow = [sys.executable, "-m", "airflow"]
    found = subprocess.run([*airflow, "pools", "get", collector_pool()], env=env, capture_output=True, check=False)
    if found.returncode != 0:
        subprocess.run([*airflow, *create_pool_argv()], env=env, capture_output=True, check=True)


def _stop_ui() -> bool:
    """Stop ``airflow standalone`` and every process under it; whether it was running.

    Its components share its process group, but a task runner takes a group of its own
    (the supervisor's ``setpgid``): the whole process tree is stopped, not only the group.
    """
    standalone = _process(PID_FILE, "standalone")
    PID_FILE.unlink(missing_ok=True)
    if standalone is None:
        return False
    with contextlib.suppress(psutil.Error):
        processes = [standalone, *standalone.children(recursive=True)]
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, alive = psutil.wait_procs(processes, timeout=STOP_TIMEOUT_S)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(alive, timeout=STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(standalone.pid, signal.SIGKILL)  # anything its group started after the snapshot
    return True


def _stop_postgres() -> bool:
    """Fast shutdown of the embedded PostgreSQL (SIGINT to its postmaster); whether it was running.

    Waits for it to exit; if a fast shutdown does not finish in time, an immediate one (SIGQUIT).
    """
    pg = demo.DEMO / "pg"
    postmaster = _process(pg / "postmaster.pid", "postgres", str(pg))
    if postmaster is None:
        return False
    for sig in (signal.SIGINT, signal.SIGQUIT):
        with contextlib.suppress(psutil.NoSuchProcess):
            postmaster.send_signal(sig)
        with contextlib.suppress(psutil.TimeoutExpired):
            postmaster.wait(timeout=STOP_TIMEOUT_S)
            return True
    raise SystemExit(f"the embedded PostgreSQL (pid {postmaster.pid}) does not stop; see {demo.shown(pg / 'log')}")


def stop() -> int:
    print("Airflow UI: " + ("stopped" if _stop_ui() else "not running"))
    print("embedded PostgreSQL: " + ("stopped" if _stop_postgres() else "not running"))
    return 0


if __name__ == "__main__":
    commands = {"start": start, "stop": stop}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} start|stop")
    sys.exit(commands[sys.argv[1]]())
