"""Alerts end to end: real ``dag.test()`` runs, real PostgreSQL, a real SMTP server receiving the mails."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dag_runner import fetch, run_dag, write_document
from hook_recorder import recorded

from tests.support.documents import newest_session
from tools.synthetic import generate_document

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.usefixtures("airflow_db")]

RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)
ADMINS = ["backup-admins@example.com", "storage-team@example.com"]
# seed 1: one job degrading, two with critical anomalies; seed 7: four with critical anomalies
HOSTS = {"vbr01": ("vbr01.example.local", 1), "vbr02": ("vbr02.example.local", 7)}


def sample(host: str, seed: int) -> dict:
    return generate_document(
        vbr_host=host, jobs=6, sessions=800, seed=seed,
        window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=RUN_DATE,
    )  # fmt: skip


def flagged_in_db(dsn: str) -> list[tuple[str, str, str]]:
    """(host, job, grade) of the job scorecards with an alerted flag (alerts.FLAGS_ALERTED), read independently."""
    return fetch(
        dsn,
        "SELECT vbr_host, job_name, grade FROM feature3.metrics_storage_efficiency WHERE scope = 'job' "
        "AND ((quality_flags->>'CRITICAL_ANOMALIES')::boolean OR (quality_flags->>'DEGRADING_TREND')::boolean "
        "OR (quality_flags->>'MISCONFIGURED')::boolean OR (quality_flags->>'LEVEL_SHIFT')::boolean) "
        "ORDER BY vbr_host, job_name",
    )


@pytest.fixture
def replay_dir(tmp_path: Path) -> Path:
    return tmp_path / "replay"


def test_one_summary_mail_lists_every_flagged_job(monkeypatch, results_db, replay_dir, smtp_sink):
    for name, (host, seed) in HOSTS.items():
        write_document(replay_dir, name, sample(host, seed))

    states = run_dag(
        monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE,
        conf={"alert_recipients": ADMINS},
    )  # fmt: skip

    assert set(states.values()) == {"success"}, states
    flagged = flagged_in_db(results_db)
    assert {host for host, _, _ in flagged} == {"vbr01.example.local", "vbr02.example.local"}
    assert len(smtp_sink.mails) == 1, [mail.subject for mail in smtp_sink.mails]  # one per run, not per host
    mail = smtp_sink.mails[0]
    assert sorted(mail.recipients) == sorted(ADMINS)
    assert mail.sender == "airflow@ops.example.com"
    assert f"{len(flagged)} jobs flagged on 2 VBR hosts" in mail.subject
    degrading = fetch(
        results_db,
        "SELECT count(*) FROM feature3.metrics_storage_efficiency WHERE scope = 'job' "
        "AND (quality_flags->>'DEGRADING_TREND')::boolean",
    )[0][0]
    assert degrading >= 1 and f"({degrading} degrading," in mail.subject
    job_lines = [line for line in mail.text.splitlines() if line.startswith("- ")]
    assert len(job_lines) == len(flagged)
    for host, job, grade in flagged:
        line = next(i for i, text in enumerate(mail.text.splitlines()) if text == f"- {job}  on {host}  (2026-11-26)")
        details = mail.text.splitlines()[line + 1]
        assert details.strip().startswith(f"grade {grade} (score ")
        assert re.search(r"drop ([+-]\d+\.\d%|n/a), at stake \$[\d,]+/year, [\d,.]+ GB/day, flags: ", details)
    # the money at stake is listed largest first
    amounts = [int(m.replace(",", "")) for m in re.findall(r"at stake \$([\d,]+)/year", mail.text)]
    assert amounts == sorted(amounts, reverse=True) and len(amounts) == len(flagged)


def test_failed_task_mail_names_dag_task_host_try_and_log(monkeypatch, results_db, replay_dir, smtp_sink):
    broken = sample("vbr02.example.local", 5)
    # breaks the collector contract: validate fails, no retry
    del newest_session(broken)["job_id"]
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", 1))
    write_document(replay_dir, "vbr02", broken)

    states = run_dag(
        monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE,
        conf={"alert_recipients": ADMINS[:1]},
    )  # fmt: skip

    assert states["score_vbr_host.validate[1]"] == "failed"
    assert states["alert_degraded_jobs"] == "success"  # runs when only some hosts loaded
    failures = [mail for mail in smtp_sink.mails if "task failed" in mail.subject]
    assert len(failures) == 1, [mail.subject for mail in smtp_sink.mails]
    mail = failures[0]
    assert mail.recipients == ADMINS[:1]
    assert "veeam_storage_efficiency.score_vbr_host.validate on vbr02 (try 1)" in mail.subject
    fields = dict(re.findall(r"^(\w[\w ]*):\s+(.*)$", mail.text, flags=re.MULTILINE))
    assert fields["DAG"] == "veeam_storage_efficiency"
    assert fields["Task"] == "score_vbr_host.validate"
    assert fields["VBR host"] == "vbr02"
    assert fields["Try"] == "1 of 4"  # failed at once (a contract error), though 3 retries are allowed
    assert re.fullmatch(
        r"https?://\S+/dags/veeam_storage_efficiency/runs/\S+/tasks/score_vbr_host\.validate/mapped/1\?try_number=1",
        fields["Log"],
    ), fields["Log"]
    assert "job_id" in fields["Error"]
    # the summary covers only the host that loaded
    summaries = [mail for mail in smtp_sink.mails if "flagged on" in mail.subject]
    assert len(summaries) == 1 and "on 1 VBR host " in summaries[0].subject
    assert "vbr02" not in summaries[0].text and "vbr01.example.local" in summaries[0].text


def test_without_smtp_the_run_is_undisturbed_and_the_hook_still_hears(monkeypatch, results_db, replay_dir, hook_log):
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    broken = sample("vbr02.example.local", 5)
    del newest_session(broken)["job_id"]
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", 1))
    write_document(replay_dir, "vbr02", broken)

    states = run_dag(
        monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE,
        conf={"alert_recipients": ADMINS},
    )  # fmt: skip

    assert states["score_vbr_host.validate[1]"] == "failed"
    others = {task: state for task, state in states.items() if not task.endswith("[1]") and task != "run"}
    assert set(others.values()) == {"success"}, states
    assert states["run"] == "failed"  # one host failed: the run says so, the other host's results stand
    subjects = [alert["subject"] for alert in recorded(str(hook_log))]
    assert len(subjects) == 2, subjects
    assert "task failed: veeam_storage_efficiency.score_vbr_host.validate on vbr02" in subjects[0]
    assert f"{len(flagged_in_db(results_db))} jobs flagged on 1 VBR host " in subjects[1]


def test_degradation_alert_can_be_switched_off(monkeypatch, results_db, replay_dir, smtp_sink):
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", 1))

    states = run_dag(
        monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE,
        conf={"alert_recipients": ADMINS, "alert_on_degradation": False},
    )  # fmt: skip

    assert set(states.values()) == {"success"}, states
    assert flagged_in_db(results_db), "the data must have flagged jobs for this test to mean anything"
    assert smtp_sink.mails == []


def test_when_no_host_loads_the_summary_task_still_finishes(monkeypatch, results_db, replay_dir, smtp_sink):
    write_document(replay_dir, "vbr01", sample("vbr01.example.local", 1))

    states = run_dag(
        monkeypatch, results_dsn=results_db, replay_dir=replay_dir, logical_date=RUN_DATE,
        conf={"alert_recipients": ADMINS[:1], "weight_dedup": 0.5},  # weights no longer sum to 1
    )  # fmt: skip

    assert states["ensure_results_schema"] == "failed"
    assert states["alert_degraded_jobs"] == "success"
    subjects = [mail.subject for mail in smtp_sink.mails]
    assert not [subject for subject in subjects if "flagged on" in subject], subjects
    schema_mail = next(mail for mail in smtp_sink.mails if ".ensure_results_schema on - (try 1)" in mail.subject)
    assert "Try:       1 of 4" in schema_mail.text  # failed at once, though 3 retries were allowed
    assert "weights must sum to 1" in schema_mail.text
