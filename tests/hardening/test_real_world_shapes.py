"""Regression corpus: document shapes real VBR servers produce, each with its expected outcome.

Every case goes validate -> analyze -> optimize (and some through load into a real PostgreSQL
database). The last case runs the real VBR sample (skipped when ../shared/data is absent).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import psycopg
import pytest

from tests.support import documents
from tests.support.realdata import real_sample_document, require_real_sample
from veeam_efficiency import pipeline, storage
from veeam_efficiency.payload import column, records
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.window import AnalysisWindow, analysis_window

WINDOW_END = datetime(2026, 11, 27, tzinfo=UTC)
WINDOW = analysis_window(WINDOW_END, 30)
SETTINGS = AnalysisSettings(min_sessions=10)
GB = 10**9
MB = 10**6


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def session(
    session_id: str,
    created: datetime | str,
    *,
    job_id: str = "job-vm",
    job_name: str = "VM Prod Tier1",
    data: int = 50 * GB,
    dedup: int = 50,
    compress: int = 50,
    result: str = "Success",
    algorithm: str = "Increment",
    ended: str | bool | None = True,
    job_type: str = "Backup",
) -> dict[str, Any]:
    """One session; sizes follow the ratios (backup = data x dedup% x compress%)."""
    backup = data * dedup * compress // 10_000
    record = documents.session(
        session_id, created, minutes=45, job_id=job_id, job_name=job_name, job_type=job_type, algorithm=algorithm,
        result=result, data_size_bytes=data, backup_size_bytes=backup, read_size_bytes=data,
        transferred_size_bytes=backup, dedup_ratio_raw=dedup, compress_ratio_raw=compress,
    )  # fmt: skip
    if ended is not True:
        record["end_time"] = ended or None
    return record


def daily(job_id: str, job_name: str, days: int, *, first_day: int = 0, hour: int = 22, **kwargs: Any) -> list[dict]:
    """One session a day from ``first_day`` days after the window start, at ``hour`` UTC."""
    return [
        session(
            f"{job_id}-{day:03d}",
            WINDOW.start + timedelta(days=day, hours=hour),
            job_id=job_id,
            job_name=job_name,
            **kwargs,
        )
        for day in range(first_day, first_day + days)
    ]


def document(sessions: list[dict[str, Any]], vbr_host: str = "vbr01.example.test") -> str:
    return documents.document_text(
        sessions,
        vbr_host=vbr_host,
        window_start=WINDOW.start,
        window_end=WINDOW.end,
        collected_at=_iso(WINDOW.end + timedelta(hours=2)),
    )


def run(
    text: str, settings: AnalysisSettings = SETTINGS, window: AnalysisWindow = WINDOW
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """validate -> analyze -> optimize; every payload must be strict JSON (XCom)."""
    validated = pipeline.validate(text, window, settings)
    json.dumps(validated, allow_nan=False)
    if not pipeline.has_qualifying_jobs(validated):
        return validated, None
    analyzed = pipeline.analyze(validated, settings)
    json.dumps(analyzed, allow_nan=False)
    optimized = pipeline.scored(analyzed, pipeline.optimize(analyzed, settings))
    json.dumps(optimized, allow_nan=False)
    return validated, optimized


def cards_by_job(optimized: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {card["job_id"]: card for card in records((optimized or {"scorecards": []})["scorecards"])}


def insufficient(validated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_id"]: job for job in validated["insufficient_jobs"]}


def load(dsn: str, validated: dict[str, Any], optimized: dict[str, Any] | None) -> pd.DataFrame:
    """Load into a fresh results database and return the history table."""
    with psycopg.connect(dsn) as conn:
        storage.ensure_schema(conn)
        pipeline.load(conn, validated, optimized)
        cur = conn.execute(f"SELECT * FROM {storage.SCHEMA}.{storage.HISTORY} ORDER BY creation_time, session_id")
        columns = [column.name for column in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


# ---------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_nas_sessions_with_all_zero_backup_stats_are_no_data_and_stored(results_db: str) -> None:
    nas = daily("job-nas", "NAS & Shares; Archiv", 30, data=0, dedup=0, compress=0, job_type="NasBackup")
    vm = daily("job-vm", "VM Prod Tier1", 30)
    validated, optimized = run(document(nas + vm))

    assert validated["excluded"]["no_data"] == 30
    assert validated["qualifying_job_ids"] == ["job-vm"]
    assert insufficient(validated)["job-nas"] == {
        "job_id": "job-nas", "job_name": "NAS & Shares; Archiv", "found": 0, "needed": 10,
    }  # fmt: skip
    cards = cards_by_job(optimized)
    assert set(cards) == {"job-vm", "*"}
    assert cards["*"]["sessions_in_window"] == 60
    assert cards["*"]["excluded_by_reason"]["no_data"] == 30

    history = load(results_db, validated, optimized)
    assert len(history) == 60
    stored = history[history["job_id"] == "job-nas"]
    assert len(stored) == 30
    assert stored["excluded_reason"].eq("no_data").all()
    assert stored["dedup_ratio"].isna().all()  # 0 means no data, never a 0x factor
    assert stored["job_name"].eq("NAS & Shares; Archiv").all()


def test_metadata_dominated_tiny_increments_are_scored_and_barely_move_compression() -> None:
    normal = daily("job-vm", "VM Prod Tier1", 30, data=50 * GB, dedup=50, compress=50)
    # 10 MB of changed data, but 25 MB written: metadata outweighs the data (compression 0.4x)
    tiny = [
        session(f"tiny-{i}", WINDOW.start + timedelta(days=3 * i, hours=10), data=10 * MB, dedup=100, compress=250)
        for i in range(5)
    ]
    _, baseline = run(document(normal))
    validated, optimized = run(document(normal + tiny))

    assert sum(validated["excluded"].values()) == 0  # 0.4x is above min_factor 0.1: scorable
    assert set(column(optimized["session_anomalies"], "session_id")) >= {f"tiny-{i}" for i in range(5)}
    before, after = cards_by_job(baseline)["job-vm"], cards_by_job(optimized)["job-vm"]
    assert after["sessions_scored"] == 35
    assert before["compression_factor"] == pytest.approx(2.0)
    # size-weighted: 50 MB of tiny sessions against 1.5 TB of normal ones, so 2.0x -> 1.9995x
    # (a plain mean of the session factors would drop to (30 x 2.0 + 5 x 0.4) / 35 = 1.77x)
    assert after["compression_factor"] == pytest.approx((750 * GB + 50 * MB) / (375 * GB + 125 * MB))
    assert after["compression_factor"] == pytest.approx(before["compression_factor"], rel=1e-3)
    assert after["compression_factor"] < before["compression_factor"]
    assert after["dedup_factor"] == pytest.approx(before["dedup_factor"], rel=1e-4)


def test_job_whose_every_session_failed_gets_no_scorecard_and_is_listed_with_found_0() -> None:
    failed = daily("job-broken", "Broken Job", 30, result="Failed")
    vm = daily("job-vm", "VM Prod Tier1", 30)
    validated, optimized = run(document(failed + vm))

    assert validated["excluded"]["failed"] == 30
    assert insufficient(validated)["job-broken"] == {
        "job_id": "job-broken", "job_name": "Broken Job", "found": 0, "needed": 10,
    }  # fmt: skip
    assert "job-broken" not in cards_by_job(optimized)
    assert cards_by_job(optimized)["*"]["excluded_by_reason"]["failed"] == 30


def test_only_failed_sessions_anywhere_means_no_analysis() -> None:
    validated, optimized = run(document(daily("job-broken", "Broken Job", 30, result="Failed")))
    assert optimized is None
    assert validated["insufficient_jobs"] == [
        {"job_id": "job-broken", "job_name": "Broken Job", "found": 0, "needed": 10}
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("order", ["oldest first", "newest first"])
def test_job_renamed_mid_window_gets_one_scorecard_under_the_newest_name(results_db: str, order: str) -> None:
    old = daily("job-vm", "VM Prod", 15)
    new = daily("job-vm", 'VM Prod "Tier1" – renamed', 15, first_day=15)
    sessions = old + new if order == "oldest first" else list(reversed(old + new))
    validated, optimized = run(document(sessions))

    cards = cards_by_job(optimized)
    assert set(cards) == {"job-vm", "*"}
    assert cards["job-vm"]["job_name"] == 'VM Prod "Tier1" – renamed'
    assert cards["job-vm"]["sessions_scored"] == 30

    history = load(results_db, validated, optimized)
    assert sorted(history["job_name"].unique()) == ["VM Prod", 'VM Prod "Tier1" – renamed']  # history keeps both
    with psycopg.connect(results_db) as conn:
        stored = conn.execute(
            f"SELECT job_id, job_name FROM {storage.SCHEMA}.{storage.SCORECARDS} WHERE scope = 'job'"
        ).fetchall()
    assert stored == [("job-vm", 'VM Prod "Tier1" – renamed')]


def test_job_deleted_mid_window_is_scored_with_enough_sessions_else_insufficient() -> None:
    deleted_late = daily("job-old-a", "Decommissioned A", 15)  # stops halfway, 15 >= 10
    deleted_early = daily("job-old-b", "Decommissioned B", 4)  # stops after 4 days
    vm = daily("job-vm", "VM Prod Tier1", 30)
    validated, optimized = run(document(deleted_late + deleted_early + vm))

    assert sorted(validated["qualifying_job_ids"]) == ["job-old-a", "job-vm"]
    assert insufficient(validated) == {
        "job-old-b": {"job_id": "job-old-b", "job_name": "Decommissioned B", "found": 4, "needed": 10}
    }
    cards = cards_by_job(optimized)
    assert cards["job-old-a"]["sessions_scored"] == 15
    assert cards["job-old-a"]["job_name"] == "Decommissioned A"
    assert "job-old-b" not in cards
    assert cards["*"]["sessions_in_window"] == 49


@pytest.mark.postgres
def test_host_clock_in_another_time_zone_is_windowed_in_utc(results_db: str) -> None:
    # A VBR server in Sydney (+10:00) writes local times. The window ends 2026-11-27T00:00Z.
    vm = daily("job-vm", "VM Prod Tier1", 30)
    local = [
        session("syd-in-last", "2026-11-27T09:00:00+10:00", job_id="job-syd"),  # 2026-11-26T23:00Z: in
        session("syd-out-end", "2026-11-27T10:00:00+10:00", job_id="job-syd"),  # = window end: out
        session("syd-in-first", "2026-10-28T10:00:00+10:00", job_id="job-syd"),  # = window start: in
        session("syd-out-start", "2026-10-28T09:59:59+10:00", job_id="job-syd"),  # 1 s before: out
        session("kat-in", "2026-11-27T05:44:59+05:45", job_id="job-syd"),  # 2026-11-26T23:59:59Z: in
        session("mid-out", "2026-11-26T12:00:00-12:00", job_id="job-syd"),  # 2026-11-27T00:00Z: out
    ]
    validated, optimized = run(document(vm + local))

    in_window = set(column(validated["sessions"], "session_id"))
    assert {"syd-in-last", "syd-in-first", "kat-in"} <= in_window
    assert not {"syd-out-end", "syd-out-start", "mid-out"} & in_window
    assert len(in_window) == 33
    times = dict(
        zip(column(validated["sessions"], "session_id"), column(validated["sessions"], "creation_time"), strict=True)
    )
    assert times["syd-in-last"] == "2026-11-26T23:00:00.000000Z"

    history = load(results_db, validated, optimized).set_index("session_id")
    assert len(history) == 33
    assert history.loc["syd-in-last", "creation_time"] == datetime(2026, 11, 26, 23, tzinfo=UTC)
    assert history.loc["syd-in-first", "creation_time"] == datetime(2026, 10, 28, 0, tzinfo=UTC)
    assert history.loc["syd-in-last", "analysis_date"].isoformat() == "2026-11-26"


def test_duplicates_running_and_implausible_sessions_are_counted_not_scored() -> None:
    vm = daily("job-vm", "VM Prod Tier1", 30)
    quirks = [
        dict(vm[3]),  # a collector paging overlap re-emits a session verbatim
        session("running", WINDOW.end - timedelta(hours=1), ended=None, data=10 * GB, dedup=0, compress=0),
        # a real server's metadata-only increment: CompressRatio 191073
        session("implausible", WINDOW.start + timedelta(days=2), data=23_231, dedup=100, compress=191_073),
    ]
    validated, optimized = run(document(vm + quirks))

    assert validated["duplicates_dropped"] == 1
    assert validated["excluded"] == {"failed": 0, "running": 1, "no_data": 0, "implausible_ratio": 1}
    card = cards_by_job(optimized)["job-vm"]
    assert card["sessions_in_window"] == 32
    assert card["sessions_scored"] == 30
    assert card["excluded_by_reason"] == {"failed": 0, "running": 1, "no_data": 0, "implausible_ratio": 1}


# ---------------------------------------------------------------------------------------------
# The real VBR sample (April 2019 - April 2020)
# ---------------------------------------------------------------------------------------------

REAL_WINDOWS = ("2019-09-01", "2019-06-01", "2020-02-08")
REAL_SETTINGS = AnalysisSettings(min_sessions=30)


def _summary(card: dict[str, Any]) -> str:
    flags = ",".join(name for name, raised in card["quality_flags"].items() if raised) or "-"
    return (
        f"{card['job_name']!r:28} grade {card['grade']} overall {card['overall_score']:5.1f} "
        f"dedup {card['dedup_factor']:.2f}x compression {card['compression_factor']:.2f}x "
        f"scored {card['sessions_scored']}/{card['sessions_in_window']} trend {card['trend_classification']} "
        f"flags {flags}"
    )


@pytest.mark.parametrize("window_end", REAL_WINDOWS)
def test_real_sample_scores_a_30_day_window(window_end: str) -> None:
    require_real_sample()
    text = json.dumps(real_sample_document())
    window = analysis_window(datetime.fromisoformat(window_end).replace(tzinfo=UTC), 30)
    validated, optimized = run(text, REAL_SETTINGS, window)

    assert optimized is not None, validated["insufficient_jobs"]
    cards = records(optimized["scorecards"])
    jobs = [card for card in cards if card["scope"] == "job"]
    assert len(jobs) >= 1
    for card in cards:
        assert card["grade"] in "ABCDF"
        assert 0 <= card["overall_score"] <= 100
        assert math.isfinite(card["dedup_factor"]) and math.isfinite(card["compression_factor"])
    print(f"\nreal sample, 30 days to {window_end}: {len(validated['sessions']['session_id'])} sessions")
    for card in cards:
        print("  " + _summary(card))
    for job in validated["insufficient_jobs"]:
        print(f"  {job['job_name']!r:28} no scorecard: {job['found']}/{job['needed']} scorable sessions")


@pytest.mark.postgres
def test_real_sample_loads_into_postgres(results_db: str) -> None:
    require_real_sample()
    window = analysis_window(datetime(2019, 9, 1, tzinfo=UTC), 30)
    validated, optimized = run(json.dumps(real_sample_document()), REAL_SETTINGS, window)
    history = load(results_db, validated, optimized)
    assert len(history) == len(column(validated["sessions"], "session_id"))
    assert history["session_id"].is_unique
    with psycopg.connect(results_db) as conn:
        (count,) = conn.execute(f"SELECT count(*) FROM {storage.SCHEMA}.{storage.SCORECARDS}").fetchone()
    assert count == len(records(optimized["scorecards"]))
