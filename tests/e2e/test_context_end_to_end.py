"""The grade in context end to end on contract v1 and v2 documents: real Airflow (``dag.test()``), real PostgreSQL."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dag_runner import fetch, run_dag, write_document

from veeam_efficiency.storage import ensure_schema
from veeam_efficiency.tables import SCORECARD_TABLE

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.usefixtures("airflow_db")]

REPO = Path(__file__).resolve().parents[2]
RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)  # the window is 2026-10-28 .. 2026-11-27
FIRST = datetime(2026, 10, 28, 1, tzinfo=UTC)
GIB = 2**30
DROP_AT = 25
CONTEXT = (
    "context_expected_dedup_factor", "context_expected_compression_factor", "context_score", "context_grade",
    "attainable_potential_gb", "attainable_annual_savings_usd", "recommendations", "change_point_at",
    "change_point_shift",
)  # fmt: skip


def sessions(job: str, compress_raw: list[int], dedup_raw: int = 97) -> list[dict[str, Any]]:
    rows = []
    for i, compress in enumerate(compress_raw):
        created = FIRST + timedelta(hours=17 * i)
        rows.append(
            {
                "session_id": f"{job}-{i:03d}", "job_id": f"id-{job}", "job_name": job, "job_type": "Backup",
                "algorithm": "Increment", "result": "Success", "is_retry": False,
                "creation_time": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end_time": (created + timedelta(minutes=40)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data_size_bytes": 100 * GIB, "backup_size_bytes": int(100 * GIB * dedup_raw * compress / 10_000),
                "read_size_bytes": 100 * GIB, "transferred_size_bytes": int(100 * GIB * dedup_raw * compress / 10_000),
                "dedup_ratio_raw": dedup_raw, "compress_ratio_raw": compress,
            }
        )  # fmt: skip
    return rows


def document() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "vbr_host": "vbr01.example.local",
        "vbr_version": "12.3.1.1139",
        "collected_at": "2026-11-27T00:30:00Z",
        "window_start": "2026-10-28T00:00:00Z",
        "window_end": "2026-11-27T00:00:00Z",
        "sessions": [
            *sessions("Steady", [37] * 40),
            *sessions("Dropped", [37] * DROP_AT + [57] * 15),
            *sessions("Media Archive", [94] * 40, dedup_raw=98),
        ],
    }


# Contract v2: one job per rule, each set up so that its rule, and only its rule, fires.
DISK = {"type": "WinLocal", "dedup_appliance": False, "decompress_before_storing": False, "fast_clone": False}
REFS = {**DISK, "type": "WinLocal", "fast_clone": True}
APPLIANCE = {"type": "DDBoost", "dedup_appliance": True, "decompress_before_storing": True, "fast_clone": False}
GOOD = {"compression_level": "Optimal", "block_size_kb": 1024, "inline_dedup": True, "encryption": False}
RULE_JOBS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]] = {
    # rule: (session shape, job settings, repository); no settings for the rule that needs none
    "ENCRYPTION_ON_DEDUP_APPLIANCE": (
        {"compress_raw": [100] * 40, "dedup_raw": 100},
        {**GOOD, "compression_level": "None", "inline_dedup": False, "encryption": True},
        APPLIANCE,
    ),
    "COMPRESSION_ON_DEDUP_APPLIANCE": (
        {"compress_raw": [50] * 40, "dedup_raw": 100},
        {**GOOD, "inline_dedup": False},
        {**APPLIANCE, "decompress_before_storing": False},
    ),
    "INLINE_DEDUP_ON_DEDUP_APPLIANCE": (
        {"compress_raw": [100] * 40, "dedup_raw": 100},
        {**GOOD, "compression_level": "DedupeFriendly"},
        APPLIANCE,
    ),
    "COMPRESSION_OFF": ({"compress_raw": [100] * 40}, {**GOOD, "compression_level": "None"}, DISK),
    "INLINE_DEDUP_OFF": ({"compress_raw": [50] * 40, "dedup_raw": 100}, {**GOOD, "inline_dedup": False}, DISK),
    "LARGE_BLOCKS_ON_DISK": ({"compress_raw": [50] * 40}, {**GOOD, "block_size_kb": 4096}, DISK),
    "INCOMPRESSIBLE_DATA": ({"compress_raw": [95] * 40, "dedup_raw": 98}, GOOD, DISK),
    "FAST_CLONE_NOT_COUNTED": ({"compress_raw": [50] * 40}, GOOD, REFS),
    "EFFICIENCY_DROP": ({"compress_raw": [37] * DROP_AT + [57] * 15}, GOOD, DISK),
    "COMPRESSION_NEAR_1X": ({"compress_raw": [95] * 40, "dedup_raw": 98}, {}, None),
    "": ({"compress_raw": [50] * 40}, GOOD, DISK),  # best practice, reaching what it can: no finding
}
SEVERITY = {"ENCRYPTION_ON_DEDUP_APPLIANCE": "critical", "FAST_CLONE_NOT_COUNTED": "info", "INCOMPRESSIBLE_DATA": "info",
            "INLINE_DEDUP_ON_DEDUP_APPLIANCE": "info", "COMPRESSION_NEAR_1X": "info"}  # fmt: skip


def v2_document() -> dict[str, Any]:
    jobs, rows = [], []
    for number, (code, (shape, job_settings, repository)) in enumerate(RULE_JOBS.items()):
        name = code or "Best Practice"
        rows += [{**row, "object_name": None} for row in sessions(name, **shape)]
        if repository is not None:
            jobs.append({
                "job_id": f"id-{name}", "job_name": name, "job_type": "Backup", **job_settings,
                "repository": {
                    "repository_id": f"repo-{number}", "name": f"Repository {number}", "align_blocks": True,
                    "object_storage": False, "scale_out": False, **repository,
                },
            })  # fmt: skip
    return {**document(), "schema_version": 2, "vbr_host": "vbr02.example.local", "sessions": rows, "jobs": jobs}


def test_one_job_per_rule_v2_and_v1_documents_get_their_verdicts_end_to_end(monkeypatch, results_db, tmp_path):
    replay = tmp_path / "replay"
    write_document(replay, "vbr01", document())
    write_document(replay, "vbr02", v2_document())

    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=replay, logical_date=RUN_DATE)

    assert set(states.values()) == {"success"}, states
    rows = fetch(
        results_db,
        f"SELECT job_name, {', '.join(CONTEXT)}, quality_flags, grade, annual_savings_usd "
        "FROM feature3.metrics_storage_efficiency WHERE vbr_host = 'vbr01.example.local' ORDER BY job_name",
    )
    cards = {
        row[0]: dict(zip((*CONTEXT, "quality_flags", "grade", "annual_savings_usd"), row[1:], strict=True))
        for row in rows
    }
    assert set(cards) == {"(all jobs)", "Dropped", "Media Archive", "Steady"}
    for card in cards.values():
        assert 0 <= card["context_score"] <= 100 and card["context_grade"] in "ABCDF"
        assert card["quality_flags"]["MISCONFIGURED"] is False  # nothing is critical without settings
        assert set(card["quality_flags"]) == {
            "CRITICAL_ANOMALIES", "DEGRADING_TREND", "HIGH_VARIANCE", "MISCONFIGURED", "LEVEL_SHIFT",
        }  # fmt: skip

    dropped = cards["Dropped"]
    assert dropped["quality_flags"]["LEVEL_SHIFT"] is True
    assert dropped["change_point_at"] == FIRST + timedelta(hours=17 * DROP_AT)
    assert dropped["change_point_shift"] == pytest.approx(37 / 57 - 1)
    assert [item["code"] for item in dropped["recommendations"]] == ["EFFICIENCY_DROP"]
    top = dropped["recommendations"][0]
    assert top["severity"] == "warning" and top["est_annual_savings_usd"] > 0
    assert dropped["attainable_annual_savings_usd"] == pytest.approx(top["est_annual_savings_usd"])

    media = cards["Media Archive"]
    assert [item["code"] for item in media["recommendations"]] == ["COMPRESSION_NEAR_1X"]
    assert media["recommendations"][0]["est_annual_savings_usd"] is None
    assert media["attainable_annual_savings_usd"] == 0.0 < media["annual_savings_usd"]  # no setting recovers it

    steady = cards["Steady"]
    assert steady["recommendations"] == [] and steady["change_point_at"] is None
    assert steady["quality_flags"]["LEVEL_SHIFT"] is False

    host = cards["(all jobs)"]
    assert host["attainable_potential_gb"] == pytest.approx(
        sum(cards[j]["attainable_potential_gb"] for j in ("Dropped", "Media Archive", "Steady"))
    )
    assert host["quality_flags"]["LEVEL_SHIFT"] is True and host["recommendations"] == []

    # contract v2: each rule's job gets that verdict and no other, with its severity and money
    v2 = {
        job: (recommendations, flags, context_grade, attainable)
        for job, recommendations, flags, context_grade, attainable in fetch(
            results_db,
            "SELECT job_name, recommendations, quality_flags, context_grade, attainable_annual_savings_usd "
            "FROM feature3.metrics_storage_efficiency WHERE vbr_host = 'vbr02.example.local' AND scope = 'job'",
        )
    }
    assert set(v2) == {code or "Best Practice" for code in RULE_JOBS}
    for code in RULE_JOBS:
        recommendations, flags, _grade, attainable = v2[code or "Best Practice"]
        assert [item["code"] for item in recommendations] == ([code] if code else []), (code, recommendations)
        if code:
            item = recommendations[0]
            assert item["severity"] == SEVERITY.get(code, "warning"), item
            assert item["title"] and item["detail"], item
            money = item["est_annual_savings_usd"]
            assert (money is None) == (
                code in {c for c, s in SEVERITY.items() if s == "info"} | {"COMPRESSION_ON_DEDUP_APPLIANCE"}
            ), item
            assert attainable == pytest.approx(money or 0.0)
        assert flags["MISCONFIGURED"] is (code == "ENCRYPTION_ON_DEDUP_APPLIANCE")
        assert flags["LEVEL_SHIFT"] is (code == "EFFICIENCY_DROP")
    assert v2["ENCRYPTION_ON_DEDUP_APPLIANCE"][2] in "CDF"  # a critical recommendation: C or worse in context
    assert v2["Best Practice"][2] in "AB"  # best practice, reaching its expected factors, stably


def test_migration_adds_the_context_columns_to_an_existing_table(results_db):
    old_schema = subprocess.run(
        ["git", "-C", str(REPO), "show", "78290db:include/sql/schema.sql"], capture_output=True, text=True, check=False
    )
    if old_schema.returncode != 0:
        pytest.skip("the schema before the grade in context (commit 78290db) is not in this clone's history")
    with psycopg.connect(results_db) as conn:
        conn.execute(old_schema.stdout)
        conn.execute(
            "INSERT INTO feature3.metrics_storage_efficiency VALUES ('h', 'j', '2026-11-01', 'job', 'J', now(), now(), "
            "30, 30, 0, '{}', 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 'F', 'POOR', 'STABLE', NULL, NULL, 0, 0, 0, 0, 0, 0, "
            "'{}')"
        )
        conn.commit()
        ensure_schema(conn)
        ensure_schema(conn)  # idempotent
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'feature3' AND table_name = 'metrics_storage_efficiency'"
            )
        }
        old_row = conn.execute(
            "SELECT recommendations, context_grade, change_point_at FROM feature3.metrics_storage_efficiency"
        ).fetchone()
    assert set(SCORECARD_TABLE.names) <= columns and set(CONTEXT) <= columns
    assert old_row == ([], None, None)
