"""Synthetic VBR collector documents: realistic, seeded and fast enough for the bench.

Real session data cannot ship with the package, yet the DAG, the scorer and the bench all
need documents that behave like a real Veeam Backup & Replication server: job profiles with
their own dedup/compression levels, weekly fulls, failed runs with zero sizes, retries,
metadata-dominated tiny increments, the odd implausible ratio, duplicate and running
sessions, a job whose dedup was switched off, a job that slowly degrades, and job names
that would break naive quoting. Everything is drawn column-wise with numpy from one seeded
generator, so a million sessions take seconds and the same seed gives the same document.

CLI (writes compact JSON)::

    python -m tools.synthetic --host vbr01.example.local --jobs 12 --sessions 2100 \\
        --start 2026-07-01T00:00:00Z --end 2026-11-27T00:00:00Z --seed 101 --out vbr01.json
"""

from __future__ import annotations

import argparse
import gc
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from veeam_efficiency.contract import SCHEMA_VERSION, SESSION_FIELDS

DAY = 86_400
GB = 1_000_000_000
MB = 1_000_000
FULL_EVERY = 7  # weekly active or synthetic full among daily increments
FAILED_SHARE = 0.02
WARNING_SHARE = 0.03
RETRY_AFTER_FAILED = 0.7  # share of failed runs that Veeam's automatic retry picks up
TINY_SHARE = 0.01
DUPLICATE_SHARE = 0.001
IMPLAUSIBLE_EVERY = 20_000  # sessions per implausible ratio (at least one from 500 sessions)
SPECIAL_JOB_SHARE = 0.03  # jobs with dedup switched off, and jobs that degrade


@dataclass(frozen=True)
class JobProfile:
    """What a kind of job backs up, as the ratios and sizes a backup admin would expect."""

    names: tuple[str, ...]  # plain and awkward names alternate, so small servers get both
    dedup_raw: tuple[float, float]  # increments; fulls dedup better (their own level)
    compress_raw: tuple[float, float]
    full_gb: tuple[float, float]  # log-uniform
    change_rate: tuple[float, float]  # increment size as a share of the full
    runs_per_day: float


PROFILES: dict[str, JobProfile] = {
    "vm": JobProfile(
        names=(
            "VM Prod Tier1",
            'Finance "Quarter-End" VMs',
            "vCenterServers",
            "HR; Payroll VMs",
            "Domain Controllers",
            "Zürich VMs – täglich",
            "Hyper-V Cluster",
            "Test $(whoami) VMs",
        ),
        dedup_raw=(33, 77),  # 1.3x - 3x
        compress_raw=(45, 62),  # 1.6x - 2.2x
        full_gb=(200, 4_000),
        change_rate=(0.02, 0.08),
        runs_per_day=1,
    ),
    "sql": JobProfile(
        names=("SQL Log backup", "東京 SQL ログ", "SQLLogCopy", "Oracle `hostname` RMAN logs"),
        dedup_raw=(88, 99),  # logs barely dedup ...
        compress_raw=(22, 40),  # ... but text-heavy pages compress 2.5x - 4.5x
        full_gb=(50, 800),
        change_rate=(0.01, 0.05),
        runs_per_day=2,
    ),
    "file": JobProfile(
        names=("File Server", "O'Brien's home shares", "DFS Namespaces", "NAS & Shares; Archiv"),
        dedup_raw=(55, 85),
        compress_raw=(55, 75),
        full_gb=(500, 8_000),
        change_rate=(0.005, 0.03),
        runs_per_day=1,
    ),
    "media": JobProfile(
        names=("Media Archive", "CCTV $(rm -rf /) footage", "Video Vault", "Médiathèque ñ"),
        dedup_raw=(92, 100),
        compress_raw=(95, 100),  # already compressed: ~1.0x
        full_gb=(1_000, 10_000),
        change_rate=(0.01, 0.04),
        runs_per_day=1,
    ),
}
# Cycled then shuffled, so even a 5-job server has VM, SQL, file and media jobs.
PROFILE_PATTERN = ("vm", "sql", "file", "vm", "media", "vm", "file", "sql", "vm", "media")
MONTHLY_NAME = "Monthly Archive – Full"
MONTHLY_RUNS_PER_DAY = 1 / 30

