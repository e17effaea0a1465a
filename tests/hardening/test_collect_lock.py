"""At most one collection per VBR server at a time: collects of one host serialise on its advisory lock.

Three threads start together, each in ``collect``'s lock (``one_collection_at_a_time``) on the
real results database: two for the same host, one for another. The same host's two never
hold it at once, and one of them waits for the other; the other host waits for nobody.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from veeam_efficiency.locks import collect_lock_key, load_lock_key
from veeam_efficiency.settings import CollectionSettings

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

HOLD_S = 1.5  # how long each "collection" holds the lock


def _lock_id(conn: psycopg.Connection, key: str) -> tuple[int, int]:
    """``pg_locks``' (classid, objid) of the advisory lock on ``key``: its 64-bit id's high and low halves."""
    (value,) = conn.execute("SELECT hashtextextended(%s, 0)", (key,)).fetchone()  # type: ignore[misc]
    return (value >> 32) & 0xFFFFFFFF, value & 0xFFFFFFFF


def test_two_collects_of_the_same_host_serialise_and_another_host_does_not_wait(monkeypatch, results_db):
    from veeam_efficiency.airflow.collect import one_collection_at_a_time

    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", results_db)
    collection = CollectionSettings(collector="replay")
    start = threading.Barrier(4)
    spans: dict[str, tuple[float, float]] = {}
    errors: list[BaseException] = []

    def collect(name: str, host: str) -> None:
        start.wait()
        try:
            with one_collection_at_a_time({"vbr_host": host}, collection):
                began = time.monotonic()
                time.sleep(HOLD_S)
                spans[name] = (began, time.monotonic())
        except BaseException as exc:
            errors.append(exc)

    runs = {"first": "vbr01.example.local", "second": "vbr01.example.local", "other": "vbr02.example.local"}
    threads = [threading.Thread(target=collect, args=item) for item in runs.items()]
    for thread in threads:
        thread.start()
    waiting: set[tuple[int, int]] = set()
    with psycopg.connect(results_db, autocommit=True) as watcher:
        same, other = (_lock_id(watcher, collect_lock_key(host)) for host in sorted(set(runs.values())))
        start.wait()
        while any(thread.is_alive() for thread in threads):
            rows = watcher.execute(
                "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"  # not other tests'
            ).fetchall()
            waiting |= {(int(classid), int(objid)) for classid, objid in rows}
            time.sleep(0.01)
        held_after = watcher.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    for thread in threads:
        thread.join()

    assert not errors, errors
    first, second = sorted((spans["first"], spans["second"]))
    assert first[1] <= second[0], spans  # one after the other, never both at once
    assert waiting == {same}, (waiting, same, other)  # the same host's second collect waited; the other host never
    assert held_after == (0,)  # every lock released, every connection closed


def test_collect_and_load_locks_are_one_family_but_distinct_keys():
    assert collect_lock_key("vbr01") != load_lock_key("vbr01")
    assert {collect_lock_key("vbr01").split(":")[0], load_lock_key("vbr01").split(":")[0]} == {"feature3"}
