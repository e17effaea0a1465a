"""The alert texts, from plain values: no Airflow, no database."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from veeam_efficiency import alerts
from veeam_efficiency.settings import AlertSettings, param_specs


def card(job: str, host: str = "vbr01", *, critical: bool = False, degrading: bool = False, usd: float = 0.0, **extra):
    return {
        "vbr_host": host, "job_name": job, "analysis_date": "2026-11-26", "grade": "C", "overall_score": 61.234,
        "trend_change": -0.123, "annual_savings_usd": usd, "optimization_potential_gb": 12.5,
        "quality_flags": {"CRITICAL_ANOMALIES": critical, "DEGRADING_TREND": degrading, "HIGH_VARIANCE": True},
        **extra,
    }  # fmt: skip


def test_summary_lists_only_alerted_flags_by_money_at_stake():
    cards = [
        card("Small", usd=100, critical=True),
        card("Quiet"),  # only HIGH_VARIANCE: not alerted
        card("Big", host="vbr02", usd=12_345.6, degrading=True),
        card("Both", usd=5_000, critical=True, degrading=True),
    ]
    summary = alerts.degradation_summary(cards, dag_id="d", run_id="r")
    assert summary is not None
    assert summary.subject == (
        "[Veeam storage efficiency] 3 jobs flagged on 2 VBR hosts (2 degrading, 2 with critical anomalies), "
        "$17,446/year at stake"
    )
    jobs = [line.split("  on ")[0][2:] for line in summary.text.splitlines() if line.startswith("- ")]
    assert jobs == ["Big", "Both", "Small"]
    assert (
        "grade C (score 61.2), drop -12.3%, at stake $12,346/year, 12.5 GB/day, flags: DEGRADING_TREND" in summary.text
    )
    assert "flags: CRITICAL_ANOMALIES, DEGRADING_TREND" in summary.text
    assert "Quiet" not in summary.text


def test_no_flagged_job_no_summary():
    assert alerts.degradation_summary([card("Quiet")], dag_id="d", run_id="r") is None
    assert alerts.degradation_summary([], dag_id="d", run_id="r") is None


def test_missing_trend_and_money_read_as_not_available():
    summary = alerts.degradation_summary(
        [card("J", critical=True, trend_change=None, annual_savings_usd=math.nan)], dag_id="d", run_id="r"
    )
    assert summary is not None
    assert "drop n/a, at stake $0/year" in summary.text
    assert summary.subject.endswith("$0/year at stake") and "1 job flagged on 1 VBR host " in summary.subject


def test_hostile_job_names_stay_data():
    name = 'Finance "Q4" <script>alert(1)</script> {{ dag }}\r\nBcc: evil@example.com'
    summary = alerts.degradation_summary([card(name, critical=True)], dag_id="d", run_id="r")
    assert summary is not None
    assert "<script>" not in summary.html and "&lt;script&gt;" in summary.html
    assert "\r" not in summary.text and "\nBcc:" not in summary.text  # one line per job, no header injection
    failure = alerts.task_failure(
        dag_id="d", task_id="t", vbr_host="h\r\nBcc: x@example.com", try_number=1, max_tries=0, run_id="r",
        log_url="http://x", error=ValueError("bad\nthing"),
    )  # fmt: skip
    assert "\n" not in failure.subject and "\r" not in failure.subject


def test_failure_message_names_everything_an_admin_needs():
    alert = alerts.task_failure(
        dag_id="veeam_storage_efficiency", task_id="score_vbr_host.collect", vbr_host="vbr07.corp", try_number=4,
        max_tries=3, run_id="scheduled__2026-11-27", log_url="http://airflow/log", error=TimeoutError("ssh timed out"),
    )  # fmt: skip
    assert alert.subject == (
        "[Veeam storage efficiency] task failed: veeam_storage_efficiency.score_vbr_host.collect on vbr07.corp (try 4)"
    )
    for line in (
        "VBR host:  vbr07.corp",
        "Try:       4 of 4",
        "Log:       http://airflow/log",
        "TimeoutError: ssh timed out",
    ):
        assert line in alert.text


def test_alert_settings_validate_recipients_and_read_the_env_default(monkeypatch):
    monkeypatch.setenv("VEEAM_ALERT_RECIPIENTS", " ops@example.com ,, dba@example.com ")
    assert AlertSettings().alert_recipients == ["ops@example.com", "dba@example.com"]
    assert param_specs(AlertSettings)["alert_recipients"]["default"] == ["ops@example.com", "dba@example.com"]
    with pytest.raises(ValidationError):
        AlertSettings(alert_recipients=["not an address"])
    with pytest.raises(ValidationError):
        AlertSettings(smtp_conn_id="")


def test_param_schema_refuses_a_bad_address():
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamValidationError

    param = Param(**param_specs(AlertSettings)["alert_recipients"])
    assert param.resolve(["ops@example.com"]) == ["ops@example.com"]
    with pytest.raises(ParamValidationError):
        param.resolve(["ops@example.com; rm -rf /"])


def test_asset_uris_name_the_feature3_tables():
    from veeam_efficiency.airflow import assets

    assert assets.table_uri(host="db.corp", port=None, database="veeam", table=assets.SCORECARDS) == (
        "postgres://db.corp:5432/veeam/feature3/metrics_storage_efficiency"
    )
    assert assets.table_uri(host="", port=None, database=None, table=assets.HISTORY) == (
        "postgres://localhost:5432/postgres/feature3/storage_efficiency_history"
    )


def test_summary_covers_misconfigured_and_level_shift_with_the_top_recommendation():
    top = {
        "code": "ENCRYPTION_ON_DEDUP_APPLIANCE", "severity": "critical",
        "title": "Encryption defeats the deduplicating appliance", "detail": "Turn off encryption.",
        "est_monthly_savings_gb": 2000.0, "est_annual_savings_usd": 2343.75,
    }  # fmt: skip
    note = {**top, "code": "FAST_CLONE_NOT_COUNTED", "severity": "info", "title": "Fast clone",
            "est_monthly_savings_gb": None, "est_annual_savings_usd": None}  # fmt: skip
    flags = {"CRITICAL_ANOMALIES": False, "DEGRADING_TREND": False, "HIGH_VARIANCE": False}
    cards = [
        card("Encrypted", usd=10.0, quality_flags={**flags, "MISCONFIGURED": True, "LEVEL_SHIFT": False},
             context_grade="C", context_score=69.9, attainable_annual_savings_usd=2343.75,
             recommendations=[top, note]),
        card("Dropped", usd=5.0, quality_flags={**flags, "MISCONFIGURED": False, "LEVEL_SHIFT": True},
             context_grade="B", context_score=72.0, attainable_annual_savings_usd=0.0, recommendations=[note]),
        card("Quiet", quality_flags={**flags, "MISCONFIGURED": False, "LEVEL_SHIFT": False}, recommendations=[note]),
    ]  # fmt: skip
    summary = alerts.degradation_summary(cards, dag_id="d", run_id="r")
    assert summary is not None
    assert "2 jobs flagged on 1 VBR host (0 degrading, 0 with critical anomalies, 1 misconfigured, " in summary.subject
    assert "1 with a level shift)" in summary.subject
    text = summary.text
    assert "flags: MISCONFIGURED" in text and "flags: LEVEL_SHIFT" in text and "Quiet" not in text
    assert "in context: grade C (score 69.9), following the recommendations saves $2,344/year" in text
    assert "top recommendation [critical, $2,344/year]: Encryption defeats the deduplicating appliance" in text
    assert "top recommendation [info, no storage figure]: Fast clone" in text
    assert "      Turn off encryption." in text
