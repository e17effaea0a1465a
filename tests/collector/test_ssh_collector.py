"""run_remote_script through a real SSHHook against a real, throwaway OpenSSH server."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from veeam_efficiency.airflow.ssh_collector import remote_command, run_remote_script
from veeam_efficiency.collectors import CollectorError
from veeam_efficiency.contract import parse_document

START = datetime(2024, 5, 1, tzinfo=UTC)
END = datetime(2024, 5, 2, tzinfo=UTC)
NASTY_NAMES = ["Job \"quoted\" 'single'", "a; rm -rf /", "$(rm -rf /)", "`whoami`", "Sicherung Größe ✓ 日本"]


def remote_script_of(pwsh) -> Path:
    """The temp script this run copied to the login directory (the stand-in recorded its name)."""
    recorded = pwsh.recorded()
    return Path(recorded["cwd"]) / recorded["argv"][3]


@pytest.mark.ssh
def test_success_copies_runs_and_removes_the_script(ssh_hook, fake_pwsh, collector_script, sshd):
    pwsh = fake_pwsh("replay")
    hook = ssh_hook()
    text = run_remote_script(hook, collector_script, START, END, NASTY_NAMES, pwsh=str(pwsh.path))
    assert len(parse_document(text)["sessions"]) == 4
    recorded = pwsh.recorded()
    name = recorded["argv"][3]
    assert name.startswith("veeam_efficiency_") and name.endswith(".ps1") and "/" not in name
    assert recorded["cwd"] == str(sshd.home)  # the login directory
    assert recorded["script_text"] == collector_script.read_text()
    assert recorded["window"] == ["2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"]
    assert recorded["job_names"] == NASTY_NAMES
    assert not remote_script_of(pwsh).exists()
    assert hook.client is not None and hook.client.get_transport() is None  # closed
    assert "rm -rf" not in " ".join(recorded["argv"])


@pytest.mark.ssh
def test_wrong_host_key_is_refused(ssh_hook, fake_pwsh, collector_script, sshd):
    pwsh = fake_pwsh("replay")
    hook = ssh_hook(host_key=sshd.other_host_public_key)
    with pytest.raises(CollectorError, match=rf"cannot open SSH connection to {sshd.login}@127.0.0.1:{sshd.port}: "
                       r"BadHostKeyException"):  # fmt: skip
        run_remote_script(hook, collector_script, START, END, pwsh=str(pwsh.path))
    assert not pwsh.record_path.exists()


@pytest.mark.ssh
def test_unknown_host_is_refused(ssh_hook, fake_pwsh, collector_script, sshd):
    pwsh = fake_pwsh("replay")
    hook = ssh_hook(host_key=None)  # nothing in the connection, nothing in known_hosts
    with pytest.raises(CollectorError, match=r"SSHException: Server '\[127.0.0.1\]:\d+' not found in known_hosts"):
        run_remote_script(hook, collector_script, START, END, pwsh=str(pwsh.path))


@pytest.mark.ssh
def test_authentication_failure(ssh_hook, fake_pwsh, collector_script, sshd):
    pwsh = fake_pwsh("replay")
    hook = ssh_hook(key_file=sshd.stranger_key)
    with pytest.raises(CollectorError, match="AuthenticationException: Authentication failed"):
        run_remote_script(hook, collector_script, START, END, pwsh=str(pwsh.path))
    assert not pwsh.record_path.exists()


@pytest.mark.ssh
def test_remote_non_zero_exit(ssh_hook, fake_pwsh, collector_script, sshd):
    pwsh = fake_pwsh("fail", exit_code=5, stderr_lines=25)
    with pytest.raises(CollectorError) as caught:
        run_remote_script(ssh_hook(), collector_script, START, END, pwsh=str(pwsh.path))
    err = caught.value
    assert err.exit_code == 5
    assert str(err).startswith(f"collector on {sshd.login}@127.0.0.1:{sshd.port} failed [exit code: 5]")
    assert err.stderr_tail.splitlines()[0].endswith("failure line 6")
    assert err.stderr_tail.splitlines()[-1].endswith("failure line 25")
    assert not remote_script_of(pwsh).exists()


@pytest.mark.ssh
def test_remote_truncated_output(ssh_hook, fake_pwsh, collector_script):
    pwsh = fake_pwsh("truncated")
    with pytest.raises(CollectorError, match="printed stdout that is not JSON"):
        run_remote_script(ssh_hook(), collector_script, START, END, pwsh=str(pwsh.path))
    assert not remote_script_of(pwsh).exists()


@pytest.mark.ssh
def test_remote_timeout(ssh_hook, fake_pwsh, collector_script, sshd):
    pwsh = fake_pwsh("hang")
    started = time.monotonic()
    with pytest.raises(
        CollectorError, match=rf"collector on {sshd.login}@127.0.0.1:{sshd.port} timed out: no output for 1 s"
    ):
        run_remote_script(ssh_hook(), collector_script, START, END, pwsh=str(pwsh.path), timeout_s=1)
    assert time.monotonic() - started < 10
    assert not remote_script_of(pwsh).exists()  # removed while the collector still hangs


@pytest.mark.ssh
def test_connection_reset_mid_command(ssh_hook, fake_pwsh, collector_script, caplog, sshd):
    pwsh = fake_pwsh("reset")
    caplog.set_level(logging.WARNING, logger="veeam_efficiency.airflow.ssh_collector")
    with pytest.raises(
        CollectorError, match=rf"SSH connection to {sshd.login}@127.0.0.1:{sshd.port} was lost"
    ) as caught:
        run_remote_script(ssh_hook(), collector_script, START, END, pwsh=str(pwsh.path))
    assert caught.value.exit_code is None
    # the reset also took the SFTP channel: the temp script stays behind, and we say so
    left_behind = remote_script_of(pwsh)
    assert f"could not remove {left_behind.name}" in caplog.text
    left_behind.unlink()
    # the server itself is fine: the next run succeeds
    assert run_remote_script(ssh_hook(), collector_script, START, END, pwsh=str(fake_pwsh("replay").path))


@pytest.mark.parametrize("pwsh", ["C:\\Program Files\\PowerShell\\7\\pwsh.exe", "pwsh;id", "$(id)", "-Command", ""])
def test_unsafe_pwsh_is_refused_before_connecting(pwsh, collector_script):
    hook = SimpleNamespace(username="u", remote_host="h", port=22, get_conn=lambda: pytest.fail("connected"))
    with pytest.raises(ValueError, match="is not a plain command name or space-free path"):
        run_remote_script(hook, collector_script, START, END, pwsh=pwsh)  # type: ignore[arg-type]


def test_remote_command_is_built_from_safe_tokens_only():
    assert (
        remote_command("C:\\PS7\\pwsh.exe", "veeam_efficiency_ab.ps1", ["-From", "2024-05-01T00:00:00Z"])
        == "C:\\PS7\\pwsh.exe -NoProfile -NonInteractive -File veeam_efficiency_ab.ps1 -From 2024-05-01T00:00:00Z"
    )
    with pytest.raises(ValueError, match="unsafe token"):
        remote_command("pwsh", "veeam_efficiency_ab.ps1", ["-From", "2024-05-01 00:00:00"])
