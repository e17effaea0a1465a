"""The synthetic generator and the bundled demo data it produced."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tools.synthetic import generate_document, main, write_document
from veeam_efficiency.contract import SESSION_FIELDS, parse_document

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "include" / "sample_data"
SAMPLE_HOSTS = ("vbr01.example.local", "vbr02.example.local")
SAMPLE_START = datetime(2026, 7, 1, tzinfo=UTC)
SAMPLE_END = datetime(2026, 11, 27, tzinfo=UTC)
START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(days=90)


def _generate(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "vbr_host": "vbr-test.example.local",
        "jobs": 40,
        "sessions": 5_000,
        "window_start": START,
        "window_end": END,
        "seed": 7,
    } | overrides
    return generate_document(**args)


def _frame(doc: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(doc["sessions"])
    frame["created"] = pd.to_datetime(frame["creation_time"], utc=True)
    # What a scorer can trust: finished, not failed, not a retry, not a re-emitted duplicate,
    # and ratios in the plausible 1-100 range (no tiny metadata-only or implausible sessions).
    frame["scorable"] = (
        frame["end_time"].notna()
        & frame["result"].ne("Failed")
        & ~frame["is_retry"]
        & ~frame["session_id"].duplicated()
        & frame["dedup_ratio_raw"].between(1, 100)
        & frame["compress_ratio_raw"].between(1, 100)
    )
    return frame


def _dedup_switched_off(frame: pd.DataFrame) -> list[str]:
    """Jobs whose last 3 scorable sessions have dedup raw 100 after a clearly better median."""
    found = []
    for name, job in frame[frame["scorable"]].groupby("job_name"):
        dedup = job.sort_values("created")["dedup_ratio_raw"]
        if len(dedup) > 10 and (dedup.tail(3) == 100).all() and dedup.iloc[:-6].median() < 85:
            found.append(str(name))
    return found


def _degrading(frame: pd.DataFrame) -> list[str]:
    """Jobs whose dedup raw climbs steadily (strong correlation with time, 10+ points overall)."""
    found = []
    for name, job in frame[frame["scorable"] & frame["algorithm"].eq("Increment")].groupby("job_name"):
        if len(job) < 20:
            continue
        dedup = job.sort_values("created")["dedup_ratio_raw"].to_numpy(dtype=float)
        head, tail = np.median(dedup[: len(dedup) // 5]), np.median(dedup[-len(dedup) // 5 :])
        if np.corrcoef(np.arange(dedup.size), dedup)[0, 1] > 0.8 and tail - head >= 10:
            found.append(str(name))
    return found


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return _generate()


@pytest.fixture(scope="module")
def frame(doc: dict[str, Any]) -> pd.DataFrame:
    return _frame(doc)


def test_document_passes_the_contract(doc: dict[str, Any]) -> None:
    parsed = parse_document(json.dumps(doc))
    assert len(parsed["sessions"]) == 5_000
    assert parsed["window_start"] == START and parsed["window_end"] == END
    assert list(doc["sessions"][0]) == list(SESSION_FIELDS)
    assert doc["collected_at"].endswith("Z") and doc["sessions"][0]["creation_time"].endswith("Z")


def test_same_seed_same_document_other_seed_differs() -> None:
    first, again, other = _generate(seed=3), _generate(seed=3), _generate(seed=4)
    assert json.dumps(first) == json.dumps(again)
    assert first["sessions"] != other["sessions"]


@pytest.mark.parametrize(("jobs", "sessions"), [(1, 1), (3, 0), (5, 37), (40, 5_000), (200, 9_999)])
def test_requested_size(jobs: int, sessions: int) -> None:
    doc = _generate(jobs=jobs, sessions=sessions)
    assert len(doc["sessions"]) == sessions
    parse_document(json.dumps(doc))


def test_sessions_spread_evenly_over_jobs_and_window(frame: pd.DataFrame) -> None:
    assert frame["job_id"].nunique() == 40
    assert frame.groupby("job_id")["job_name"].nunique().eq(1).all()
    per_job = frame.groupby("job_id").size()
    daily = per_job[per_job.between(100, 150)]  # the VM, file and media jobs
    assert len(daily) >= 20 and daily.max() - daily.min() <= 3
    assert frame["created"].min() >= pd.Timestamp(START) and frame["created"].max() < pd.Timestamp(END)
    weekly = frame.set_index("created").resample("7D").size()
    assert weekly.min() > 0.8 * weekly.mean()


def test_mix_of_outcomes(frame: pd.DataFrame) -> None:
    n = len(frame)
    failed = frame["result"].eq("Failed")
    assert 0.01 < failed.mean() < 0.035
    assert 0.015 < frame["result"].eq("Warning").mean() < 0.045
    assert (frame.loc[failed, "data_size_bytes"] == 0).mean() > 0.6  # failed runs mostly wrote nothing
    assert 0.003 < frame["is_retry"].mean() < 0.03
    assert 1 <= frame["end_time"].isna().sum() <= 10  # a handful still running
    assert frame["session_id"].duplicated().sum() == round(n * 0.001)


def test_weekly_fulls_with_their_own_ratio_level(frame: pd.DataFrame) -> None:
    full = frame["algorithm"].isin(["Full", "Synthetic"])
    assert {"Full", "Synthetic", "Increment"} <= set(frame["algorithm"])
    assert 0.12 < full.mean() < 0.2
    clean = frame[frame["scorable"]]
    medians = clean.groupby(["job_id", clean["algorithm"].eq("Increment").rename("increment")])[
        ["data_size_bytes", "dedup_ratio_raw"]
    ].median()
    by_job = medians.unstack("increment").dropna()  # the monthly job runs fulls only
    assert (by_job["data_size_bytes"][False] > 5 * by_job["data_size_bytes"][True]).mean() > 0.9
    assert (by_job["dedup_ratio_raw"][False] <= by_job["dedup_ratio_raw"][True]).mean() > 0.7


def test_tiny_and_implausible_sessions(frame: pd.DataFrame) -> None:
    tiny = frame["compress_ratio_raw"].between(101, 1000)
    assert 0.005 < tiny.mean() < 0.02
    assert (frame.loc[tiny, "data_size_bytes"] < 25_000_000).all()
    implausible = frame["compress_ratio_raw"] > 10_000
    assert frame["compress_ratio_raw"].max() == 191_073
    assert 1 <= implausible.sum() <= 3


def test_backup_size_follows_the_raw_ratios(frame: pd.DataFrame) -> None:
    written = frame[(frame["data_size_bytes"] > 0) & (frame["backup_size_bytes"] > 0)]
    expected = written["data_size_bytes"] * written["dedup_ratio_raw"] / 100 * written["compress_ratio_raw"] / 100
    assert ((written["backup_size_bytes"] / expected - 1).abs() < 0.05).all()


def test_profiles_span_the_realistic_ratios(frame: pd.DataFrame) -> None:
    clean = frame[frame["scorable"] & frame["algorithm"].eq("Increment")]
    per_job = clean.groupby("job_id")[["dedup_ratio_raw", "compress_ratio_raw"]].median()
    assert (per_job["compress_ratio_raw"] >= 95).any()  # already-compressed media, ~1.0x
    assert (per_job["compress_ratio_raw"] <= 40).any()  # SQL logs, 2.5x or better
    assert (per_job["dedup_ratio_raw"] <= 50).any()  # VM images, 2x or better


def test_special_jobs_are_present(frame: pd.DataFrame) -> None:
    assert _dedup_switched_off(frame)
    assert _degrading(frame)
    assert frame.groupby("job_id").size().min() <= 5  # monthly archive: too few to score


def test_awkward_job_names(frame: pd.DataFrame) -> None:
    names = set(frame["job_name"])
    assert any('"' in name for name in names)
    assert any(";" in name for name in names)
    assert any("$(" in name for name in names)
    assert any(not name.isascii() for name in names)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="jobs"):
        _generate(jobs=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        _generate(window_start=datetime(2026, 1, 1))  # naive on purpose
    with pytest.raises(ValueError, match="not after"):
        _generate(window_start=END, window_end=START)


def test_other_time_zones_are_written_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    doc = _generate(window_start=START.astimezone(plus_two), window_end=END.astimezone(plus_two), sessions=50)
    assert doc["window_start"] == "2026-01-01T00:00:00Z"


def test_cli_writes_compact_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nested" / "vbr.json"
    argv = ["--host", "h.example", "--jobs", "6", "--sessions", "300", "--start", "2026-01-01T00:00:00Z"]
    argv += ["--end", "2026-03-01T00:00:00+00:00", "--seed", "5", "--out", str(out)]
    assert main(argv) == 0
    assert "300 sessions" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert text.count("\n") == 1 and '": ' not in text
    expected = generate_document(
        vbr_host="h.example",
        jobs=6,
        sessions=300,
        window_start=datetime(2026, 1, 1, tzinfo=UTC),
        window_end=datetime(2026, 3, 1, tzinfo=UTC),
        seed=5,
    )
    assert json.loads(text) == expected
    parse_document(out.read_bytes())


def test_cli_refuses_a_time_without_zone(tmp_path: Path) -> None:
    argv = ["--host", "h", "--jobs", "1", "--sessions", "1", "--start", "2026-01-01T00:00:00"]
    with pytest.raises(SystemExit):
        main([*argv, "--end", "2026-01-02T00:00:00Z", "--out", str(tmp_path / "x.json")])


def test_write_document_round_trips(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = write_document(doc, tmp_path / "doc.json")
    assert json.loads(path.read_text(encoding="utf-8")) == doc


@pytest.mark.slow
def test_bench_size() -> None:
    doc = _generate(jobs=10_000, sessions=1_000_000, window_end=START + timedelta(days=100))
    sessions = doc["sessions"]
    assert len(sessions) == 1_000_000
    assert len({session["job_id"] for session in sessions}) == 10_000


# --- the bundled demo data ---------------------------------------------------------------


def _sample_path(host: str) -> Path:
    return SAMPLE_DIR / f"{host}.json"


@pytest.fixture(scope="module", params=SAMPLE_HOSTS)
def sample(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    host = request.param
    return host, json.loads(_sample_path(host).read_text(encoding="utf-8"))


def test_sample_files_parse_and_cover_the_promised_window(sample: tuple[str, dict[str, Any]]) -> None:
    host, doc = sample
    parsed = parse_document(_sample_path(host).read_bytes())
    assert parsed["vbr_host"] == host
    assert parsed["window_start"] == SAMPLE_START and parsed["window_end"] == SAMPLE_END
    assert 12 <= len({s["job_id"] for s in doc["sessions"]}) <= 15
    assert 1_800 <= len(doc["sessions"]) <= 2_600


def test_sample_files_are_small_and_compact() -> None:
    paths = [_sample_path(host) for host in SAMPLE_HOSTS]
    assert sorted(p.name for p in SAMPLE_DIR.glob("*.json")) == sorted(p.name for p in paths)
    assert sum(p.stat().st_size for p in paths) < 3_000_000
    assert all(p.read_text(encoding="utf-8").count("\n") == 1 for p in paths)


def test_sample_files_match_the_readme_commands(tmp_path: Path) -> None:
    """The README's commands regenerate the files byte for byte: rerun them after changing the generator."""
    readme = (SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    assert "synthetic" in readme.lower()
    commands = re.findall(r"^PYTHONPATH=plugins \S+ -m tools\.synthetic (.+)$", readme, re.MULTILINE)
    assert len(commands) == len(SAMPLE_HOSTS)
    for command in commands:
        argv = shlex.split(command)
        out = argv.index("--out") + 1
        committed = REPO / argv[out]
        argv[out] = str(tmp_path / committed.name)
        main(argv)
        assert (tmp_path / committed.name).read_bytes() == committed.read_bytes(), f"{committed} is stale"


def test_sample_has_a_scorable_job_in_every_30_day_window(sample: tuple[str, dict[str, Any]]) -> None:
    frame = _frame(sample[1])
    scorable = frame[frame["scorable"]]
    for end in pd.date_range(SAMPLE_START + timedelta(days=30), SAMPLE_END, freq="D"):
        window = scorable[(scorable["created"] >= end - timedelta(days=30)) & (scorable["created"] < end)]
        assert window.groupby("job_id").size().max() >= 30, f"no job with 30 scorable sessions before {end}"


def test_sample_last_30_days(sample: tuple[str, dict[str, Any]]) -> None:
    frame = _frame(sample[1])
    last = frame[frame["scorable"] & (frame["created"] >= pd.Timestamp(SAMPLE_END - timedelta(days=30)))]
    assert last.groupby("job_id").size().max() >= 30
    assert frame.groupby("job_id").size().min() <= 6  # the monthly archive job: no scorecard


def test_sample_special_cases(sample: tuple[str, dict[str, Any]]) -> None:
    frame = _frame(sample[1])
    off = _dedup_switched_off(frame)
    assert off
    assert frame[frame["job_name"].isin(off)]["created"].max() > pd.Timestamp(SAMPLE_END - timedelta(days=5))
    assert _degrading(frame)
    assert frame["result"].eq("Failed").any() and frame["is_retry"].any()
    assert frame["session_id"].duplicated().any() and frame["end_time"].isna().any()
    assert frame["compress_ratio_raw"].max() == 191_073
