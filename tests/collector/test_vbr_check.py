"""The veeam_vbr_check DAG (``dag.test()``) and its report, with the stand-in pwsh in diagnose mode."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tools.synthetic import generate_document
from veeam_efficiency.diagnosis import diagnosis_report

REPO = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)

DIAGNOSTICS = {
    "powershell_version": "5.1.20348.2849",
    "powershell_edition": "Desktop",
    "module_source": "Veeam.Backup.PowerShell (module path)",
    "session_path": "CBackupSession.GetAllSessionsByPolicyJobAndTimeRange per job",
    "session_path_reason": "GetByTypeAndTimeInterval is missing; indexed per job, child sessions included",
    "missing_queries": ["CBackupSession.GetByTypeAndTimeInterval(EDbJobType, DateTime, DateTime)"],
    "sessions_read": 57,
    "sessions_by_job_type": {"Backup": 40},
    "skipped": {"running": 1, "duplicate": 0, "no_BackupStats:CBackupSessionWrapper": 2},
    "timings_s": {"loading the Veeam PowerShell module": 3.2, "reading sessions": 41.5},
    "missing": ["Get-VBRComputerBackupJob is not available: those jobs have unknown settings"],
}


def diagnose_document(**diagnostics: Any) -> dict[str, Any]:
    document = generate_document(
        vbr_host="vbr01.example.test", jobs=4, sessions=60, window_start=NOW - timedelta(days=1), window_end=NOW
    )
    document["diagnostics"] = DIAGNOSTICS | diagnostics
    return document


def test_report_names_versions_path_types_settings_timings_and_gaps() -> None:
    document = diagnose_document()
    report = diagnosis_report(json.dumps(document), "vbr01")
    text = report.text
    for expected in (
        "VBR server vbr01.example.test (VBR 12.3.1.1139), contract version 2",
        "PowerShell 5.1.20348.2849 Desktop",
        "Session path: CBackupSession.GetAllSessionsByPolicyJobAndTimeRange per job (GetByTypeAndTimeInterval is missing",
        "Missing indexed query: CBackupSession.GetByTypeAndTimeInterval(EDbJobType, DateTime, DateTime)",
        "no_BackupStats:CBackupSessionWrapper 2",
        "reading sessions 41.5 s",
        f"Storage settings found for {len(document['jobs'])} jobs:",
        "READY, WITH GAPS",
        "gap: Get-VBRComputerBackupJob is not available",
    ):
        assert expected in text, (expected, text)
    first_job = document["jobs"][0]
    assert f"{first_job['job_name']!r}: compression {first_job['compression_level']}" in text
    assert report.problems == []


def test_report_says_not_ready_without_a_session_path_or_with_a_broken_document() -> None:
    blocked = diagnose_document(session_path="none", session_path_reason="this VBR build lacks every indexed query")
    blocked["sessions"] = []
    report = diagnosis_report(json.dumps(blocked), "vbr01")
    assert "NOT READY" in report.text and "lacks every indexed query" in report.problems[0]
    broken = diagnosis_report('{"schema_version": 2, "vbr_host": ""}', "vbr01")
    assert "breaks the contract" in broken.text and broken.problems


@pytest.mark.airflow
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.usefixtures("airflow_db")
def test_check_dag_runs_the_script_in_diagnose_mode_and_logs_the_report(fake_pwsh, tmp_path, capsys, caplog) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    document_path = tmp_path / "diagnose.json"
    document_path.write_text(json.dumps(diagnose_document(), ensure_ascii=False), encoding="utf-8")
    pwsh = fake_pwsh("replay", fixture=str(document_path))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["veeam_vbr_check"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual only: no schedule

    run = dag.test(run_conf={"collector": "local", "vbr_hosts": ["vbr01"], "pwsh_path": str(pwsh.path)})
    captured = capsys.readouterr()
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
    assert states == {"list_vbr_hosts": "success", "diagnose": "success", "watch_collector_pool": "success"}, states
    recorded = pwsh.recorded()
    assert recorded["switches"] == ["-Diagnose"]
    window = [datetime.fromisoformat(value.replace("Z", "+00:00")) for value in recorded["window"]]
    assert window[1] - window[0] == timedelta(days=1)
    # the task log: printed by dag.test(), or captured as log records, depending on who set logging up first
    report = "\n".join([captured.out, captured.err, *(record.getMessage() for record in caplog.records)])
    assert "VBR check report for vbr01" in report and "Session path: CBackupSession" in report
    assert "READY, WITH GAPS" in report
