"""optimization.add_optimization_potential: daily storage, waste against the target, and its cost."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from veeam_efficiency.optimization import add_optimization_potential
from veeam_efficiency.scorecards import score_window
from veeam_efficiency.settings import AnalysisSettings

GIB = 2**30
SETTINGS = AnalysisSettings(lookback_days=30)  # 30 days keep the hand sums round; target 4.5x, 100 USD/TB


def _cards(*rows: tuple[str, str, float, float]) -> pd.DataFrame:
    """(job_id, scope, data_scored_bytes, combined_factor) per row."""
    return pd.DataFrame(rows, columns=["job_id", "scope", "data_scored_bytes", "combined_factor"])


def test_one_job_by_hand() -> None:
    # 3000 GiB scored over 30 days at combined 2.0x
    row = add_optimization_potential(_cards(("j", "job", 3000 * GIB, 2.0)), SETTINGS).iloc[0]
    assert row["raw_daily_gb"] == pytest.approx(100.0)  # 3000 / 30
    assert row["current_daily_gb"] == pytest.approx(50.0)  # 100 / 2.0
    assert row["target_daily_gb"] == pytest.approx(22.2222, abs=1e-4)  # 100 / 4.5
    assert row["optimization_potential_gb"] == pytest.approx(27.7778, abs=1e-4)  # 50 - 22.2222
    assert row["projected_monthly_savings_gb"] == pytest.approx(833.3333, abs=1e-4)  # x 30
    assert row["annual_savings_usd"] == pytest.approx(976.5625, abs=1e-4)  # 833.33 x 12 = 10000; / 1024 x 100


def test_gb_are_binary() -> None:
    # 30 x 10^9 bytes is 27.94 GiB: 30e9 / 30 / 2^30 = 0.931323 GB a day
    row = add_optimization_potential(_cards(("j", "job", 30e9, 1.0)), SETTINGS).iloc[0]
    assert row["raw_daily_gb"] == pytest.approx(0.931323, rel=1e-6)


def test_job_better_than_target_has_no_potential() -> None:
    row = add_optimization_potential(_cards(("j", "job", 900 * GIB, 6.0)), SETTINGS).iloc[0]
    assert row["raw_daily_gb"] == pytest.approx(30.0)
    assert row["current_daily_gb"] == pytest.approx(5.0)  # 30 / 6
    assert row["target_daily_gb"] == pytest.approx(6.6667, abs=1e-4)  # 30 / 4.5
    assert row["optimization_potential_gb"] == 0.0  # max(0, -1.67)
    assert row["projected_monthly_savings_gb"] == 0.0
    assert row["annual_savings_usd"] == 0.0


def test_host_row_sums_its_jobs_and_a_good_job_offsets_nothing() -> None:
    cards = _cards(
        ("a", "job", 3000 * GIB, 2.0),  # current 50, target 22.22, potential 27.78
        ("b", "job", 900 * GIB, 6.0),  # current 5, target 6.67, potential 0
        ("*", "host", 3900 * GIB, 3900 / 1650),  # host combined from the jobs: 3900 / (1500 + 150)
    )
    host = add_optimization_potential(cards, SETTINGS).set_index("job_id").loc["*"]
    assert host["raw_daily_gb"] == pytest.approx(130.0)  # 3900 / 30
    assert host["current_daily_gb"] == pytest.approx(55.0)  # 50 + 5
    assert host["target_daily_gb"] == pytest.approx(28.8889, abs=1e-4)  # 22.2222 + 6.6667
    # summed per job: 27.78 + 0, not 55 - 28.89 = 26.11
    assert host["optimization_potential_gb"] == pytest.approx(27.7778, abs=1e-4)
    assert host["projected_monthly_savings_gb"] == pytest.approx(833.3333, abs=1e-4)
    assert host["annual_savings_usd"] == pytest.approx(976.5625, abs=1e-4)


def test_lookback_price_and_targets_come_from_settings() -> None:
    settings = AnalysisSettings(lookback_days=10, price_per_tb_usd=20.0, target_dedup_factor=2.0)
    row = add_optimization_potential(_cards(("j", "job", 1000 * GIB, 2.0)), settings).iloc[0]
    assert row["raw_daily_gb"] == pytest.approx(100.0)  # 1000 / 10
    assert row["target_daily_gb"] == pytest.approx(100 / 3.6)  # 2.0 x 1.8 = 3.6 -> 27.7778
    assert row["optimization_potential_gb"] == pytest.approx(50 - 100 / 3.6)  # 22.2222
    # 22.2222 x 30 = 666.667 GB a month; x 12 / 1024 x 20 = 156.25 USD
    assert row["annual_savings_usd"] == pytest.approx(156.25)


def test_input_is_not_modified() -> None:
    cards = _cards(("j", "job", 3000 * GIB, 2.0))
    add_optimization_potential(cards, SETTINGS)
    assert list(cards.columns) == ["job_id", "scope", "data_scored_bytes", "combined_factor"]


def test_one_job_end_to_end_from_sessions() -> None:
    # 8 Increments of 100 GiB, dedup raw 50 (2.0x), compression raw 50 / 40 (2.0x / 2.5x) alternating:
    # after dedup 400 GiB, after both 4 x 25 + 4 x 20 = 180 GiB -> combined 800 / 180 = 4.4444x
    start = datetime(2026, 10, 28, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "session_id": [f"s{i}" for i in range(8)],
            "job_id": "A",
            "job_name": "Job A",
            "algorithm": "Increment",
            "creation_time": pd.to_datetime([start + timedelta(days=i) for i in range(8)], utc=True),
            "data_size_bytes": 100 * GIB,
            "dedup_ratio_raw": 50,
            "compress_ratio_raw": [50, 40] * 4,
            "combined_ratio": [4.0, 5.0] * 4,
            "excluded_reason": pd.Series([None] * 8, dtype=object),
        }
    )
    cards = score_window(
        frame,
        ["A"],
        SETTINGS,
        vbr_host="h",
        window_start=start,
        window_end=start + timedelta(days=30),
        analysis_date=date(2026, 11, 26),
    ).scorecards
    costed = add_optimization_potential(cards, SETTINGS).set_index("job_id")
    job = costed.loc["A"]
    assert job["combined_factor"] == pytest.approx(800 / 180)
    assert job["raw_daily_gb"] == pytest.approx(26.6667, abs=1e-4)  # 800 / 30
    assert job["current_daily_gb"] == pytest.approx(6.0)  # 26.6667 / 4.4444
    assert job["target_daily_gb"] == pytest.approx(5.925926, abs=1e-6)  # 26.6667 / 4.5
    assert job["optimization_potential_gb"] == pytest.approx(0.0740741, abs=1e-7)  # 6 - 5.925926
    assert job["projected_monthly_savings_gb"] == pytest.approx(2.222222, abs=1e-6)  # x 30
    assert job["annual_savings_usd"] == pytest.approx(2.6041667, abs=1e-6)  # 2.2222 x 12 = 26.667; / 1024 x 100
    host = costed.loc["*"]
    assert host["optimization_potential_gb"] == pytest.approx(job["optimization_potential_gb"])
    assert host["annual_savings_usd"] == pytest.approx(2.6041667, abs=1e-6)
