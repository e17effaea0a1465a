"""Run the collector script on the VBR server over SSH, through an Airflow SSHHook.

The script is copied by SFTP to a unique name in the remote account's login directory,
run there, and removed again. The command line is built only from tokens of a safe
alphabet (pwsh path, uuid file name, UTC times, base64), so whichever shell the server
uses (sh, cmd.exe, PowerShell) has nothing to interpret. Host keys are always verified
(known_hosts or the connection's ``host_key`` extra): a connection that turns verification
off is refused.

The hook logs every stdout line at INFO, i.e. the whole document: for big documents set
``[logging] namespace_levels = airflow.task.hooks.airflow.providers.ssh.hooks.ssh.SSHHook=WARNING``.
"""

from __future__ import annotations

import logging
import re
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

    ``timeout_s`` is the hook's command timeout: the command is abandoned once it has been
    silent (no stdout or stderr) for that long. Raises CollectorError on a non-zero exit,
    a timeout, empty or non-JSON stdout, or any SSH/SFTP failure (refused host key, failed
    authentication, reset connection); CollectorConfigError for a connection that turns host
    key verification off.
    """
    pwsh, timeout_s = options.get("pwsh", DEFAULT_PWSH), options.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not script.is_file():
        raise FileNotFoundError(f"collector script {script} does not exist")
    remote_name = f"veeam_efficiency_{uuid.uuid4().hex}.ps1"
    command = remote_command(pwsh, remote_name, script_arguments(window_start, window_end, job_names))
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
    from airflow.providers.common.compat.sdk import AirflowException

    sftp = client.open_sftp()
    try:
        try:
            sftp.put(str(script), remote_name)
            try:
                exit_code, stdout, stderr = hook.exec_ssh_client_command(
                    client, command, get_pty=False, environment=None, timeout=timeout_s
                )
            except AirflowException as exc:  # the hook's only exception here: "SSH command timed out"
                raise CollectorError(
                    f"collector on {where} timed out: no output for {timeout_s:g} s ({exc}); "
                    "the remote process may still be running"
                ) from exc
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


def _remove(sftp: Any, remote_name: str, where: str) -> None:
    """Best effort: a leftover temp script must not hide the error that made us leave."""
    try:
        sftp.remove(remote_name)
    except Exception as exc:
        log.warning("could not remove %s from %s: %s", remote_name, where, _describe(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
