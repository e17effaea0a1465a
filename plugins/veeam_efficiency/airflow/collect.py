"""Run the chosen collector for one VBR server and return its raw JSON document (builds the SSH hook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from veeam_efficiency.settings import CollectionSettings
from veeam_efficiency.window import AnalysisWindow

COLLECTOR_SCRIPT = Path(__file__).resolve().parents[3] / "include" / "get_efficiency_data.ps1"


def collect_document(target: dict[str, Any], collection: CollectionSettings, window: AnalysisWindow) -> str:
    """The collector's stdout (replay: the file) for ``target`` over ``window``.

    Raises ``CollectorError`` (transient: retry), ``CollectorConfigError`` or ``ContractError``
    (do not retry); :func:`veeam_efficiency.airflow.errors.fail_or_retry` maps them.
    """
    timeout_s = collection.collector_timeout_minutes * 60
    if collection.collector == "replay":
        from veeam_efficiency.collectors.replay import read_replay_file

        return read_replay_file(target["replay_file"])
    if collection.collector == "local":
        from veeam_efficiency.collectors.local import run_local_script

        return run_local_script(
            COLLECTOR_SCRIPT, window.start, window.end, collection.job_names,
            pwsh=collection.pwsh_path, timeout_s=timeout_s,
        )  # fmt: skip
    from airflow.providers.ssh.hooks.ssh import SSHHook

    from veeam_efficiency.airflow.ssh_collector import run_remote_script

    hook = SSHHook(ssh_conn_id=collection.ssh_conn_id, remote_host=target.get("vbr_host") or "", cmd_timeout=timeout_s)
    return run_remote_script(
        hook, COLLECTOR_SCRIPT, window.start, window.end, collection.job_names,
        pwsh=collection.pwsh_path, timeout_s=timeout_s,
    )  # fmt: skip
