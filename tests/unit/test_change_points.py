"""change_points: level shifts found and dated, noise and weekly fulls left alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.support.context_sessions import job_sessions
from veeam_efficiency.calibration import NOISE_LOG_SD
from veeam_efficiency.change_points import MIN_SERIES, change_points


def noisy(
    job_id: str, n: int, *, seed: int, shift: float = 0.0, at: int | None = None, **kwargs: object
) -> pd.DataFrame:
    """A job whose combined factor is 2.78x with the real sample's noise, times (1 + shift) from ``at``."""
    rng = np.random.default_rng(seed)
    factor = 2.78 * np.exp(rng.normal(0.0, NOISE_LOG_SD, n))
    if at is not None:
        factor[at:] *= 1 + shift
    sessions = job_sessions(job_id, n=n, **kwargs)  # type: ignore[arg-type]
    return sessions.assign(combined_ratio=factor)


def test_a_35_percent_drop_is_found_and_dated_to_the_first_session_after_it() -> None:
    sessions = noisy("J", 60, seed=1, shift=-0.35, at=37)
    found = change_points(sessions)
    assert list(found.index) == ["J"]
    row = found.loc["J"]
    assert row["change_point_at"] == sessions["creation_time"].iloc[37]
    assert row["change_point_shift"] == pytest.approx(-0.35, abs=0.06)
    assert row["change_point_kind"] == "Increment"
    assert row["factor_after"] / row["factor_before"] - 1 == pytest.approx(row["change_point_shift"])
    assert row["series_raw_bytes"] == pytest.approx(sessions["data_size_bytes"].sum())


def test_a_rise_is_a_change_point_with_a_positive_shift() -> None:
    found = change_points(noisy("J", 40, seed=2, shift=0.5, at=20))
    assert found.loc["J", "change_point_shift"] > 0.3


def test_stable_noisy_jobs_have_no_change_point() -> None:
    stable = pd.concat([noisy(f"S{seed}", 45, seed=seed) for seed in range(20)], ignore_index=True)
    assert change_points(stable).empty


def test_weekly_fulls_are_not_a_shift() -> None:
    kinds = np.where(np.arange(56) % 7 == 0, "Full", "Increment")
    sessions = job_sessions("W", n=56, algorithm=list(kinds), dedup_raw=[36 if k == "Full" else 97 for k in kinds])
    assert change_points(sessions).empty


def test_a_drop_in_the_incrementals_is_found_beside_weekly_fulls() -> None:
    kinds = ["Full" if i % 7 == 0 else "Increment" for i in range(56)]
    compress = [55 if (kind == "Increment" and i >= 30) else 37 for i, kind in enumerate(kinds)]
    sessions = job_sessions("W", n=56, algorithm=kinds, compress_raw=compress)
    row = change_points(sessions).loc["W"]
    assert row["change_point_kind"] == "Increment"
    assert row["change_point_at"] == sessions["creation_time"].iloc[30]
    assert row["change_point_shift"] == pytest.approx(37 / 55 - 1)


def test_a_small_step_is_not_a_shift() -> None:
    """From 2.70x to 2.56x: significant on constant data, but 5% is not worth a backup admin's time."""
    sessions = job_sessions("Q", compress_raw=[37] * 20 + [39] * 20)
    assert change_points(sessions).empty


def test_constant_short_and_empty_series() -> None:
    assert change_points(job_sessions("C")).empty
    short = job_sessions("T", n=MIN_SERIES - 1, compress_raw=[37, 37, 37, 80, 80, 80, 80][: MIN_SERIES - 1])
    assert change_points(short).empty
    empty = change_points(job_sessions("C").iloc[0:0])
    assert empty.empty and "change_point_at" in empty.columns


def test_each_job_gets_its_own_verdict() -> None:
    sessions = pd.concat(
        [noisy("A", 50, seed=3, shift=-0.5, at=10), noisy("B", 50, seed=4), noisy("C", 50, seed=5, shift=-0.2, at=40)]
    )
    found = change_points(sessions)
    assert sorted(found.index) == ["A", "C"]
