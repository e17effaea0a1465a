"""What a new deployment gets by default: no silent sample data, any past day scorable, unscored jobs visible."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dag_runner import fetch, load_dag, run_dag, write_document

from tools.synthetic import generate_document

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.usefixtures("airflow_db")]


def test_collection_param_defaults_come_from_the_deployment_environment(monkeypatch):
    monkeypatch.setenv("VEEAM_COLLECTOR", "ssh")
    monkeypatch.setenv("VEEAM_VBR_HOSTS", "vbr01.corp.example, vbr02.corp.example")
    params = load_dag().params
    assert (params["collector"], params["vbr_hosts"]) == ("ssh", ["vbr01.corp.example", "vbr02.corp.example"])
    params.validate()

    monkeypatch.delenv("VEEAM_COLLECTOR")
    monkeypatch.delenv("VEEAM_VBR_HOSTS")
    params = load_dag().params
    assert (params["collector"], params["vbr_hosts"]) == ("", [])  # nothing chosen: no silent default
    params.validate()  # a scheduled run is still created, and fails at once saying why


def test_a_run_with_no_collector_fails_at_once_saying_what_to_set(monkeypatch, results_db, tmp_path, capfd):
    monkeypatch.delenv("VEEAM_COLLECTOR", raising=False)
    replay = tmp_path / "replay"  # samples are there, and must not be scored
    write_document(replay, "vbr01", _document("vbr01.example.local", datetime(2026, 11, 27, tzinfo=UTC)))

    states = run_dag(
        monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=datetime(2026, 11, 27, tzinfo=UTC)
    )

    assert states["ensure_results_schema"] == "failed" and states["list_vbr_hosts"] == "failed", states
    assert not any(key.startswith("score_vbr_host.") and state == "success" for key, state in states.items()), states
    assert states["run"] == "failed", states  # not a green run that did nothing
    captured = capfd.readouterr()
    assert "no collector chosen: set the environment variable VEEAM_COLLECTOR" in captured.out + captured.err
    assert fetch(results_db, "SELECT to_regclass('feature3.metrics_storage_efficiency')") == [(None,)]


def test_a_day_in_2020_runs_every_task_and_is_scored(monkeypatch, results_db, tmp_path):
    run_day = datetime(2020, 6, 15, tzinfo=UTC)
    replay = tmp_path / "replay"
    write_document(replay, "vbr01", _document("vbr01.example.local", run_day))

    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=run_day)

    assert "score_vbr_host.load[0]" in states, states
    assert set(states.values()) == {"success"}, states
    rows = fetch(
        results_db,
        "SELECT DISTINCT analysis_date::text FROM feature3.metrics_storage_efficiency "
        "UNION ALL SELECT count(*)::text FROM feature3.storage_efficiency_history WHERE creation_time < '2020-06-15'",
    )
    assert rows[0] == ("2020-06-14",) and int(rows[1][0]) > 0, rows


def test_unscored_jobs_are_recorded_and_replaced_per_day(monkeypatch, results_db, tmp_path):
    run_day = datetime(2026, 11, 27, tzinfo=UTC)
    replay = tmp_path / "replay"
    write_document(replay, "vbr01", _document("vbr01.example.local", run_day))

    assert load_dag().params["lookback_days"] == 35  # a daily job may miss a few days of 35
    strict = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=run_day,
                     conf={"min_sessions": 60})  # fmt: skip
    assert set(strict.values()) == {"success"}, strict
    unscored = fetch(
        results_db,
        "SELECT job_id, job_name, sessions_found, sessions_needed, reason, analysis_date::text "
        "FROM feature3.unscored_jobs ORDER BY job_id",
    )
    scored = fetch(results_db, "SELECT job_id FROM feature3.metrics_storage_efficiency WHERE scope = 'job'")
    assert unscored and all(row[3] == 60 and row[2] < 60 for row in unscored), unscored
    assert {row[4] for row in unscored} == {"too_few_scorable_sessions"}
    assert {row[5] for row in unscored} == {"2026-11-26"}
    assert not {row[0] for row in unscored} & {row[0] for row in scored}  # "not scored" vs "scored": never both

    run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=run_day, conf={"min_sessions": 4})
    now_unscored = fetch(results_db, "SELECT job_id, sessions_found FROM feature3.unscored_jobs")
    now_scored = {row[0] for row in fetch(results_db, "SELECT job_id FROM feature3.metrics_storage_efficiency")}
    assert all(found < 4 for _, found in now_unscored), now_unscored  # the re-run replaced the day's rows
    assert {row[0] for row in unscored} - {row[0] for row in now_unscored} <= now_scored


def _document(host: str, run_day: datetime) -> dict:
    from datetime import timedelta

    return generate_document(
        vbr_host=host, jobs=6, sessions=700, seed=11,
        window_start=run_day - timedelta(days=90), window_end=run_day,
    )  # fmt: skip
