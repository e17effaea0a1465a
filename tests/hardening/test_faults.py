"""Faults during the load: PostgreSQL killed mid-write, and two writers of the same host and day at once.

Both use the real ``pipeline.load`` (one transaction under an advisory lock per host: a first
load COPYs straight into the tables, a re-run COPYs into TEMP tables and upserts) on a private PostgreSQL cluster (tests/support/pg_cluster.py) that the test
may SIGKILL, never on the shared server.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tools.synthetic import generate_document
from veeam_efficiency import pipeline, storage
from veeam_efficiency.locks import load_lock_key
from veeam_efficiency.payload import column, records
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.window import analysis_window

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RUN_END = datetime(2026, 11, 27, tzinfo=UTC)
TABLES = (storage.HISTORY, storage.SCORECARDS)


def _payloads(host: str, sessions: int, jobs: int, lookback_days: int, seed: int) -> tuple[dict, dict]:
    """(validated, optimized) of one host's day, exactly as the DAG's tasks pass them on."""
    settings = AnalysisSettings(lookback_days=lookback_days)
    document = generate_document(
        vbr_host=host, jobs=jobs, sessions=sessions, seed=seed,
        window_start=datetime(2026, 8, 29, tzinfo=UTC), window_end=RUN_END,
    )  # fmt: skip
    validated = pipeline.validate(json.dumps(document), analysis_window(RUN_END, lookback_days), settings)
    analysis = pipeline.analyze(validated, settings)
    return validated, pipeline.scored(analysis, pipeline.optimize(analysis, settings))


@pytest.fixture(scope="module")
def big_run() -> tuple[dict, dict]:
    """About 300k sessions of one host over 90 days: a load that takes seconds, time enough to kill it."""
    return _payloads("vbr-big.example.local", 300_000, 400, 90, seed=11)


def _new_database(cluster: Any, name: str) -> str:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = cluster.dsn(name)
    with psycopg.connect(dsn) as conn:
        storage.ensure_schema(conn)
    return dsn


def _load(dsn: str, validated: dict, optimized: dict | None) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        return pipeline.load(conn, validated, optimized)


def _dump(dsn: str, host: str | None = None) -> dict[str, list[str]]:
    """Every row of both tables (of one host, or all), as JSON text in a stable order."""
    with psycopg.connect(dsn) as conn:
        return {
            table: [
                row[0]
                for row in conn.execute(
                    f"SELECT row_to_json(t)::text FROM {storage.SCHEMA}.{table} AS t "
                    "WHERE %(host)s::text IS NULL OR t.vbr_host = %(host)s ORDER BY 1",
                    {"host": host},
                )
            ]
            for table in TABLES
        }


def _counts(dsn: str, host: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        history, scorecards = (
            conn.execute(f"SELECT count(*) FROM {storage.SCHEMA}.{table} WHERE vbr_host = %s", (host,)).fetchone()[0]
            for table in TABLES
        )
    return history, scorecards


# Seen from another connection: a first load streaming rows straight into the table (COPY), or a
# re-run over rows already there merging them from its temporary table (upsert).
PHASES = {
    "copy": "SELECT tuples_processed >= 50000 FROM pg_stat_progress_copy",
    "merge": "SELECT true FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'INSERT INTO %%'",
}


@pytest.mark.parametrize("phase", PHASES)
def test_postgres_killed_mid_load_keeps_all_or_nothing_and_the_retry_completes_it(private_pg, big_run, phase):
    validated, optimized = big_run
    host = validated["vbr_host"]
    expected = (len(column(validated["sessions"], "session_id")), len(records(optimized["scorecards"])))
    assert expected[0] > 250_000 and expected[1] > 100
    dsn = _new_database(private_pg, "results")
    other_validated, other_optimized = _payloads("vbr-other.example.local", 3000, 6, 30, seed=12)
    _load(dsn, other_validated, other_optimized)  # another host's day, stored before the crash
    before = _dump(dsn, "vbr-other.example.local")
    if phase == "merge":  # the host's day is there already, from an earlier run that saw other figures
        renamed = [f"{name} (renamed since)" for name in column(validated["sessions"], "job_name")]
        sessions = {**validated["sessions"], "job_name": json.dumps(renamed)}
        cards = [{**card, "overall_score": card["overall_score"] / 2} for card in records(optimized["scorecards"])]
        _load(dsn, {**validated, "sessions": sessions}, {**optimized, "scorecards": cards})
    host_before = _dump(dsn, host)
    assert len(host_before[storage.HISTORY]) == (expected[0] if phase == "merge" else 0)

    outcome: list[BaseException | dict[str, Any]] = []

    def write() -> None:
        try:
            outcome.append(_load(dsn, validated, optimized))
        except BaseException as exc:
            outcome.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    caught = False
    with psycopg.connect(dsn, autocommit=True) as watcher:
        deadline = time.monotonic() + 120
        while writer.is_alive() and time.monotonic() < deadline:
            row = watcher.execute(PHASES[phase]).fetchone()
            if row and row[0]:
                caught = True
                break
            time.sleep(0.005)
    assert caught, f"the load finished (or hung) before its {phase} phase could be caught: {outcome}"
    private_pg.kill()  # SIGKILL: postmaster and every backend, no clean shutdown
    writer.join(60)
    assert not writer.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], psycopg.OperationalError), outcome

    private_pg.start()  # crash recovery replays the WAL
    assert _dump(dsn, host) == host_before  # killed before the commit: none of the run
    assert _dump(dsn, "vbr-other.example.local") == before  # and nothing else touched

    # the task's retry: the same payload again, written completely and once
    written = _load(dsn, validated, optimized)
    assert (written["history_rows"], written["scorecard_rows"]) == expected
    assert _counts(dsn, host) == expected
    with psycopg.connect(dsn) as conn:
        distinct = conn.execute(
            "SELECT count(DISTINCT session_id) FROM feature3.storage_efficiency_history WHERE vbr_host = %s", (host,)
        ).fetchone()[0]
        versions = conn.execute(
            "SELECT DISTINCT vbr_version FROM feature3.storage_efficiency_history WHERE vbr_host = %s", (host,)
        ).fetchall()
    assert distinct == expected[0]
    assert versions == [(validated["vbr_version"],)]  # the retry's rows, not the earlier run's


def test_two_loads_of_the_same_day_at_once_equal_one(private_pg):
    """A manual trigger during a backfill: both loads start together; the tables equal a single load's."""
    validated, optimized = _payloads("vbr01.example.local", 60_000, 40, 30, seed=13)
    single = _new_database(private_pg, "single")
    _load(single, validated, optimized)
    both = _new_database(private_pg, "concurrent")

    start = threading.Barrier(3)
    outcome: list[BaseException | dict[str, Any]] = []

    def write() -> None:
        start.wait()
        try:
            outcome.append(_load(both, validated, optimized))
        except BaseException as exc:
            outcome.append(exc)

    writers = [threading.Thread(target=write) for _ in range(2)]
    for writer in writers:
        writer.start()
    waited = False  # did one load wait for the other's advisory lock? (the lock serialises them)
    with psycopg.connect(both, autocommit=True) as watcher:
        (lock,) = watcher.execute("SELECT hashtextextended(%s, 0)", (load_lock_key("vbr01.example.local"),)).fetchone()
        load_lock = ((lock >> 32) & 0xFFFFFFFF, lock & 0xFFFFFFFF)  # pg_locks' classid and objid of it
        start.wait()
        while any(writer.is_alive() for writer in writers):
            waited = waited or bool(
                watcher.execute(  # the host's load lock, not the partition functions' own
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                    "AND classid::bigint = %s AND objid::bigint = %s",
                    load_lock,
                ).fetchone()[0]
            )
            time.sleep(0.002)
    for writer in writers:
        writer.join()

    assert all(isinstance(result, dict) for result in outcome), outcome
    assert waited, "the two loads did not overlap, so this run shows nothing about concurrency"
    reference = _dump(single)
    assert reference[storage.SCORECARDS] and len(reference[storage.HISTORY]) > 15_000
    assert _dump(both) == reference
