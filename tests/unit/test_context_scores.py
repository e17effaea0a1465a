"""The grade in context: expected factors, context score and grade, flags, roll-up; the seed left as it was."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.support.context_sessions import (
    APPLIANCE,
    BEST_PRACTICE_DISK,
    DISK,
    SETTINGS,
    context_cards,
    job_sessions,
    settings_frame,
)
from veeam_efficiency.calibration import EXPECTED_COMPRESSION_FACTOR, EXPECTED_DEDUP_FACTOR
from veeam_efficiency.context_scores import CONTEXT_COLUMNS, add_context, job_settings_frame
from veeam_efficiency.expectations import PEER_PRIOR_WEIGHT, SETTINGS_COLUMNS
from veeam_efficiency.job_settings import job_settings_records
from veeam_efficiency.scorecards import score_window
from veeam_efficiency.tables import QUALITY_FLAGS, SCORE_FLAGS


def test_seed_columns_are_untouched() -> None:
    sessions = pd.concat([job_sessions("A"), job_sessions("B", compress_raw=90)], ignore_index=True)
    seed = score_window(
        sessions, ["A", "B"], SETTINGS, vbr_host="h", window_start=sessions["creation_time"].min(),
        window_end=sessions["creation_time"].max(), analysis_date=sessions["creation_time"].min().date(),
    ).scorecards  # fmt: skip
    cards = add_context(seed, sessions, None, SETTINGS)
    assert list(cards.columns[: len(seed.columns)]) == list(seed.columns)
    pd.testing.assert_frame_equal(cards[seed.columns].drop(columns="quality_flags"), seed.drop(columns="quality_flags"))
    assert set(CONTEXT_COLUMNS) <= set(cards.columns)
    for old, new in zip(seed["quality_flags"], cards["quality_flags"], strict=True):
        assert list(new) == [*SCORE_FLAGS, "MISCONFIGURED", "LEVEL_SHIFT"] == list(QUALITY_FLAGS)
        assert {flag: new[flag] for flag in SCORE_FLAGS} == old
        assert all(isinstance(value, bool) for value in new.values())


def test_v1_expectation_is_the_calibration_when_a_job_has_no_peers() -> None:
    card = context_cards(job_sessions("A", compress_raw=67)).loc["A"]  # 1.49x, stable
    assert card["context_expected_dedup_factor"] == pytest.approx(EXPECTED_DEDUP_FACTOR["Increment"])
    assert card["context_expected_compression_factor"] == pytest.approx(EXPECTED_COMPRESSION_FACTOR["Increment"])
    assert card["context_grade"] in ("C", "D", "F")  # its own stable 1.49x does not make it an A


def test_v1_expectation_moves_towards_peers_of_the_same_type_never_the_job_itself() -> None:
    peers = [job_sessions(f"P{i}", compress_raw=30, job_type="Backup") for i in range(3)]  # 3.33x
    cards = context_cards(job_sessions("A", compress_raw=67, job_type="Backup"), *peers)
    prior, peer = math.log(EXPECTED_COMPRESSION_FACTOR["Increment"]), math.log(100 / 30)
    expected = math.exp((PEER_PRIOR_WEIGHT * prior + 3 * peer) / (PEER_PRIOR_WEIGHT + 3))
    assert cards.loc["A", "context_expected_compression_factor"] == pytest.approx(expected)
    # a peer's expectation counts the other two peers and job A, not itself
    others = (PEER_PRIOR_WEIGHT * prior + 2 * peer + math.log(100 / 67)) / (PEER_PRIOR_WEIGHT + 3)
    assert cards.loc["P0", "context_expected_compression_factor"] == pytest.approx(math.exp(others))


def test_other_job_types_are_not_peers() -> None:
    peers = [job_sessions(f"P{i}", compress_raw=30, job_type="EpAgentBackup") for i in range(3)]
    cards = context_cards(job_sessions("A", compress_raw=67, job_type="Backup"), *peers)
    assert cards.loc["A", "context_expected_compression_factor"] == pytest.approx(
        EXPECTED_COMPRESSION_FACTOR["Increment"]
    )


def test_expectation_is_data_weighted_over_backup_kinds() -> None:
    kinds = ["Full" if i % 7 == 0 else "Increment" for i in range(42)]
    card = context_cards(job_sessions("K", n=42, algorithm=kinds)).loc["K"]
    fulls, increments = kinds.count("Full"), kinds.count("Increment")
    after_dedup = fulls / EXPECTED_DEDUP_FACTOR["Full"] + increments / EXPECTED_DEDUP_FACTOR["Increment"]
    stored = fulls / (EXPECTED_DEDUP_FACTOR["Full"] * EXPECTED_COMPRESSION_FACTOR["Full"]) + increments / (
        EXPECTED_DEDUP_FACTOR["Increment"] * EXPECTED_COMPRESSION_FACTOR["Increment"]
    )
    assert card["context_expected_dedup_factor"] == pytest.approx(42 / after_dedup)
    assert card["context_expected_compression_factor"] == pytest.approx(after_dedup / stored)


def test_best_practice_job_reaching_its_expectation_grades_a_or_b_and_worse_settings_score_lower() -> None:
    good = job_sessions("G", dedup_raw=97, compress_raw=37)  # 1.03x and 2.70x: the calibration
    best = context_cards(good, job_settings=settings_frame({"job_id": "G", **BEST_PRACTICE_DISK}))
    assert best.loc["G", "context_grade"] in ("A", "B")
    assert best.loc["G", "recommendations"] == []
    weak = context_cards(
        good, job_settings=settings_frame({"job_id": "G", **BEST_PRACTICE_DISK, "inline_dedup": False})
    )
    assert weak.loc["G", "context_score"] < best.loc["G", "context_score"]
    assert weak.loc["G", "overall_score"] == best.loc["G", "overall_score"]  # the seed's score does not move


def test_appliance_set_up_as_advised_expects_1x_and_grades_well() -> None:
    sessions = job_sessions("D", dedup_raw=100, compress_raw=100)
    frame = settings_frame(
        {"job_id": "D", **APPLIANCE, "compression_level": "None", "inline_dedup": False, "encryption": False}
    )
    card = context_cards(sessions, job_settings=frame).loc["D"]
    assert card["context_expected_dedup_factor"] == 1.0 and card["context_expected_compression_factor"] == 1.0
    assert card["context_grade"] in ("A", "B") and card["grade"] in ("D", "F")  # the seed sees 1x: poor


def test_a_critical_recommendation_is_c_or_worse_and_misconfigured() -> None:
    sessions = job_sessions("D", dedup_raw=100, compress_raw=100)
    frame = settings_frame(
        {"job_id": "D", **APPLIANCE, "compression_level": "None", "inline_dedup": False, "encryption": True}
    )
    cards = context_cards(sessions, job_settings=frame)
    assert cards.loc["D", "context_grade"] in ("C", "D", "F")
    assert cards.loc["D", "context_score"] < SETTINGS.grade_b_min
    assert cards.loc["D", "quality_flags"]["MISCONFIGURED"] is True
    assert cards.loc["*", "quality_flags"]["MISCONFIGURED"] is True


def test_incompressible_data_is_judged_by_its_own_compression() -> None:
    sessions = job_sessions("M", dedup_raw=97, compress_raw=94)
    card = context_cards(sessions, job_settings=settings_frame({"job_id": "M", **BEST_PRACTICE_DISK})).loc["M"]
    assert card["context_expected_compression_factor"] == pytest.approx(100 / 94)
    assert card["context_grade"] in ("A", "B") and card["grade"] in ("D", "F")
    assert card["attainable_annual_savings_usd"] == 0.0


def test_level_shift_flag_and_change_point_columns() -> None:
    sessions = job_sessions("X", compress_raw=[37] * 24 + [57] * 16)
    cards = context_cards(sessions, job_sessions("Y"))
    assert cards.loc["X", "change_point_at"] == sessions["creation_time"].iloc[24]
    assert cards.loc["X", "change_point_shift"] == pytest.approx(37 / 57 - 1)
    assert cards.loc["X", "quality_flags"]["LEVEL_SHIFT"] is True
    assert cards.loc["Y", "quality_flags"]["LEVEL_SHIFT"] is False and pd.isna(cards.loc["Y", "change_point_at"])
    assert cards.loc["*", "quality_flags"]["LEVEL_SHIFT"] is True
    rise = context_cards(job_sessions("R", compress_raw=[57] * 20 + [37] * 20)).loc["R"]
    assert rise["change_point_shift"] > 0 and rise["quality_flags"]["LEVEL_SHIFT"] is False
    assert rise["recommendations"] == []


def test_host_rollup_weights_context_score_by_data_and_sums_attainable() -> None:
    small = job_sessions("S", compress_raw=100, data=10 * 2**30)
    large = job_sessions("L", compress_raw=37, data=300 * 2**30)
    frame = settings_frame({"job_id": "S", **DISK, "compression_level": "None"}, {"job_id": "L", **BEST_PRACTICE_DISK})
    cards = context_cards(small, large, job_settings=frame)
    jobs, host = cards.loc[["S", "L"]], cards.loc["*"]
    weight = jobs["data_scored_bytes"]
    assert host["context_score"] == pytest.approx(np.average(jobs["context_score"], weights=weight))
    assert host["attainable_potential_gb"] == pytest.approx(jobs["attainable_potential_gb"].sum())
    assert host["attainable_annual_savings_usd"] == pytest.approx(jobs["attainable_annual_savings_usd"].sum())
    assert host["context_grade"] == ("A" if host["context_score"] >= 85 else host["context_grade"])
    expected_after_dedup = (weight / jobs["context_expected_dedup_factor"]).sum()
    assert host["context_expected_dedup_factor"] == pytest.approx(weight.sum() / expected_after_dedup)


def test_job_settings_frame_flattens_contract_v2_jobs() -> None:
    assert job_settings_frame(None) is None
    frame = job_settings_frame(
        job_settings_records({"jobs": [
            {
                "job_id": "j1", "job_name": "Job 1", "job_type": "Backup", "compression_level": "Optimal",
                "block_size_kb": 1024, "inline_dedup": True, "encryption": False,
                "repository": {
                    "repository_id": "r1", "name": "DD01", "type": "DataDomain", "dedup_appliance": True,
                    "decompress_before_storing": True, "align_blocks": True, "fast_clone": None,
                    "object_storage": False, "scale_out": False,
                },
            },
            {"job_id": "j2", "job_name": "Job 2", "job_type": "Backup", "compression_level": None,
             "block_size_kb": None, "inline_dedup": None, "encryption": None, "repository": None},
        ]})
    )  # fmt: skip
    assert frame is not None
    assert list(frame.columns) == list(SETTINGS_COLUMNS)
    first = frame.iloc[0].to_dict()
    assert first["repository_name"] == "DD01" and first["repository_type"] == "DataDomain"
    assert first["dedup_appliance"] is True and first["fast_clone"] is None
    assert frame.iloc[1][list(SETTINGS_COLUMNS[3:])].isna().all()
