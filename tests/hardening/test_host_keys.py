"""SSH host keys are verified, always: a connection that turns verification off is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from veeam_efficiency.airflow.errors import fail_or_retry
from veeam_efficiency.airflow.ssh_collector import run_remote_script
from veeam_efficiency.collectors import CollectorConfigError

pytestmark = [pytest.mark.ssh]

START, END = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)


@pytest.mark.parametrize("extra", [{"no_host_key_check": "true"}, {"allow_host_key_change": "true"}])
def test_a_connection_without_host_key_verification_is_refused(ssh_hook, fake_pwsh, collector_script, extra):
    from airflow.sdk.exceptions import AirflowFailException

    pwsh = fake_pwsh("replay")
    verified = ssh_hook()  # control: the same server with its pinned key works
    assert run_remote_script(verified, collector_script, START, END, pwsh=str(pwsh.path))

    unverified = ssh_hook(host_key=None, **extra)
    with pytest.raises(CollectorConfigError, match="turns host key verification off"):
        run_remote_script(unverified, collector_script, START, END, pwsh=str(pwsh.path))
    with pytest.raises(AirflowFailException, match="turns host key verification off"), fail_or_retry():
        run_remote_script(unverified, collector_script, START, END, pwsh=str(pwsh.path))  # the DAG: no retry
    assert unverified.client is None  # refused before connecting: no credentials offered to anyone
