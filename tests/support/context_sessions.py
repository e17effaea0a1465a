"""Session tables and settings frames for the tests of the grade in context (not a test module)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from veeam_efficiency.context_scores import add_context
from veeam_efficiency.expectations import SETTINGS_COLUMNS
from veeam_efficiency.scorecards import score_window
from veeam_efficiency.settings import AnalysisSettings

GIB = 2**30
WINDOW_START = datetime(2026, 10, 28, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 27, tzinfo=UTC)
SETTINGS = AnalysisSettings()


def job_sessions(
    job_id: str,
    *,
    n: int = 40,
    dedup_raw: int | Sequence[int] = 97,
    compress_raw: int | Sequence[int] = 37,
    data: float = 100 * GIB,
    algorithm: str | Sequence[str] = "Increment",
    job_type: str | None = None,
    hours_apart: float = 17.0,
) -> pd.DataFrame:
    """``n`` scorable sessions of one job, ``hours_apart`` apart from the window's start.

    ``job_type`` defaults to one of the job's own, so it has no peers unless a test wants some.
    """

    def each(value: Any) -> np.ndarray:
        return np.asarray(value) if isinstance(value, (list, tuple, np.ndarray)) else np.full(n, value)

    d_raw, c_raw = each(dedup_raw).astype(np.int64), each(compress_raw).astype(np.int64)
    created = pd.DatetimeIndex([WINDOW_START + timedelta(hours=hours_apart * i) for i in range(n)])
    dedup, compression = 100.0 / d_raw, 100.0 / c_raw
    return pd.DataFrame(
        {
            "session_id": [f"{job_id}-{i:04d}" for i in range(n)],
            "job_id": job_id,
            "job_name": f"Job {job_id}",
            "job_type": job_type or f"Backup-{job_id}",
            "algorithm": each(algorithm).astype(object),
            "result": "Success",
            "is_retry": False,
            "creation_time": created,
            "end_time": created + timedelta(minutes=30),
            "data_size_bytes": np.full(n, int(data), dtype=np.int64),
            "backup_size_bytes": (data / (dedup * compression)).astype(np.int64),
            "read_size_bytes": np.full(n, int(data), dtype=np.int64),
            "transferred_size_bytes": (data / (dedup * compression)).astype(np.int64),
            "dedup_ratio_raw": d_raw,
            "compress_ratio_raw": c_raw,
            "dedup_ratio": dedup,
            "compression_ratio": compression,
            "combined_ratio": dedup * compression,
            "excluded_reason": pd.Series([None] * n, dtype=object),
        }
    )


def settings_frame(*jobs: dict[str, Any]) -> pd.DataFrame:
    """A job-settings frame (issue 13's ``jobs`` flattened); unnamed fields are null (unknown)."""
    return pd.DataFrame([{name: job.get(name) for name in SETTINGS_COLUMNS} for job in jobs], dtype=object)


DISK = {"dedup_appliance": False, "repository_name": "Repo01", "repository_type": "WinLocal"}
APPLIANCE = {"dedup_appliance": True, "repository_name": "DD01", "repository_type": "DataDomain"}
BEST_PRACTICE_DISK = {**DISK, "compression_level": "Optimal", "block_size_kb": 1024, "inline_dedup": True}


def context_cards(
    *jobs: pd.DataFrame, job_settings: pd.DataFrame | None = None, settings: AnalysisSettings = SETTINGS
) -> pd.DataFrame:
    """Scorecards with the context columns, indexed by job_id (the host row is '*')."""
    sessions = pd.concat(jobs, ignore_index=True)
    result = score_window(
        sessions,
        sorted(sessions["job_id"].unique()),
        settings,
        vbr_host="vbr.test",
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        analysis_date=date(2026, 11, 26),
    )
    return add_context(result.scorecards, sessions, job_settings, settings).set_index("job_id")


def raw_daily_gb(n: int, data: float = 100 * GIB, days: int | None = None) -> float:
    """GB a day of ``n`` sessions of ``data`` over the window (``lookback_days`` of the default settings)."""
    return n * data / (days or SETTINGS.lookback_days) / GIB
