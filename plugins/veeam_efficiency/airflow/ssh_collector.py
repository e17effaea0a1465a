"""Run the collector script on the VBR server over SSH, through an Airflow SSHHook.

The script is copied by SFTP to a unique name in the remote account's login directory,
run there, and removed again. The command line is built only from tokens of a safe
alphabet (pwsh path, uuid file name, UTC times, base64), so whichever shell the server
uses (sh, cmd.exe, PowerShell) has nothing to interpret. Host keys are always verified
(known_hosts or the connection's ``host_key`` extra): a connection that turns verification
off is refused.

The command runs under a wall-clock limit (``_run_with_deadline``); its stderr lines
(progress, the script's heartbeat) are logged as they arrive, its stdout (the document) is not.
"""

from __future__ import annotations

import logging
import re
import selectors
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import Unpack

from veeam_efficiency.collectors.errors import CollectorConfigError, CollectorError, check_output, stderr_tail
from veeam_efficiency.collectors.local import DEFAULT_PWSH, DEFAULT_TIMEOUT_S, ScriptOptions, script_arguments

if TYPE_CHECKING:
    from airflow.providers.ssh.hooks.ssh import SSHHook

log = logging.getLogger(__name__)

# A bare name on PATH or a path without spaces (POSIX or Windows); never starts with "-".
PWSH_PATTERN = re.compile(r"[A-Za-z0-9_./:\\][A-Za-z0-9_./:\\-]{0,259}")
# Everything that may appear on the remote command line: paths, uuid, ISO times, base64.
SAFE_TOKEN = re.compile(r"[A-Za-z0-9_./:\\+=-]+")


