"""Each recommendation rule: when it fires, its severity, its money (by hand), and when it must not fire."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.support.context_sessions import (
    APPLIANCE,
    BEST_PRACTICE_DISK,
    DISK,
    GIB,
    SETTINGS,
    context_cards,
    job_sessions,
    raw_daily_gb,
    settings_frame,
)
from veeam_efficiency.calibration import EXPECTED_COMPRESSION_FACTOR, EXPECTED_DEDUP_FACTOR
from veeam_efficiency.recommendations import FIELDS

N = 40  # sessions per job in these tests
RAW_DAILY = raw_daily_gb(N)  # 133.3 GB a day
PRICE = 100.0  # USD per TB per month, the default


def usd(monthly_gb: float) -> float:
    return monthly_gb * 12 / 1024 * PRICE


def findings(sessions: pd.DataFrame, **settings: Any) -> dict[str, dict[str, Any]]:
    job_id = str(sessions["job_id"].iloc[0])
    frame = settings_frame({"job_id": job_id, **settings}) if settings else None
    cards = context_cards(sessions, job_settings=frame)
    return {item["code"]: item for item in cards.loc[job_id, "recommendations"]}


def only(found: dict[str, dict[str, Any]], code: str) -> dict[str, Any]:
    assert list(found) == [code]
    item = found[code]
    assert list(item) == list(FIELDS)
    return item


def test_encryption_on_dedup_appliance_is_critical_and_priced() -> None:
    sessions = job_sessions("E", dedup_raw=100, compress_raw=100)
    found = findings(
        sessions, **APPLIANCE, encryption=True, compression_level="None", inline_dedup=False, fast_clone=False
    )
    item = only(found, "ENCRYPTION_ON_DEDUP_APPLIANCE")
    assert item["severity"] == "critical"
    monthly = RAW_DAILY / 1.0 * (1 - 1 / 2.0) * 30  # stored a day, half of it kept by the appliance
    assert item["est_monthly_savings_gb"] == pytest.approx(monthly)
    assert item["est_annual_savings_usd"] == pytest.approx(usd(monthly))
    assert "DD01 (DataDomain)" in item["detail"] and "Enable backup file encryption" in item["detail"]


def test_compression_on_dedup_appliance_is_a_warning_without_money() -> None:
    found = findings(
        job_sessions("C", dedup_raw=100, compress_raw=50),
        **APPLIANCE,
        compression_level="Optimal",
        decompress_before_storing=False,
        inline_dedup=False,
        encryption=False,
    )
    item = only(found, "COMPRESSION_ON_DEDUP_APPLIANCE")
    assert item["severity"] == "warning"
    assert item["est_monthly_savings_gb"] is None and item["est_annual_savings_usd"] is None
    assert "Decompress backup data blocks before storing" in item["detail"]


def test_compression_on_appliance_that_decompresses_is_fine() -> None:
    found = findings(
        job_sessions("C", dedup_raw=100, compress_raw=50),
        **APPLIANCE,
        compression_level="Optimal",
        decompress_before_storing=True,
        inline_dedup=False,
        encryption=False,
    )
    assert found == {}


def test_inline_dedup_on_dedup_appliance_is_info() -> None:
    found = findings(
        job_sessions("I", dedup_raw=100, compress_raw=100),
        **APPLIANCE,
        inline_dedup=True,
        compression_level="None",
        encryption=False,
    )
    item = only(found, "INLINE_DEDUP_ON_DEDUP_APPLIANCE")
    assert item["severity"] == "info" and item["est_annual_savings_usd"] is None


@pytest.mark.parametrize("level", ["None", "DedupeFriendly"])
def test_compression_off_on_disk_priced_at_the_expected_compression(level: str) -> None:
    compress_raw = 100 if level == "None" else 67
    found = findings(job_sessions("O", dedup_raw=97, compress_raw=compress_raw), **DISK, compression_level=level)
    item = only(found, "COMPRESSION_OFF")
    assert item["severity"] == "warning"
    dedup, compression = 100 / 97, 100 / compress_raw
    expected = EXPECTED_COMPRESSION_FACTOR["Increment"]  # no peers: the calibration
    monthly = (RAW_DAILY / (dedup * compression) - RAW_DAILY / (dedup * expected)) * 30
    assert item["est_monthly_savings_gb"] == pytest.approx(monthly)
    assert item["est_annual_savings_usd"] == pytest.approx(usd(monthly))
    assert f"Compression is {level}" in item["detail"] and "Optimal" in item["detail"]


def test_inline_dedup_off_on_disk_priced_at_the_expected_dedup() -> None:
    found = findings(job_sessions("D", dedup_raw=100, compress_raw=37), **DISK, inline_dedup=False)
    item = only(found, "INLINE_DEDUP_OFF")
    compression = 100 / 37
    monthly = (RAW_DAILY / compression - RAW_DAILY / (EXPECTED_DEDUP_FACTOR["Increment"] * compression)) * 30
    assert item["est_monthly_savings_gb"] == pytest.approx(monthly)
    assert item["est_annual_savings_usd"] == pytest.approx(usd(monthly))


@pytest.mark.parametrize(("block_kb", "growth"), [(4096, 1.5), (8192, 2.0)])
def test_large_blocks_on_disk_priced_on_the_incrementals(block_kb: int, growth: float) -> None:
    kinds = ["Full" if i % 7 == 0 else "Increment" for i in range(N)]
    found = findings(job_sessions("L", algorithm=kinds), **DISK, block_size_kb=block_kb)
    item = only(found, "LARGE_BLOCKS_ON_DISK")
    increments = kinds.count("Increment")
    stored_daily = increments * 100 * 0.97 * 0.37 / SETTINGS.lookback_days  # GB of incrementals written a day
    monthly = stored_daily * (1 - 1 / growth) * 30
    assert item["est_monthly_savings_gb"] == pytest.approx(monthly)
    assert item["est_annual_savings_usd"] == pytest.approx(usd(monthly))
    assert f"{block_kb // 1024} MB" in item["detail"]


def test_large_blocks_on_an_appliance_are_not_flagged() -> None:
    found = findings(job_sessions("L"), **APPLIANCE, block_size_kb=4096, compression_level="None", encryption=False)
    assert "LARGE_BLOCKS_ON_DISK" not in found


def test_incompressible_data_at_optimal_is_info_with_nothing_to_chase() -> None:
    found = findings(job_sessions("M", dedup_raw=98, compress_raw=94), **BEST_PRACTICE_DISK)
    item = only(found, "INCOMPRESSIBLE_DATA")
    assert item["severity"] == "info" and item["est_annual_savings_usd"] is None


def test_fast_clone_not_counted_is_info() -> None:
    found = findings(job_sessions("F"), **{**BEST_PRACTICE_DISK, "fast_clone": True, "repository_type": "ReFS"})
    item = only(found, "FAST_CLONE_NOT_COUNTED")
    assert item["severity"] == "info" and item["est_monthly_savings_gb"] is None


def test_compression_near_1x_only_when_settings_are_unknown() -> None:
    v1 = findings(job_sessions("N", dedup_raw=98, compress_raw=94))
    item = only(v1, "COMPRESSION_NEAR_1X")
    assert item["severity"] == "info" and item["est_annual_savings_usd"] is None
    assert "settings were not collected" in item["detail"]
    known = findings(job_sessions("N", dedup_raw=98, compress_raw=94), **BEST_PRACTICE_DISK)
    assert "COMPRESSION_NEAR_1X" not in known


def test_efficiency_drop_names_date_before_after_and_money() -> None:
    compress = [37] * 24 + [57] * 16  # 2.70x, then 1.75x: -35%
    sessions = job_sessions("X", compress_raw=compress)
    item = only(findings(sessions), "EFFICIENCY_DROP")
    before, after = 100 / 97 * 100 / 37, 100 / 97 * 100 / 57
    monthly = (RAW_DAILY / after - RAW_DAILY / before) * 30
    assert item["severity"] == "warning"
    assert item["est_monthly_savings_gb"] == pytest.approx(monthly)
    assert item["est_annual_savings_usd"] == pytest.approx(usd(monthly))
    when = sessions["creation_time"].iloc[24]
    assert f"{when:%Y-%m-%d %H:%M}" in item["detail"]
    assert f"{before:.2f}x" in item["detail"] and f"{after:.2f}x" in item["detail"] and "-35%" in item["detail"]


def test_v1_fires_no_settings_rule_and_nothing_critical() -> None:
    worst = job_sessions("W", dedup_raw=100, compress_raw=100)
    cards = context_cards(worst)
    codes = [item["code"] for item in cards.loc["W", "recommendations"]]
    assert codes == ["COMPRESSION_NEAR_1X"]
    assert cards.loc["W", "quality_flags"]["MISCONFIGURED"] is False


def test_a_job_absent_from_the_settings_has_unknown_settings() -> None:
    frame = settings_frame({"job_id": "other", **APPLIANCE, "encryption": True})
    cards = context_cards(job_sessions("W", dedup_raw=100, compress_raw=100), job_settings=frame)
    assert [item["code"] for item in cards.loc["W", "recommendations"]] == ["COMPRESSION_NEAR_1X"]


def test_null_settings_fire_nothing() -> None:
    frame = settings_frame({"job_id": "W", "dedup_appliance": None, "encryption": True, "compression_level": None})
    cards = context_cards(job_sessions("W", dedup_raw=100, compress_raw=37), job_settings=frame)
    assert cards.loc["W", "recommendations"] == []


def test_ordered_by_yearly_savings_nulls_last() -> None:
    sessions = job_sessions("S", dedup_raw=100, compress_raw=100)
    found = context_cards(
        sessions,
        job_settings=settings_frame(
            {
                "job_id": "S",
                **DISK,
                "compression_level": "None",
                "inline_dedup": False,
                "block_size_kb": 4096,
                "fast_clone": True,
            }
        ),
    ).loc["S", "recommendations"]
    assert [item["code"] for item in found] == [
        "COMPRESSION_OFF",
        "LARGE_BLOCKS_ON_DISK",
        "INLINE_DEDUP_OFF",
        "FAST_CLONE_NOT_COUNTED",
    ]
    money = [item["est_annual_savings_usd"] for item in found]
    assert money[:3] == sorted(money[:3], reverse=True) and money[3] is None


def test_attainable_potential_sums_the_recommendations_capped_at_what_is_stored() -> None:
    sessions = job_sessions("S", dedup_raw=100, compress_raw=100)
    cards = context_cards(
        sessions,
        job_settings=settings_frame({"job_id": "S", **DISK, "compression_level": "None", "inline_dedup": False}),
    )
    card = cards.loc["S"]
    monthly = sum(item["est_monthly_savings_gb"] for item in card["recommendations"])
    assert card["attainable_potential_gb"] == pytest.approx(min(monthly / 30, RAW_DAILY))
    assert card["attainable_annual_savings_usd"] == pytest.approx(usd(card["attainable_potential_gb"] * 30))
    host = cards.loc["*"]
    assert host["attainable_potential_gb"] == pytest.approx(card["attainable_potential_gb"])
    assert host["recommendations"] == []


def test_money_follows_the_price_param() -> None:
    from veeam_efficiency.settings import AnalysisSettings

    sessions = job_sessions("O", compress_raw=100)
    frame = settings_frame({"job_id": "O", **DISK, "compression_level": "None"})
    cheap = context_cards(sessions, job_settings=frame, settings=AnalysisSettings(price_per_tb_usd=10.0))
    dear = context_cards(sessions, job_settings=frame)
    ratio = dear.loc["O", "attainable_annual_savings_usd"] / cheap.loc["O", "attainable_annual_savings_usd"]
    assert ratio == pytest.approx(10.0)
    assert math.isfinite(dear.loc["O", "attainable_annual_savings_usd"])
    assert not np.isnan(dear.loc["O", "recommendations"][0]["est_annual_savings_usd"])
    assert dear.loc["O", "recommendations"][0]["est_monthly_savings_gb"] > 1000 * GIB / GIB
