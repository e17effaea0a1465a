"""A real ``airflow api-server`` with this repository's plugins, as tests/operations/airflow_stack.py starts one.

It shares the test session's migrated metadata database (no scheduler runs, so nothing
interferes with the in-process ``dag.test`` runs of other tests), has its own AIRFLOW_HOME,
JWT secret and simple-auth-manager users with known passwords, logs to a file under the
home, and is stopped by its own process group.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.operations.airflow_stack import _free_port, _tail

USERS = {"admin": ("admin", secrets.token_urlsafe(12)), "viewer": ("viewer", secrets.token_urlsafe(12))}


@contextmanager
def api_server(airflow_env: dict[str, str], extra_env: dict[str, str]) -> Iterator[str]:
    """Start the api-server; yields its base URL once it answers. Users: USERS (name -> (role, password))."""
    home = Path(tempfile.mkdtemp(prefix="veeam-ui-airflow-"))
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({name: password for name, (_, password) in USERS.items()}))
    port = _free_port()
    env = {
        **os.environ,
        **airflow_env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:{role}" for name, (role, _) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "PYTHONPATH": str(Path(airflow_env["AIRFLOW__CORE__PLUGINS_FOLDER"])),
        **extra_env,
    }
    log = home / "api-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise AssertionError(f"api-server exited with {process.returncode}:\n{_tail(log, 60)}")
            try:
                with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"api-server did not answer in 180 s:\n{_tail(log, 60)}") from None
                time.sleep(1)
        yield base
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:  # uvicorn waits for open connections on SIGTERM; the test has nothing left to say to it
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)
