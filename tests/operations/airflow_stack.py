"""A real, private Airflow for tests that need the scheduler: api-server, dag-processor, scheduler.

Each stack has its own AIRFLOW_HOME and metadata database (never the session ``airflow_db``,
whose in-process ``dag.test`` runs a scheduler here would interfere with), LocalExecutor,
and the execution API on a free loopback port. Every process is started by us, logged to
a file under the home, and stopped by its own pid in :meth:`AirflowStack.stop`.

With ``celery_workers=N`` it runs the CeleryExecutor instead, as docker-compose.yaml does:
N ``airflow celery worker`` processes (``w1@%h`` ...), the broker on a Redis database index
of the stack's own (flushed at start and stop), the result backend in the stack's metadata
database, prefetch 1. Each worker reports its own name as the task instances' hostname
(``[core] hostname_callable``), as workers on separate machines or pods would.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg

DAG_ID = "veeam_storage_efficiency"
REPO = Path(__file__).resolve().parents[2]
# the same server tests/conftest.py uses (not imported: a second import of it would reset the env)
PG_ADMIN_DSN = os.environ.get("VEEAM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("VEEAM_TEST_REDIS_URL", "redis://127.0.0.1:6379")
WORKER_NAME_ENV = "VEEAM_TEST_WORKER_NAME"


def worker_name() -> str:
    """``[core] hostname_callable`` of the stack: a Celery worker's name, else the machine's."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


def create_database(name: str) -> str:
    """Create (or re-create) database ``name``; its DSN."""
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"


def drop_database(name: str) -> None:
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowStack:
    def __init__(
        self, extra_env: dict[str, str], *, celery_workers: int = 0, worker_concurrency: int = 1, redis_db: int = 13
    ) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="veeam-airflow-stack-"))
        self.db_name = f"veeam_test_stack_{uuid.uuid4().hex[:12]}"
        self.db_dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{self.db_name}"
        self.broker_url = f"{REDIS_URL}/{redis_db}"
        self.workers = [f"w{number}" for number in range(1, celery_workers + 1)]
        self.worker_concurrency = worker_concurrency
        celery = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.db_dsn}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",  # a busy worker takes no task it cannot start
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_name",
        }
        port = _free_port()
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",  # 2 shared cores
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_dsn.replace("postgresql://", "postgresql+psycopg://"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # only runs we ask for: no catch-up or latest-interval run when the DAG is unpaused
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
            **(celery if celery_workers else {}),
            **extra_env,
        }
        self.port = port
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: list[subprocess.Popen[bytes]] = []

    # --- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        from veeam_efficiency.settings import create_pool_argv

        create_database(self.db_name)
        self.cli("db", "migrate", timeout=600)
        self.cli(*create_pool_argv(self.env.get("VEEAM_COLLECTOR_POOL")))  # as `make ui` and compose's init do
        if self.workers:
            self.flush_broker()
        for name, argv in {
            "api-server": ["api-server", "--apps", "execution", "-H", "127.0.0.1", "-p", str(self.port), "-w", "1"],
            "dag-processor": ["dag-processor"],
            "scheduler": ["scheduler"],
        }.items():
            self._spawn(name, argv)
        for worker in self.workers:
            self.start_worker(worker)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with (self.home / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *argv],
                env=env or self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its children
            )

    def start_worker(self, worker: str) -> None:
        """``airflow celery worker`` named ``worker@<host>``; no log server (two on one machine would share its port)."""
        argv = ["celery", "worker", "--celery-hostname", f"{worker}@%h", "--concurrency", str(self.worker_concurrency)]
        self._spawn(f"worker-{worker}", [*argv, "--skip-serve-logs"], {**self.env, WORKER_NAME_ENV: worker})

    def kill_worker(self, worker: str) -> None:
        """SIGKILL the worker's whole process group: the Celery worker, its pool processes and their task runners."""
        process = self.processes.pop(f"worker-{worker}")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self.killed.append(process)

    def flush_broker(self) -> None:
        import redis

        client = redis.Redis.from_url(self.broker_url)
        try:
            client.flushdb()
        finally:
            client.close()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in [*self.processes.values(), *self.killed]:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with suppress(ProcessLookupError):  # whatever is left of the group (task runners)
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        try:
            if self.workers:
                self.flush_broker()
        finally:
            drop_database(self.db_name)
            shutil.rmtree(self.home, ignore_errors=True)

    # --- helpers --------------------------------------------------------------------
    def cli(self, *argv: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *argv], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}\n{self.diagnostics()}"
            )
        return result.stdout

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_dsn, autocommit=True) as conn:
            return conn.execute(statement, params).fetchall()

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited with {process.returncode}\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{self.diagnostics()}")
            time.sleep(1)

    def diagnostics(self, lines: int = 40) -> str:
        """The tail of each component's log and of the newest task logs, for a failure message."""
        parts = []
        for name in self.processes:
            parts.append(f"--- {name}.log (tail) ---\n{_tail(self.home / f'{name}.log', lines)}")
        task_logs = sorted((self.home / "logs").rglob("*.log"), key=lambda path: path.stat().st_mtime)[-3:]
        parts += [f"--- {path.relative_to(self.home)} (tail) ---\n{_tail(path, lines)}" for path in task_logs]
        return "\n".join(parts)


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def airflow_stack(extra_env: dict[str, str], **options: Any) -> Iterator[AirflowStack]:
    """A started stack (``options``: see :class:`AirflowStack`); every process stopped and the metadata database dropped afterwards."""
    stack = AirflowStack(extra_env, **options)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
