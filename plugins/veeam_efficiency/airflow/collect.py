"""Run the chosen collector for one VBR server and return its raw JSON document (builds the SSH hook)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from veeam_efficiency.settings import CollectionSettings
from veeam_efficiency.window import AnalysisWindow

COLLECTOR_SCRIPT = Path(__file__).resolve().parents[3] / "include" / "get_efficiency_data.ps1"


def collection_targets(collection: CollectionSettings) -> list[dict[str, str]]:
    """One target per VBR server: a replay file each, or each ``vbr_hosts`` entry ("" = the connection's host).

    Raises ``ContractError`` when ``replay_path`` names nothing usable.
    """
    if collection.collector == "replay":
        from veeam_efficiency.collectors.replay import replay_files

        return [{"vbr_host": path.stem, "replay_file": str(path)} for path in replay_files(collection.replay_path)]
    return [{"vbr_host": host} for host in collection.vbr_hosts or [""]]


def collect_document(
    target: dict[str, Any], collection: CollectionSettings, window: AnalysisWindow, *, diagnose: bool = False
) -> str:
    """The collector's stdout (replay: the file) for ``target`` over ``window``.

    ``collector_timeout_minutes`` is a wall-clock limit on both transports. ``diagnose``
    runs the script's first-contact mode (the document then carries ``diagnostics``).
    Raises ``CollectorError`` (transient: retry), ``CollectorConfigError`` or ``ContractError``
    (do not retry); :func:`veeam_efficiency.airflow.errors.fail_or_retry` maps them.
    """
    timeout_s = collection.collector_timeout_minutes * 60
    if collection.collector == "replay":
        from veeam_efficiency.collectors.replay import read_replay_file

        return read_replay_file(target["replay_file"])
    options: dict[str, Any] = {
        "pwsh": collection.pwsh_path,
        "timeout_s": timeout_s,
        "allow_full_session_scan": collection.allow_full_session_scan,
        "diagnose": diagnose,
    }
    if collection.collector == "local":
        from veeam_efficiency.collectors.local import run_local_script

        return run_local_script(COLLECTOR_SCRIPT, window.start, window.end, collection.job_names, **options)
    from airflow.providers.ssh.hooks.ssh import SSHHook

    from veeam_efficiency.airflow.ssh_collector import run_remote_script

    hook = SSHHook(ssh_conn_id=collection.ssh_conn_id, remote_host=target.get("vbr_host") or "", cmd_timeout=timeout_s)
    return run_remote_script(hook, COLLECTOR_SCRIPT, window.start, window.end, collection.job_names, **options)


@contextmanager
def one_collection_at_a_time(target: dict[str, Any], collection: CollectionSettings) -> Iterator[None]:
    """Hold the VBR server's collection lock (:mod:`veeam_efficiency.locks`) on the results database meanwhile.

    Two runs (a backfill and the daily run, say) that reach the same server wait for each
    other instead of running its collector twice at once. The lock is a PostgreSQL one, so
    it holds across workers and machines, and dies with a worker that is killed.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from veeam_efficiency.locks import collect_lock_key, held

    host = target.get("vbr_host") or f"ssh_conn_id={collection.ssh_conn_id}"  # "": the connection's own host
    conn = PostgresHook(postgres_conn_id=collection.postgres_conn_id).get_conn()
    try:
        with held(conn, collect_lock_key(host)):
            yield
    finally:
        conn.close()
