"""A private, throwaway PostgreSQL server for fault tests (stop it, kill it, start it again).

The fault tests must stop or kill PostgreSQL in the middle of a write. Doing that to the
shared server on 5432 would break every other test (and the Airflow metadata database),
so they get their own cluster: ``initdb`` in a temporary directory, run as the
``postgres`` OS user when the tests run as root (PostgreSQL refuses to run as root), on a
free loopback port, trust auth.

Each cluster's directory records the test process that owns it (``owner.pid``): a run
that was killed cannot stop its clusters, so the next run stops and removes every cluster
whose owner is gone (:func:`stop_orphaned_clusters`, called when pytest starts).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg

PREFIX = "veeam-pg-"
OWNER_FILE = "owner.pid"
LEGACY_AGE_S = 3600  # a directory from before owner.pid: orphaned once this old

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateCluster:
    """One PostgreSQL server of our own: ``start``, ``stop`` (fast shutdown), ``kill`` (SIGKILL)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        self.data = self.root / "data"
        self.port = _free_port()
        self.log = self.root / "server.log"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "fsync = on\nmax_connections = 40\nshared_buffers = 64MB\n"
            )

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        _run_as(self._user, self.root, *argv)

    def start(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        deadline = time.monotonic() + 60
        while True:  # pg_ctl -w waits for the socket; recovery after a kill may take a moment more
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        """A fast shutdown: open transactions are rolled back, connections dropped."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend, as a crash or an OOM kill would."""
        pid = self.postmaster_pid()
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for victim in [pid, *map(int, children)]:
            with suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        for _ in range(100):  # the backends exit once their postmaster is gone
            if not subprocess.run(["pgrep", "-P", str(pid)], capture_output=True).stdout:
                break
            time.sleep(0.05)

    def is_running(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except RuntimeError:
                self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _run_as(user: str | None, cwd: Path, *argv: str) -> None:
    command = ["runuser", "-u", user, "--", *argv] if user else list(argv)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _orphaned(root: Path) -> bool:
    try:
        return not _alive(int((root / OWNER_FILE).read_text()))
    except (OSError, ValueError):  # no owner recorded: a directory of an older test run
        try:
            return time.time() - root.stat().st_mtime > LEGACY_AGE_S
        except OSError:
            return False


def stop_orphaned_clusters(temp_dir: Path | None = None) -> list[Path]:
    """Stop (immediate shutdown) and remove the private clusters whose test process is gone; their roots."""
    stopped = []
    for root in sorted(Path(temp_dir or tempfile.gettempdir()).glob(f"{PREFIX}*")):
        if not root.is_dir() or not _orphaned(root):
            continue
        data = root / "data"
        if (data / "postmaster.pid").exists():
            user = "postgres" if os.geteuid() == 0 else None
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                _run_as(user, root, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
        stopped.append(root)
    return stopped


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A started private cluster, destroyed afterwards whatever happened to it."""
    cluster = PrivateCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
