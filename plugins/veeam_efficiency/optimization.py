"""Optimization potential: storage and money a job wastes against the 'good' benchmark.

GB are binary (2**30 bytes), as Veeam's console shows them; a TB is 1024 GB.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from veeam_efficiency.settings import AnalysisSettings

BYTES_PER_GB = 2**30
GB_PER_TB = 1024
DAYS_PER_MONTH = 30
MONTHS_PER_YEAR = 12


def add_optimization_potential(scorecards: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """Add daily storage today and at target, the waste, and its monthly and yearly cost.

    ``raw_daily_gb`` = scored data / days in window; ``current`` = raw / combined
    factor; ``target`` = raw / (target dedup x target compression); the potential is
    ``max(0, current - target)`` per day, 30 days a month. The host row sums its jobs'
    figures: a job already better than the target cannot offset another's waste.
    """
    cards = scorecards.copy()
    days = settings.lookback_days
    is_host = cards["scope"].eq("host").to_numpy()
    raw_daily = cards["data_scored_bytes"].to_numpy(dtype=float) / days / BYTES_PER_GB
    current = raw_daily / cards["combined_factor"].to_numpy(dtype=float)
    target = raw_daily / (settings.target_dedup_factor * settings.target_compression_factor)
    potential = np.maximum(0.0, current - target)
    if is_host.any():
        jobs = ~is_host
        for column in (current, target, potential):
            column[is_host] = column[jobs].sum()
    monthly = potential * DAYS_PER_MONTH
    cards["raw_daily_gb"] = raw_daily
    cards["current_daily_gb"] = current
    cards["target_daily_gb"] = target
    cards["optimization_potential_gb"] = potential
    cards["projected_monthly_savings_gb"] = monthly
    cards["annual_savings_usd"] = monthly * MONTHS_PER_YEAR / GB_PER_TB * settings.price_per_tb_usd
    return cards
