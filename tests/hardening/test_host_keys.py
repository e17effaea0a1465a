"""SSH host keys are verified, always: a connection that turns verification off is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from veeam_efficiency.collectors.ssh import run_remote_script

pytestmark = [pytest.mark.ssh]

START, END = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)


@pytest.mark.parametrize("extra", [{"no_host_key_check": "true"}, {"allow_host_key_change": "true"}])
def test_a_connection_without_host_key_verification_is_refused(ssh_hook, fake_pwsh, collector_script, extra):
    from airflow.sdk.exceptions import AirflowFailException

    pwsh = fake_pwsh("replay")
    verified = ssh_hook()  # control: the same server with its pinned key works
    assert run_remote_script(verified, collector_script, START, END, pwsh=str(pwsh.path))

    unverified = ssh_hook(host_key=None, **extra)
    with pytest.raises(AirflowFailException, match="turns host key verification off"):
        run_remote_script(unverified, collector_script, START, END, pwsh=str(pwsh.path))
    assert unverified.client is None  # refused before connecting: no credentials offered to anyone
