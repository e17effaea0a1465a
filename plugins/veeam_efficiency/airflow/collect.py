"""Run the chosen collector for one VBR server and return its raw JSON documents (builds the SSH hook).

Incremental collection (:mod:`veeam_efficiency.collection_plan`) asks the server only for
what the results database lacks; ``validate`` completes the window from the history.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from veeam_efficiency.settings import CollectionSettings
from veeam_efficiency.window import AnalysisWindow

log = logging.getLogger(__name__)

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

        return read_replay_file(target["replay_file"], window=(window.start, window.end))
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


def collection_target(target: dict[str, Any], collection: CollectionSettings) -> str:
    """How this run reaches the server, as the collection lock and log name it."""
    if target.get("replay_file"):
        return f"replay:{target['replay_file']}"
    return target.get("vbr_host") or f"ssh_conn_id={collection.ssh_conn_id}"  # "": the connection's own host


@contextmanager
def one_collection_at_a_time(target: dict[str, Any], collection: CollectionSettings) -> Iterator[Any]:
    """Hold the VBR server's collection lock (:mod:`veeam_efficiency.locks`) on the results database meanwhile.

    Two runs (a backfill and the daily run, say) that reach the same server wait for each
    other instead of running its collector twice at once, and the second plans its
    incremental collection after the first has collected. The lock is a PostgreSQL one, so
    it holds across workers and machines, and dies with a worker that is killed. Yields the
    connection that holds it.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from veeam_efficiency.locks import collect_lock_key, held

    conn = PostgresHook(postgres_conn_id=collection.postgres_conn_id).get_conn()
    try:
        with held(conn, collect_lock_key(collection_target(target, collection))):
            yield conn
    finally:
        conn.close()


def collect_window(
    target: dict[str, Any], collection: CollectionSettings, window: AnalysisWindow, conn: Any
) -> dict[str, Any]:
    """Collect ``window`` for ``target``: what the server is asked for, and its documents.

    ``conn`` (holding the collection lock) reads the collection log and the session history.
    In ``incremental`` mode without ``job_names`` the server is asked only for the intervals
    :func:`~veeam_efficiency.collection_plan.intervals_to_ask` names; otherwise for the
    whole window. A collection without ``job_names`` is ``logged``: ``validate`` completes it
    with the window's stored sessions (those the server was not asked for, or has purged,
    count as a full collection's would).
    """
    from veeam_efficiency.collection_plan import intervals_to_ask, still_stored
    from veeam_efficiency.history_reads import collected_intervals, stored_counts

    key = collection_target(target, collection)
    every_job = not collection.job_names
    asked = [(window.start, window.end)]
    if every_job and collection.collection_mode == "incremental":
        logged_host, logged = collected_intervals(conn, key, window.start, window.end)
        if logged_host is not None:
            counts = stored_counts(conn, logged_host, [(row.start, row.end) for row in logged])
            kept, lacking = still_stored(logged, counts)
            for row in lacking:
                log.warning(
                    "%s: the history lacks sessions collected for %s..%s (%d then): asking for them again",
                    logged_host, row.start.isoformat(), row.end.isoformat(), row.sessions,
                )  # fmt: skip
            asked = intervals_to_ask(window.start, window.end, kept, timedelta(days=collection.recheck_days))
    log.info(
        "%s: asking the server for %s (%s mode%s)",
        key,
        ", ".join(f"{start.isoformat()}..{end.isoformat()}" for start, end in asked),
        collection.collection_mode,
        "" if every_job else "; job_names given: in full",
    )
    documents = [collect_document(target, collection, AnalysisWindow(start, end)) for start, end in asked]
    return {
        "collection_target": key,
        "asked": [[start.isoformat(), end.isoformat()] for start, end in asked],
        "logged": every_job,  # a collection of some jobs covers nothing for the others
        "documents": documents,
    }