# Real metadata-only increments: a few KB of changed data, tens of MB written (real sample).
IMPLAUSIBLE_FIRST = (23_231, 44_388_352)  # data, backup bytes -> CompressRatio 191073

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_HEX_POS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def generate_document(
    *,
    vbr_host: str,
    jobs: int,
    sessions: int,
    window_start: datetime,
    window_end: datetime,
    seed: int = 0,
    vbr_version: str = "12.3.1.1139",
) -> dict[str, Any]:
    """Return one JSON-ready collector document with ``sessions`` sessions over ``jobs`` jobs.

    Sessions are spread evenly over the jobs (SQL log jobs run twice a day, roughly one job in
    twelve is a monthly archive) and over the window, each job at its own time of day.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if sessions < 0:
        raise ValueError(f"sessions must not be negative, got {sessions}")
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("window_start and window_end must be timezone-aware")
    start = int(window_start.timestamp())
    span = int(window_end.timestamp()) - start
    if span <= 0:
        raise ValueError(f"window_end {window_end.isoformat()} is not after {window_start.isoformat()}")

    rng = np.random.default_rng(seed)
    n_dup = round(sessions * DUPLICATE_SHARE)
    n = sessions - n_dup  # distinct sessions; the duplicates are re-emitted copies
    job = _plan_jobs(rng, jobs)
    runs = _sessions_per_job(n, job["runs_per_day"])

    # One row per distinct session, job-major: j = owning job, k = run number within the job.
    j = np.repeat(np.arange(jobs), runs)
    first_run = np.cumsum(runs) - runs
    k = np.arange(n) - first_run[j]
    runs_of = runs[j]
    progress = k / np.maximum(runs_of - 1, 1)  # 0 at the window start, 1 at the last run
    last_run = k == runs_of - 1

    # Each job runs at its own phase of its interval (its "hour"), with a little jitter.
    interval = span / np.maximum(runs, 1)
    jitter = np.clip(rng.normal(0, 0.03, n), -0.1, 0.1)
    offset = np.clip((k + job["phase"][j] + jitter) * interval[j], 0, span - 1)
    creation = start + offset.astype(np.int64)

    full = job["monthly"][j] | (k % FULL_EVERY == job["full_day"][j])
    algorithm = np.where(full, np.where(job["synthetic_full"][j], "Synthetic", "Full"), "Increment")

    # Ratio levels: per job, fulls at their own level, per-session noise, degrading drift.
    dedup = np.where(full, job["dedup_full"][j], job["dedup_inc"][j]) + rng.normal(0, 2.5, n)
    compress = np.where(full, job["compress_full"][j], job["compress_inc"][j]) + rng.normal(0, 1.5, n)
    dedup += job["dedup_drift"][j] * progress
    compress += job["compress_drift"][j] * progress
    dedup_off = job["dedup_off_runs"][j] > runs_of - 1 - k  # the last few runs
    dedup = np.where(dedup_off, 100, np.clip(np.rint(dedup), 1, 100)).astype(np.int64)
    compress = np.clip(np.rint(compress), 1, 100).astype(np.int64)

    growth = 1 + job["growth"][j] * progress
    change = np.where(full, rng.uniform(0.97, 1.03, n), job["change_rate"][j] * rng.lognormal(0, 0.35, n))
    data = job["full_bytes"][j] * growth * change

    # Outcome: a few failures and warnings; dedup-off runs stay clean so the anomaly shows.
    draw = rng.random(n)
    failed = (draw < FAILED_SHARE) & ~dedup_off
    warning = (draw >= FAILED_SHARE) & (draw < FAILED_SHARE + WARNING_SHARE) & ~dedup_off
    increment = ~full & ~failed & ~dedup_off
    tiny = increment & (rng.random(n) < TINY_SHARE)
    data = np.where(tiny, rng.uniform(2, 20, n) * MB, data)
    dedup = np.where(tiny, rng.integers(97, 101, n), dedup)
    compress = np.where(tiny, rng.integers(150, 401, n), compress)  # metadata outweighs 10 MB
    backup = data * dedup / 100 * compress / 100 * rng.normal(1, 0.01, n)

    implausible = _pick(rng, np.flatnonzero(increment & ~tiny), n // IMPLAUSIBLE_EVERY + (n >= 500))
    if implausible.size:
        data[implausible] = rng.uniform(20e3, 200e3, implausible.size)
        backup[implausible] = rng.uniform(20, 70, implausible.size) * MB
        data[implausible[0]], backup[implausible[0]] = IMPLAUSIBLE_FIRST
        dedup[implausible] = 100
        compress[implausible] = np.floor(backup[implausible] * 100 / np.rint(data[implausible]))

    # Failed runs usually write nothing; the rest stopped part-way.
    zeroed = failed & (rng.random(n) < 0.8)
    part = np.where(failed, rng.uniform(0.05, 0.5, n), 1.0)
    data, backup = data * part, backup * part
    data, backup = np.where(zeroed, 0, data), np.where(zeroed, 0, backup)
    dedup, compress = np.where(zeroed, 0, dedup), np.where(zeroed, 0, compress)

    duration = 60 + rng.uniform(0, 240, n) + data / job["throughput"][j]

    # Veeam retries a failed run shortly after it ends, for the failed VMs only.
    same_job_prev = np.zeros(n, dtype=bool)
    same_job_prev[1:] = j[1:] == j[:-1]
    retry = np.zeros(n, dtype=bool)
    retry[1:] = failed[:-1] & same_job_prev[1:] & ~dedup_off[1:]
    retry &= rng.random(n) < RETRY_AFTER_FAILED
    retry[1:] &= ~retry[:-1]  # no retry of a retry: keeps the time shift one step deep
    prev = np.flatnonzero(retry) - 1
    creation[prev + 1] = np.minimum(
        creation[prev] + duration[prev].astype(np.int64) + rng.integers(300, 1800, prev.size),
        start + span - 1,
    )
    shrink = np.where(retry, rng.uniform(0.2, 1.0, n), 1.0)
    data, backup = data * shrink, backup * shrink

    # A handful of jobs are still running at collection time: no end, no BackupStats yet.
    running = np.zeros(n, dtype=bool)
    keep = failed | (compress > 100) | (job["dedup_off_runs"][j] > 0)  # must still show when collected
    candidates = np.flatnonzero(last_run & (runs_of >= 2) & ~keep)
    running[_pick(rng, candidates, int(np.clip(round(jobs * 0.02), 1, 25)))] = True
    data = np.where(running, data * rng.uniform(0.1, 0.9, n), data)
    backup = np.where(running, 0, backup)
    dedup, compress = np.where(running, 0, dedup), np.where(running, 0, compress)
    failed, warning, retry = failed & ~running, warning & ~running, retry & ~running

    data_bytes = np.rint(data).astype(np.int64)
    backup_bytes = np.rint(backup).astype(np.int64)
    transferred = np.rint(np.where(running, data * 0.5, backup) * rng.uniform(0.98, 1.02, n)).astype(np.int64)
    result = np.where(failed, "Failed", np.where(warning, "Warning", "Success"))
    end = creation + duration.astype(np.int64)

    # Duplicates: a collector paging overlap re-emits a few finished sessions verbatim.
    copies = _pick(rng, np.flatnonzero(~running), n_dup)
    rows = np.concatenate([np.arange(n), copies])
    rows = rows[np.argsort(creation[rows], kind="stable")]

    jr = j[rows]
    end_text: list[str | None] = list(_iso(end[rows]))
    for still_running in np.flatnonzero(running[rows]).tolist():  # a handful, not per session
        end_text[still_running] = None
    columns: dict[str, list[Any]] = {
        "session_id": _uuid_strings(rng, n)[rows].tolist(),
        "job_id": job["job_id"][jr].tolist(),
        "job_name": job["job_name"][jr].tolist(),
        "job_type": ["Backup"] * rows.size,
        "algorithm": algorithm[rows].tolist(),
        "result": result[rows].tolist(),
        "is_retry": retry[rows].tolist(),
        "creation_time": _iso(creation[rows]),
        "end_time": end_text,
        "data_size_bytes": data_bytes[rows].tolist(),
        "backup_size_bytes": backup_bytes[rows].tolist(),
        "read_size_bytes": data_bytes[rows].tolist(),
        "transferred_size_bytes": transferred[rows].tolist(),
        "dedup_ratio_raw": dedup[rows].tolist(),
        "compress_ratio_raw": compress[rows].tolist(),
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "vbr_host": vbr_host,
        "vbr_version": vbr_version,
        "collected_at": _iso(np.array([start + span]))[0],
        "window_start": _iso(np.array([start]))[0],
        "window_end": _iso(np.array([start + span]))[0],
        "sessions": _records(columns),
    }


def _plan_jobs(rng: np.random.Generator, jobs: int) -> dict[str, np.ndarray]:
    """Per-job settings: profile, name, ids, ratio levels, sizes and the special cases."""
    kinds = rng.permutation(np.resize(np.array(PROFILE_PATTERN), jobs))
    profiles = [PROFILES[str(kind)] for kind in kinds]

    def between(bounds: list[tuple[float, float]]) -> np.ndarray:
        low, high = np.array(bounds, dtype=float).T
        return rng.uniform(low, high)

    full_gb = np.exp(between([(np.log(p.full_gb[0]), np.log(p.full_gb[1])) for p in profiles]))
    dedup_inc = between([p.dedup_raw for p in profiles])
    compress_inc = between([p.compress_raw for p in profiles])
    runs_per_day = np.array([p.runs_per_day for p in profiles], dtype=float)

    # Special jobs come from VM and file jobs: their good dedup is what makes a change visible.
    vm = np.flatnonzero(kinds == "vm")
    monthly_jobs = _pick(rng, vm, max(1, jobs // 12) if jobs >= 6 else 0)
    pool = np.setdiff1d(np.flatnonzero(np.isin(kinds, ["vm", "file"])), monthly_jobs)
    n_special = max(1, round(jobs * SPECIAL_JOB_SHARE)) if jobs >= 4 else 0
    # The jobs with the most dedup to lose, taken in turns: the change stands out of the noise.
    best_dedup = pool[np.argsort(dedup_inc[pool], kind="stable")]
    dedup_off_jobs, degrading_jobs = best_dedup[0::2][:n_special], best_dedup[1::2][:n_special]

    monthly = np.zeros(jobs, dtype=bool)
    monthly[monthly_jobs] = True
    runs_per_day[monthly] = MONTHLY_RUNS_PER_DAY
    dedup_off_runs = np.zeros(jobs, dtype=np.int64)
    dedup_off_runs[dedup_off_jobs] = rng.integers(3, 6, dedup_off_jobs.size)
    dedup_drift = np.zeros(jobs)
    # Lose 40-60% of the dedup headroom over the window: steady, and never hidden by the 100 cap.
    dedup_drift[degrading_jobs] = (100 - dedup_inc[degrading_jobs]) * rng.uniform(0.4, 0.6, degrading_jobs.size)
    compress_drift = np.zeros(jobs)
    compress_drift[degrading_jobs] = rng.uniform(3, 8, degrading_jobs.size)

    return {
        "job_id": _uuid_strings(rng, jobs),
        "job_name": np.asarray(_job_names(kinds, monthly), dtype=object),
        "runs_per_day": runs_per_day,
        "monthly": monthly,
        "phase": rng.random(jobs),
        "full_day": rng.integers(0, FULL_EVERY, jobs),
        "synthetic_full": rng.random(jobs) < 0.4,
        "dedup_inc": dedup_inc,
        "compress_inc": compress_inc,
        "dedup_full": np.maximum(100 - (100 - dedup_inc) * rng.uniform(1.1, 1.6, jobs), 20),
        "compress_full": compress_inc * rng.uniform(0.9, 1.0, jobs),
        "dedup_drift": dedup_drift,
        "compress_drift": compress_drift,
        "dedup_off_runs": dedup_off_runs,
        "full_bytes": full_gb * GB,
        "change_rate": between([p.change_rate for p in profiles]),
        "growth": rng.uniform(0, 0.2, jobs),
        "throughput": rng.uniform(150, 600, jobs) * MB,  # bytes per second
    }


def _job_names(kinds: np.ndarray, monthly: np.ndarray) -> list[str]:
    """Admin-style names, unique per server; a per-job (not per-session) loop."""
    seen: dict[str, int] = {}
    names = []
    for kind, is_monthly in zip(kinds.tolist(), monthly.tolist(), strict=True):
        stems = (MONTHLY_NAME,) if is_monthly else PROFILES[kind].names
        key = "monthly" if is_monthly else kind
        count = seen[key] = seen.get(key, -1) + 1
        lap = count // len(stems)
        names.append(stems[count % len(stems)] + (f" {lap + 1:02d}" if lap else ""))
    return names


def _sessions_per_job(n: int, runs_per_day: np.ndarray) -> np.ndarray:
    """Split n sessions over jobs by how often each runs; largest remainders get the spare."""
    share = n * runs_per_day / runs_per_day.sum()
    runs = np.floor(share).astype(np.int64)
    spare = n - int(runs.sum())
    runs[np.argsort(runs - share, kind="stable")[:spare]] += 1
    return runs


def _pick(rng: np.random.Generator, pool: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` distinct members of ``pool``, in random order."""
    return rng.permutation(pool)[: max(count, 0)]


