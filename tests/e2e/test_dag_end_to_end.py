"""The DAG end to end: real Airflow (``dag.test()``), real PostgreSQL, replayed collector files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dag_runner import fetch, last_run_id, run_dag, table_dump, tables_exist, write_document

from tests.support.documents import newest_session
from tools.synthetic import generate_document

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.usefixtures("airflow_db")]

WINDOW_START = datetime(2026, 9, 1, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 27, tzinfo=UTC)
RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)  # manual run: the data interval ends here
HOSTILE_NAMES = [
    'O\'Brien "SQL"; DROP TABLE feature3.metrics_storage_efficiency; --',
    "$(rm -rf /) `id` & | > <",
    "Zürich – 東京 バックアップ 🚀",
    "back\\slash\ttab",
]


def sample(host: str, *, jobs: int = 6, sessions: int = 800, seed: int = 7) -> dict:
    return generate_document(
        vbr_host=host, jobs=jobs, sessions=sessions, window_start=WINDOW_START, window_end=WINDOW_END, seed=seed
    )


@pytest.fixture
def replay_dir(tmp_path: Path) -> Path:
    return tmp_path / "replay"


def test_two_hosts_scored_and_history_stored(monkeypatch, results_db, replay_dir):
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", seed=1))
    write_document(replay_dir, "vbr02", sample("vbr02.example.local", seed=2))

    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE)

    assert set(states.values()) == {"success"}, states
    assert {key for key in states if key.startswith("score_vbr_host.load")} == {
        "score_vbr_host.load[0]",
        "score_vbr_host.load[1]",
    }
    hosts = fetch(
        results_db,
        "SELECT vbr_host, count(*) FILTER (WHERE scope = 'job'), count(*) FILTER (WHERE scope = 'host'), "
        "min(analysis_date), min(window_start), max(window_end) "
        "FROM feature3.metrics_storage_efficiency GROUP BY vbr_host ORDER BY vbr_host",
    )
    assert [row[0] for row in hosts] == ["vbr01.example.local", "vbr02.example.local"]
    for _, jobs, rollups, analysis_date, start, end in hosts:
        assert jobs >= 1 and rollups == 1
        assert str(analysis_date) == "2026-11-26"  # the last day of the window
        assert (start, end) == (datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))  # 35 days
    # every scorecard is complete and within bounds
    bad = fetch(
        results_db,
        "SELECT job_name FROM feature3.metrics_storage_efficiency WHERE NOT ("
        "overall_score BETWEEN 0 AND 100 AND grade IN ('A','B','C','D','F') AND sessions_scored >= 30 "
        "AND quality_flags ?& array['CRITICAL_ANOMALIES','DEGRADING_TREND','HIGH_VARIANCE'])"
        " AND scope = 'job'",
    )
    assert bad == []
    # each scorecard names the DAG run that wrote it (the Storage efficiency view links to it)
    assert fetch(results_db, "SELECT DISTINCT dag_run_id FROM feature3.metrics_storage_efficiency") == [
        (last_run_id(),)
    ]
    # the history holds every in-window session once, scored or not, with its reason
    in_window = fetch(
        results_db,
        "SELECT count(*), count(DISTINCT (vbr_host, session_id)), count(excluded_reason), "
        "min(creation_time), max(creation_time) FROM feature3.storage_efficiency_history",
    )[0]
    assert in_window[0] == in_window[1] > 0
    assert in_window[2] > 0  # the synthetic data has failed and running sessions
    assert in_window[3] >= datetime(2026, 10, 23, tzinfo=UTC) and in_window[4] < RUN_DATE


def test_same_day_twice_gives_identical_tables(monkeypatch, results_db, replay_dir):
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", seed=3))

    tables = ("metrics_storage_efficiency", "storage_efficiency_history", "unscored_jobs", "job_settings")

    def row_versions() -> dict[str, list[tuple[Any, ...]]]:  # each row's physical version (ctid, xmin)
        return {
            table: fetch(results_db, f"SELECT ctid::text, xmin::text FROM feature3.{table} ORDER BY 1")
            for table in tables
        }

    run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE)
    first = {
        table: table_dump(results_db, table) for table in ("metrics_storage_efficiency", "storage_efficiency_history")
    }
    versions = row_versions()
    run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE)
    second = {
        table: table_dump(results_db, table) for table in ("metrics_storage_efficiency", "storage_efficiency_history")
    }

    assert first["metrics_storage_efficiency"], "the first run wrote no scorecards"
    assert first == second
    # and the re-run of an unchanged day wrote nothing: not one new row version in any table
    assert row_versions() == versions


def test_window_follows_the_data_interval(monkeypatch, results_db, replay_dir):
    """Two different days give two sets of scorecards, each over its own window."""
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", seed=4))

    run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=datetime(2026, 11, 20, tzinfo=UTC))
    run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE)

    days = fetch(
        results_db,
        "SELECT analysis_date, min(window_start), max(window_end) FROM feature3.metrics_storage_efficiency "
        "GROUP BY analysis_date ORDER BY 1",
    )
    assert [(str(day), start.date().isoformat(), end.date().isoformat()) for day, start, end in days] == [
        ("2026-11-19", "2026-10-16", "2026-11-20"),  # 35 days (lookback_days' default since issue 11)
        ("2026-11-26", "2026-10-23", "2026-11-27"),
    ]


def test_bad_file_fails_cleanly_and_writes_nothing_for_its_host(monkeypatch, results_db, replay_dir):
    broken = sample("vbr02.example.local", seed=5)
    del newest_session(broken)["job_id"]
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", seed=6))
    write_document(replay_dir, "vbr02", broken)

    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE)

    assert states["score_vbr_host.validate[1]"] == "failed"
    assert states["score_vbr_host.load[1]"] == "upstream_failed"
    assert states["score_vbr_host.load[0]"] == "success"  # one host's bad file does not stop the other
    assert fetch(results_db, "SELECT DISTINCT vbr_host FROM feature3.storage_efficiency_history") == [
        ("vbr01.example.local",)
    ]
    assert fetch(results_db, "SELECT DISTINCT vbr_host FROM feature3.metrics_storage_efficiency") == [
        ("vbr01.example.local",)
    ]


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({**sample("vbr01.example.local", sessions=50), "schema_version": 3})],
    ids=["not-json", "schema-version-3"],
)
def test_unreadable_file_writes_nothing(monkeypatch, results_db, replay_dir, content):
    """The messages themselves are checked in tests/unit/test_contract.py."""
    replay_dir.mkdir(parents=True)
    (replay_dir / "vbr01.json").write_text(content, encoding="utf-8")

    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE)

    assert states["score_vbr_host.validate[0]"] == "failed"
    assert not tables_exist(results_db) or fetch(
        results_db, "SELECT count(*) FROM feature3.storage_efficiency_history"
    ) == [(0,)]


def test_hostile_job_names_survive_verbatim(monkeypatch, results_db, replay_dir):
    document = sample("vbr01.example.local", jobs=4, sessions=600, seed=8)
    job_ids = sorted({session["job_id"] for session in document["sessions"]})
    names = dict(zip(job_ids, HOSTILE_NAMES, strict=True))
    for session in document["sessions"]:
        session["job_name"] = names[session["job_id"]]
    write_document(replay_dir, "vbr01", document)

    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE)

    assert set(states.values()) == {"success"}, states
    stored = {row[0] for row in fetch(results_db, "SELECT DISTINCT job_name FROM feature3.storage_efficiency_history")}
    assert stored == set(HOSTILE_NAMES)
    scored = {
        row[0]
        for row in fetch(results_db, "SELECT job_name FROM feature3.metrics_storage_efficiency WHERE scope='job'")
    }
    assert scored and scored <= set(HOSTILE_NAMES)


def test_no_job_qualifies_skips_analysis_but_stores_history(monkeypatch, results_db, replay_dir):
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", jobs=3, sessions=300, seed=9))

    states = run_dag(
        monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE,
        conf={"min_sessions": 500},
    )  # fmt: skip

    assert states["score_vbr_host.analyze[0]"] == "skipped"
    assert states["score_vbr_host.optimize[0]"] == "skipped"
    assert states["score_vbr_host.load[0]"] == "success"
    assert fetch(results_db, "SELECT count(*) FROM feature3.metrics_storage_efficiency") == [(0,)]
    assert fetch(results_db, "SELECT count(*) > 0 FROM feature3.storage_efficiency_history") == [(True,)]


def test_the_skip_reaches_only_the_host_without_enough_sessions(monkeypatch, results_db, replay_dir):
    """Mapped instances of one group: the host with too few sessions skips analyze, the other is scored.

    The case a @task.branch gets wrong on Airflow 3.3.2 (apache/airflow#67265): its skip misses the
    mapped sibling, and analyze would run on the host that has nothing to score.
    """
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", seed=11))
    write_document(replay_dir, "vbr02", sample("vbr02.example.local", jobs=3, sessions=120, seed=12))

    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE)

    assert {task: states[f"score_vbr_host.{task}[0]"] for task in ("sufficient", "analyze", "optimize", "load")} == {
        "sufficient": "success", "analyze": "success", "optimize": "success", "load": "success",
    }  # fmt: skip
    assert {task: states[f"score_vbr_host.{task}[1]"] for task in ("sufficient", "analyze", "optimize", "load")} == {
        "sufficient": "skipped", "analyze": "skipped", "optimize": "skipped", "load": "success",
    }  # fmt: skip
    cards = fetch(results_db, "SELECT DISTINCT vbr_host FROM feature3.metrics_storage_efficiency")
    assert cards == [("vbr01.example.local",)]
    history = fetch(
        results_db, "SELECT vbr_host, count(*) > 0 FROM feature3.storage_efficiency_history GROUP BY 1 ORDER BY 1"
    )
    assert history == [("vbr01.example.local", True), ("vbr02.example.local", True)]


def test_invalid_weights_fail_before_collecting(monkeypatch, results_db, replay_dir):
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", seed=10))

    states = run_dag(
        monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE,
        conf={"weight_dedup": 0.5},
    )  # fmt: skip

    assert states["ensure_results_schema"] == "failed"
    assert not tables_exist(results_db)
