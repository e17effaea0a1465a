"""Fixtures for the collector tests: the stand-in pwsh, a real OpenSSH server, SSH hooks.

No PowerShell and no VBR server here: ``fake_pwsh.py`` is installed as an executable
``pwsh`` that checks its arguments and replays tests/fixtures/collector_output_small.json
(or fails in a chosen way). The sshd is a throwaway instance on a free loopback port with
its own host key, started once per session.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
FIXTURE = HERE.parent / "fixtures" / "collector_output_small.json"
SSHD = Path("/usr/sbin/sshd")


@dataclass
class FakePwsh:
    """An installed stand-in: ``path`` to pass as pwsh, and what it recorded."""

    path: Path
    record_path: Path

    def recorded(self) -> dict[str, Any]:
        return json.loads(self.record_path.read_text())


@pytest.fixture
def fake_pwsh(tmp_path: Path) -> Callable[..., FakePwsh]:
    """Factory: install the stand-in in a fresh bin dir, behaving as ``mode`` says."""

    def install(mode: str, **options: Any) -> FakePwsh:
        bin_dir = tmp_path / f"bin-{uuid.uuid4().hex[:8]}"
        bin_dir.mkdir()
        path = bin_dir / "pwsh"
        path.write_text(f"#!{sys.executable}\n" + (HERE / "fake_pwsh.py").read_text())
        path.chmod(0o755)
        record = bin_dir / "argv.json"
        control = {"mode": mode, "fixture": str(FIXTURE), "record": str(record), **options}
        Path(f"{path}.control.json").write_text(json.dumps(control))
        return FakePwsh(path, record)

    return install


@pytest.fixture
def collector_script(tmp_path: Path) -> Path:
    """A stand-in for include/get_efficiency_data.ps1 (the stand-in pwsh never runs it)."""
    script = tmp_path / "get_efficiency_data.ps1"
    script.write_text("param([string]$From, [string]$To, [string]$JobNameBase64)\n# test stand-in\n")
    return script


# --- a real OpenSSH server -------------------------------------------------------------


@dataclass
class SshServer:
    port: int
    root: Path
    client_key: Path  # authorized
    stranger_key: Path  # not authorized
    host_public_key: str  # "ssh-ed25519 AAAA..."
    other_host_public_key: str  # a key the server does not have
    log: Path
    login: str  # the account running the tests (root here), and its login directory
    home: Path


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_banner(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                if conn.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd did not answer on port {port}:\n{log.read_text()}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A throwaway sshd on 127.0.0.1 and 127.0.0.2 (two VBR hosts) for the current account (root here), one test key only."""
    if not SSHD.exists() or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server not installed: apt-get install -y openssh-server")
    root = tmp_path_factory.mktemp("sshd")
    host_public_key = _keygen(root / "host_key")
    other_host_public_key = _keygen(root / "other_host_key")
    _keygen(root / "client_key")
    _keygen(root / "stranger_key")
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    port = _free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nListenAddress 127.0.0.2\nHostKey {root / 'host_key'}\nPidFile none\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "Subsystem sftp internal-sftp\nMaxStartups 100\nLogLevel VERBOSE\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir sshd insists on
    account = pwd.getpwuid(os.geteuid())
    log = root / "sshd.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=log_file)
    try:
        _wait_for_banner(port, process, log)
        yield SshServer(
            port,
            root,
            root / "client_key",
            root / "stranger_key",
            host_public_key,
            other_host_public_key,
            log,
            account.pw_name,
            Path(account.pw_dir),
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def ssh_hook(sshd: SshServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Factory: an SSHHook built as Airflow does, from an AIRFLOW_CONN_<ID> JSON connection."""
    from airflow.providers.ssh.hooks.ssh import SSHHook

    def build(*, key_file: Path | None = None, host_key: str | None = "server", **extra: Any) -> SSHHook:
        """``host_key="server"``: the server's real key; ``None``: no host_key extra at all."""
        conn_id = f"vbr_test_{uuid.uuid4().hex[:12]}"  # fresh id: no cached connection
        options: dict[str, Any] = {
            "key_file": str(key_file or sshd.client_key),
            "look_for_keys": "false",  # only the key under test, not ~/.ssh/id_*
            **extra,
        }
        if host_key is not None:
            options["host_key"] = sshd.host_public_key if host_key == "server" else host_key
        connection = {"conn_type": "ssh", "host": "127.0.0.1", "port": sshd.port, "login": sshd.login, "extra": options}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        # one attempt: the provider's default of 3 sleeps 3-5 s between refused attempts
        return SSHHook(ssh_conn_id=conn_id, conn_retry_attempts=1)

    return build
