"""Incremental collection through the real DAG: day D, then D+1 (the stock `airflow dags test`) asks only the
new day and scores what a full run does."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from dag_runner import DAG_ID, fetch, run_dag, table_dump, write_document

from tools.synthetic import generate_document

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.usefixtures("airflow_db")]

DAY = timedelta(days=1)
D = datetime(2026, 11, 20, tzinfo=UTC)  # the run's data interval ends here: its window is the 35 days before
RECORDED_END = datetime(2026, 11, 27, tzinfo=UTC)


def _server(purged_before: datetime | None = None) -> dict:
    """The VBR server's sessions as recorded on 2026-11-27 06:00 (older ones purged, if asked)."""
    document = generate_document(
        vbr_host="vbr01.example.local", jobs=5, sessions=1200, seed=11,
        window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=RECORDED_END,
    )  # fmt: skip
    document["collected_at"] = (RECORDED_END + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if purged_before is not None:
        document["sessions"] = [s for s in document["sessions"] if s["creation_time"] >= purged_before.isoformat()]
    return document


def _log(dsn: str) -> list[tuple]:
    return fetch(
        dsn,
        "SELECT interval_start, interval_end, collection_target LIKE 'replay:%%vbr01.json', sessions_returned "
        "FROM feature3.collection_log ORDER BY interval_start",
    )


def _scorecards(dsn: str, day: datetime) -> list[tuple]:
    return [row for row in table_dump(dsn, "metrics_storage_efficiency") if row[2] == day.date()]


def test_the_next_day_asks_only_for_the_new_day_and_scores_like_a_full_run(
    monkeypatch, results_db, other_results_db, tmp_path
):
    replay = tmp_path / "replay"
    write_document(replay, "vbr01", _server())
    first = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=D)
    assert first["run"] == "success", first
    # the server answered for 35 days at 06:00 on the 27th: settled up to recheck_days (2) before that
    assert _log(results_db) == [(D - 35 * DAY, D, True, _count(_server(), D - 35 * DAY, D))]

    # meanwhile VBR's retention purged the window's first week: the history still has it, and it counts
    write_document(replay, "vbr01", _server(purged_before=D - 28 * DAY))
    # the next day through the stock CLI, as an operator would run it
    second = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, (D + DAY).date().isoformat()],
        env={**os.environ, "AIRFLOW_CONN_POSTGRES_DEFAULT": results_db, "VEEAM_REPLAY_DIR": str(replay),
             "VEEAM_COLLECTOR": "replay"},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    output = second.stdout + second.stderr
    assert "asking the server for 2026-11-20T00:00:00+00:00..2026-11-21T00:00:00+00:00 (incremental mode)" in output
    new_day, window = _count(_server(), D, D + DAY), _count(_server(), D + DAY - 35 * DAY, D + DAY)
    assert new_day > 0
    # validate hands on the new day's sessions; the rest of the window is read from the history again
    assert f"{new_day} sessions collected, {window - new_day} more from the history" in output
    assert _log(results_db)[1:] == [(D, D + DAY, True, new_day)]  # asked for the new day only
    assert fetch(
        results_db,
        "SELECT sessions_in_window FROM feature3.metrics_storage_efficiency WHERE scope = 'host' "
        "AND analysis_date = %s",
        D.date(),
    ) == [(window,)]

    fresh = tmp_path / "fresh"  # a new results database: a full collection of D+1 from the unpurged server
    write_document(fresh, "vbr01", _server())
    full = run_dag(monkeypatch, results_dsn=other_results_db, replay_dir=fresh, logical_date=D + DAY,
                   conf={"collection_mode": "full"})  # fmt: skip
    assert full["run"] == "success", full
    assert _scorecards(other_results_db, D)  # not two empty lists
    assert _scorecards(results_db, D) == _scorecards(other_results_db, D)


def test_full_mode_and_job_names_ask_for_the_whole_window(monkeypatch, results_db, tmp_path):
    replay = tmp_path / "replay"
    write_document(replay, "vbr01", _server())
    run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=D)
    run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=D, conf={"collection_mode": "full"})
    assert [row[:2] for row in _log(results_db)] == [(D - 35 * DAY, D)]  # asked again, logged once

    job = _server()["sessions"][0]["job_name"]
    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=D + DAY,
                     conf={"job_names": [job]})  # fmt: skip
    assert states["run"] == "success", states
    assert [row[:2] for row in _log(results_db)] == [(D - 35 * DAY, D)]  # some jobs' sessions cover nothing


def _count(document: dict, start: datetime, end: datetime) -> int:
    """Distinct sessions the server has created in ``[start, end)``."""
    return len(
        {s["session_id"] for s in document["sessions"] if start <= datetime.fromisoformat(s["creation_time"]) < end}
    )