def _uuid_strings(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random (version 4) UUID text for n ids, built as one byte matrix rather than n uuid4() calls."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2], nibbles[:, 1::2] = raw >> 4, raw & 0x0F
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_HEX_POS] = _HEX[nibbles]
    return text.view("S36").ravel().astype("U36")


def _iso(epoch_seconds: np.ndarray) -> list[str]:
    """``2026-07-01T00:00:00Z`` text, as the PowerShell collector writes it."""
    stamps = epoch_seconds.astype("datetime64[s]")
    return np.datetime_as_string(stamps, unit="s", timezone="UTC").tolist()


def _records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Zip the columns into session dicts in the contract's field order.

    The garbage collector is paused meanwhile: otherwise it rescans a million fresh,
    cycle-free dicts several times, which costs about a third of the whole run.
    """
    fields = list(SESSION_FIELDS)
    values = [columns[field] for field in fields]
    collecting = gc.isenabled()
    gc.disable()
    try:
        return list(map(dict, map(zip, repeat(fields), zip(*values, strict=True))))
    finally:
        if collecting:
            gc.enable()


def write_document(doc: dict[str, Any], path: str | Path) -> Path:
    """Write compact UTF-8 JSON (non-ASCII job names kept readable), creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    return target


def _utc_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add Z or an offset")
    return value.astimezone(UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.synthetic",
        description="Write a synthetic VBR collector document (compact JSON).",
    )
    parser.add_argument("--host", required=True, help="vbr_host, e.g. vbr01.example.local")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--start", type=_utc_time, required=True, help="window start, ISO 8601 with zone")
    parser.add_argument("--end", type=_utc_time, required=True, help="window end, ISO 8601 with zone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vbr-version", default="12.3.1.1139")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        doc = generate_document(
            vbr_host=args.host,
            jobs=args.jobs,
            sessions=args.sessions,
            window_start=args.start,
            window_end=args.end,
            seed=args.seed,
            vbr_version=args.vbr_version,
        )
    except ValueError as exc:
        parser.error(str(exc))
    write_document(doc, args.out)
    print(f"wrote {len(doc['sessions'])} sessions for {args.jobs} jobs to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
