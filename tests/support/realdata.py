"""Helpers for tests that read the real VBR sample (not a test module).

The sample lives outside the repository (``../shared/data`` or ``$VEEAM_SHARED_DATA``) and must
never be copied into it, so every test that uses it skips when it is absent.

The CSV has one row per task session (one VM in one job session) and repeats rows: the tasks of
a job session all carry the job-level ``BackupStats``, and the export holds exact duplicates.
:func:`real_sample_document` folds it back into job sessions, the unit the contract speaks of.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("VEEAM_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_CSV = "vbr_task_sessions_sample.csv"
REAL_SAMPLE_HOST = "ausveeam01.real.sample"
# Fixed namespace, so session_id and job_id are the same on every run and every machine.
REAL_SAMPLE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/VeeamHub/powershell#BR-VeeamSessionReport")
_STATUS_RANK = {"Success": 0, "Warning": 1, "Failed": 2}  # a job session is as bad as its worst task
_RESULTS = ("Success", "Warning", "Failed")
_ISO = "%Y-%m-%dT%H:%M:%SZ"


def real_sample_csv() -> Path | None:
    """The real task-session CSV, or None when this checkout has no shared data."""
    path = SHARED_DATA / SAMPLE_CSV
    return path if path.is_file() else None


def require_real_sample() -> Path:
    """The CSV path, or skip the calling test with a hint on where to put it."""
    path = real_sample_csv()
    if path is None:
        pytest.skip(
            f"real VBR sample not found at {SHARED_DATA / SAMPLE_CSV}; set VEEAM_SHARED_DATA "
            "to the folder holding it to run the real-data tests"
        )
    return path


def session_id_for(job_name: str, creation_time: str) -> str:
    """Deterministic session_id for the CSV's (JobName, CreationTime) pair, as written there."""
    return _uuid5(f"session|{job_name}|{creation_time}")


def job_id_for(job_name: str) -> str:
    return _uuid5(f"job|{job_name}")


def _uuid5(key: str) -> str:
    return str(uuid.uuid5(REAL_SAMPLE_NAMESPACE, key))


def real_sample_document(vbr_host: str = REAL_SAMPLE_HOST) -> dict[str, Any]:
    """Convert the real CSV into one JSON-ready contract document (one record per job session).

    CreationTime has no zone in the export (it is the server's local time); it is read as UTC,
    which keeps the order and spacing of sessions, all the scorer relies on. A job session is
    Full when any of its tasks ran Full, since its job-level BackupStats then include a full
    image. Failed sessions that never started a task have no WorkDuration: they end when they
    were created (finished, so not a running session with a null end_time).
    """
    path = require_real_sample()
    tasks = pd.read_csv(
        path,
        dtype={"JobName": str, "Status": str, "TaskAlgorithm": str, "CreationTime": str},
        keep_default_na=False,  # a job literally named "NA" stays a name
        na_values={"WorkDuration": [""]},
    ).drop_duplicates()
    tasks["status_rank"] = tasks["Status"].map(_STATUS_RANK)
    if tasks["status_rank"].isna().any():
        raise ValueError(f"unknown Status values: {sorted(set(tasks['Status']) - set(_STATUS_RANK))}")
    tasks["is_full"] = tasks["TaskAlgorithm"].eq("Full")
    tasks["is_retry"] = tasks["IsRetry"].astype(str).str.lower().eq("true")

    sessions = (
        tasks.groupby(["JobName", "CreationTime"], sort=False)
        .agg(
            status_rank=("status_rank", "max"),
            is_full=("is_full", "any"),
            is_retry=("is_retry", "any"),
            work_minutes=("WorkDuration", "max"),
            data_size=("DataSize", "first"),  # job-level BackupStats: equal on every task row
            backup_size=("BackupSize", "first"),
            dedup=("DedupRatio", "first"),
            compress=("CompressRatio", "first"),
        )
        .reset_index()
    )
    created = pd.to_datetime(sessions["CreationTime"], format="%m/%d/%Y %H:%M:%S").dt.tz_localize("UTC")
    ended = created + pd.to_timedelta(sessions["work_minutes"].fillna(0), unit="min")
    order = created.argsort(kind="stable")
    sessions, created, ended = sessions.iloc[order], created.iloc[order], ended.iloc[order]

    records = pd.DataFrame(
        {
            "session_id": ("session|" + sessions["JobName"] + "|" + sessions["CreationTime"]).map(_uuid5),
            "job_id": ("job|" + sessions["JobName"]).map(_uuid5),
            "job_name": sessions["JobName"],
            "job_type": "Backup",
            "algorithm": sessions["is_full"].map({True: "Full", False: "Increment"}),
            "result": sessions["status_rank"].map(dict(enumerate(_RESULTS))),
            "is_retry": sessions["is_retry"],
            "creation_time": created.dt.strftime(_ISO),
            "end_time": ended.dt.strftime(_ISO),
            "data_size_bytes": sessions["data_size"],
            "backup_size_bytes": sessions["backup_size"],
            "read_size_bytes": sessions["data_size"],
            "transferred_size_bytes": sessions["backup_size"],
            "dedup_ratio_raw": sessions["dedup"],
            "compress_ratio_raw": sessions["compress"],
        }
    )
    window_start = created.min().floor("D")
    window_end = ended.max().floor("D") + pd.Timedelta(days=1)
    return {
        "schema_version": 1,
        "vbr_host": vbr_host,
        "vbr_version": "unknown (BR-VeeamSessionReport export)",
        "collected_at": window_end.strftime(_ISO),
        "window_start": window_start.strftime(_ISO),
        "window_end": window_end.strftime(_ISO),
        "sessions": records.to_dict(orient="records"),
    }