def remote_command(pwsh: str, remote_name: str, arguments: Sequence[str]) -> str:
    """The command line to run; refuses any token outside the safe alphabet."""
    if not PWSH_PATTERN.fullmatch(pwsh):
        raise ValueError(
            f"pwsh {pwsh!r} is not a plain command name or space-free path "
            f"(allowed: letters, digits, _ . / : \\ -); put pwsh on PATH or use a path without spaces"
        )
    tokens = [pwsh, "-NoProfile", "-NonInteractive", "-File", remote_name, *arguments]
    unsafe = [token for token in tokens if not SAFE_TOKEN.fullmatch(token)]
    if unsafe:
        raise ValueError(f"refusing to send unsafe token(s) on the SSH command line: {unsafe!r}")
    return " ".join(tokens)


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors a retry may fix. Imported late: paramiko and the providers are not needed at DAG parse time."""
    import paramiko
    from airflow.providers.common.compat.sdk import AirflowException

    return (AirflowException, paramiko.SSHException, OSError, EOFError)


def run_remote_script(
    hook: SSHHook,
    script: Path,
    window_start: datetime,
    window_end: datetime,
    job_names: Sequence[str] = (),
    **options: Unpack[ScriptOptions],
) -> str:
    """Run ``script`` on the hook's host and return its stdout (one JSON object).

    ``timeout_s`` is a wall-clock limit: the command's channel is closed once it has run
    that long, however busy its heartbeat on stderr keeps it (the hook's own timeout only
    counts silence, which the heartbeat resets). Raises CollectorError on a non-zero exit,
    a timeout, empty or non-JSON stdout, or any SSH/SFTP failure (refused host key, failed
    authentication, reset connection); CollectorConfigError for a connection that turns host
    key verification off.
    """
    pwsh, timeout_s = options.get("pwsh", DEFAULT_PWSH), options.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not script.is_file():
        raise FileNotFoundError(f"collector script {script} does not exist")
    remote_name = f"veeam_efficiency_{uuid.uuid4().hex}.ps1"
    arguments = script_arguments(
        window_start,
        window_end,
        job_names,
        allow_full_session_scan=options.get("allow_full_session_scan", False),
        diagnose=options.get("diagnose", False),
    )
    command = remote_command(pwsh, remote_name, arguments)
    _refuse_unverified_host_keys(hook)
    where = f"{hook.username}@{hook.remote_host}:{hook.port}"
    transient = _transient_errors()
    try:
        client = hook.get_conn()
    except transient as exc:
        raise CollectorError(f"cannot open SSH connection to {where}: {_describe(exc)}") from exc
    try:
        exit_code, stdout, stderr = _copy_run_remove(hook, client, script, remote_name, command, timeout_s, where)
    except transient as exc:
        raise CollectorError(f"SSH session with {where} failed: {_describe(exc)}") from exc
    finally:
        client.close()
    return check_output(exit_code, stdout, stderr, where)


def _refuse_unverified_host_keys(hook: SSHHook) -> None:
    """Fail (no retry) on a connection that accepts any host key: whoever answers would get the credentials."""
    if hook.no_host_key_check or hook.allow_host_key_change:
        raise CollectorConfigError(
            f"SSH connection {hook.ssh_conn_id!r} turns host key verification off (no_host_key_check or "
            "allow_host_key_change), so any server could answer for the VBR host; remove that extra and pin the "
            "key instead (host_key extra or the worker's known_hosts)"
        )


def _copy_run_remove(
    hook: SSHHook, client: Any, script: Path, remote_name: str, command: str, timeout_s: float, where: str
) -> tuple[int, bytes, bytes]:
    sftp = client.open_sftp()
    try:
        try:
            sftp.put(str(script), remote_name)
            exit_code, stdout, stderr = _run_with_deadline(client, command, timeout_s, where)
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                raise CollectorError(
                    f"SSH connection to {where} was lost while the collector ran",
                    exit_code=None if exit_code == -1 else exit_code,  # paramiko's -1: no status received
                    stderr_tail=stderr_tail(stderr),
                )
        finally:
            _remove(sftp, remote_name, where)
    finally:
        sftp.close()
    return exit_code, stdout, stderr


def _run_with_deadline(client: Any, command: str, timeout_s: float, where: str) -> tuple[int, bytes, bytes]:
    """Run ``command`` on a new channel; (exit status, stdout, stderr), or CollectorError after ``timeout_s``.

    Written here rather than using ``SSHHook.exec_ssh_client_command`` because that one
    only times out after a *silence*, and the collector's heartbeat (a stderr line every
    30 s) is never silent: a hung collection would run forever. This loop reads both
    streams as the hook does and closes the channel once the wall-clock limit is reached.
    """
    deadline = time.monotonic() + timeout_s
    channel = client.get_transport().open_session()
    stdout, stderr, pending = bytearray(), bytearray(), b""
    try:
        channel.exec_command(command)
        channel.shutdown_write()
        with selectors.DefaultSelector() as selector:
            selector.register(channel, selectors.EVENT_READ)
            while True:
                while channel.recv_ready():
                    stdout += channel.recv(1 << 20)
                while channel.recv_stderr_ready():
                    chunk = channel.recv_stderr(1 << 16)
                    stderr += chunk
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        log.info("%s: %s", where, line.decode("utf-8", "replace").rstrip())
                finished = channel.exit_status_ready() and (channel.eof_received or channel.closed)
                if finished and not channel.recv_ready() and not channel.recv_stderr_ready():
                    return channel.recv_exit_status(), bytes(stdout), bytes(stderr)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CollectorError(
                        f"collector on {where} timed out after {timeout_s:g} s (wall clock, "
                        "collector_timeout_minutes) and its SSH channel was closed; the remote process may still "
                        "be running",
                        stderr_tail=stderr_tail(bytes(stderr)),
                    )
                selector.select(min(remaining, 1.0))
    finally:
        channel.close()


def _remove(sftp: Any, remote_name: str, where: str) -> None:
    """Best effort: a leftover temp script must not hide the error that made us leave."""
    try:
        sftp.remove(remote_name)
    except Exception as exc:
        log.warning("could not remove %s from %s: %s", remote_name, where, _describe(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
