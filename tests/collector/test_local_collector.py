"""run_local_script against the stand-in pwsh, run as a real subprocess."""

from __future__ import annotations

import base64
import json
import pickle
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from veeam_efficiency.collectors import CollectorError, run_local_script
from veeam_efficiency.collectors.local import script_arguments
from veeam_efficiency.contract import parse_document

START = datetime(2024, 5, 1, tzinfo=UTC)
END = datetime(2024, 5, 2, tzinfo=UTC)
NASTY_NAMES = ["Job \"quoted\" 'single'", "a; rm -rf /", "$(rm -rf /)", "`whoami`", "Sicherung Größe ✓ 日本", "-From"]


def test_success_returns_the_document(fake_pwsh, collector_script):
    pwsh = fake_pwsh("replay")
    text = run_local_script(collector_script, START, END, pwsh=str(pwsh.path))
    document = parse_document(text)
    assert [s["session_id"][-2:] for s in document["sessions"]] == ["01", "02", "03", "04"]
    recorded = pwsh.recorded()
    assert recorded["argv"] == [
        "-NoProfile", "-NonInteractive", "-File", str(collector_script),
        "-From", "2024-05-01T00:00:00Z", "-To", "2024-05-02T00:00:00Z",
    ]  # fmt: skip
    assert recorded["job_names"] is None


def test_job_names_arrive_intact_and_never_raw(fake_pwsh, collector_script):
    pwsh = fake_pwsh("replay")
    run_local_script(collector_script, START, END, NASTY_NAMES, pwsh=str(pwsh.path))
    recorded = pwsh.recorded()
    assert recorded["job_names"] == NASTY_NAMES
    assert recorded["argv"][-2] == "-JobNameBase64"
    raw = " ".join(recorded["argv"])
    for fragment in ("rm -rf", "$(", "`", ";", '"', "Größe"):
        assert fragment not in raw


def test_times_are_sent_as_utc_and_floored_to_seconds(fake_pwsh, collector_script):
    pwsh = fake_pwsh("replay")
    cest = timezone(timedelta(hours=2))
    run_local_script(
        collector_script,
        datetime(2024, 5, 1, 2, 0, 0, 999_999, tzinfo=cest),
        datetime(2024, 5, 2, 2, 0, 0, tzinfo=cest),
        pwsh=str(pwsh.path),
    )
    assert pwsh.recorded()["window"] == ["2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"]


def test_script_arguments_encode_names_as_base64_json():
    args = script_arguments(START, END, ["Ä", "b"])
    assert args[:4] == ["-From", "2024-05-01T00:00:00Z", "-To", "2024-05-02T00:00:00Z"]
    assert json.loads(base64.b64decode(args[5])) == ["Ä", "b"]


@pytest.mark.parametrize(
    ("start", "end", "names", "error"),
    [
        (datetime(2024, 5, 1), END, (), "has no time zone"),
        (END, START, (), "is not after window_start"),
        (START, END, "Daily", "not a string"),
    ],
)
def test_bad_arguments_are_refused_before_running(start, end, names, error, collector_script):
    with pytest.raises((ValueError, TypeError), match=error):
        run_local_script(collector_script, start, end, names, pwsh="/nonexistent/pwsh")


def test_non_zero_exit_reports_code_and_stderr_tail(fake_pwsh, collector_script):
    pwsh = fake_pwsh("fail", exit_code=3, stderr_lines=30)
    with pytest.raises(CollectorError) as caught:
        run_local_script(collector_script, START, END, pwsh=str(pwsh.path))
    err = caught.value
    assert err.exit_code == 3
    assert err.stderr_tail.splitlines()[0] == "Get-VBRBackupSession: failure line 11"
    assert err.stderr_tail.splitlines()[-1] == "Get-VBRBackupSession: failure line 30"
    assert "collector on localhost failed [exit code: 3]" in str(err)
    assert "failure line 30" in str(err)
    assert "failure line 10\n" not in str(err)


def test_timeout_kills_the_collector(fake_pwsh, collector_script):
    pwsh = fake_pwsh("hang")
    started = time.monotonic()
    with pytest.raises(CollectorError, match=r"timed out after 2 s and was killed") as caught:
        # 2 s: on a loaded machine the stand-in needs a while to start and print its first line
        run_local_script(collector_script, START, END, pwsh=str(pwsh.path), timeout_s=2)
    assert time.monotonic() - started < 6
    assert caught.value.exit_code is None
    assert "collector started, now hanging" in caught.value.stderr_tail


def test_timeout_is_wall_clock_despite_a_heartbeat(fake_pwsh, collector_script):
    """A collector that writes a heartbeat forever is still stopped at the limit."""
    pwsh = fake_pwsh("heartbeat", interval_s=0.1)
    started = time.monotonic()
    with pytest.raises(CollectorError, match=r"timed out after 2 s and was killed") as caught:
        run_local_script(collector_script, START, END, pwsh=str(pwsh.path), timeout_s=2)
    assert 2 <= time.monotonic() - started < 6
    assert "heartbeat" in caught.value.stderr_tail  # it was busy, not silent


def test_switches_reach_the_script(fake_pwsh, collector_script):
    pwsh = fake_pwsh("replay")
    run_local_script(
        collector_script, START, END, ["Daily"], pwsh=str(pwsh.path), allow_full_session_scan=True, diagnose=True
    )
    recorded = pwsh.recorded()
    assert recorded["switches"] == ["-AllowFullSessionScan", "-Diagnose"]
    assert recorded["job_names"] == ["Daily"]
    run_local_script(collector_script, START, END, pwsh=str(pwsh.path))
    assert pwsh.recorded()["switches"] == []  # off by default: no full session scan


def test_empty_stdout(fake_pwsh, collector_script):
    pwsh = fake_pwsh("empty")
    with pytest.raises(CollectorError, match="printed nothing on stdout") as caught:
        run_local_script(collector_script, START, END, pwsh=str(pwsh.path))
    assert caught.value.exit_code == 0
    assert "WARNING: no sessions found" in str(caught.value)


def test_truncated_json(fake_pwsh, collector_script):
    pwsh = fake_pwsh("truncated")
    with pytest.raises(CollectorError, match=r"printed stdout that is not JSON \(\d+ bytes, truncated\?\)"):
        run_local_script(collector_script, START, END, pwsh=str(pwsh.path))


def test_json_that_is_not_an_object(fake_pwsh, collector_script):
    pwsh = fake_pwsh("not_object")
    with pytest.raises(CollectorError, match="printed JSON that is not an object"):
        run_local_script(collector_script, START, END, pwsh=str(pwsh.path))


def test_missing_pwsh_names_the_path_and_the_setting(collector_script, tmp_path):
    missing = tmp_path / "no" / "pwsh"
    with pytest.raises(CollectorError, match=rf"cannot start PowerShell '{missing}'.*pass pwsh=") as caught:
        run_local_script(collector_script, START, END, pwsh=str(missing))
    assert caught.value.exit_code is None


def test_missing_script_is_not_a_collector_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_local_script(tmp_path / "absent.ps1", START, END)


def test_collector_error_survives_pickling():
    err = CollectorError("boom", exit_code=2, stderr_tail="last line")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.exit_code, copy.stderr_tail, str(copy)) == (2, "last line", str(err))


def test_bom_is_stripped(fake_pwsh, collector_script, tmp_path: Path):
    fixture = tmp_path / "bom.json"
    fixture.write_bytes(
        b"\xef\xbb\xbf" + (Path(__file__).parents[1] / "fixtures/collector_output_small.json").read_bytes()
    )
    pwsh = fake_pwsh("replay", fixture=str(fixture))
    text = run_local_script(collector_script, START, END, pwsh=str(pwsh.path))
    assert text.startswith("{")


def test_the_document_reaches_validate_as_ascii(fake_pwsh, collector_script, tmp_path: Path):
    """Python holds one job named 東京 at 4 bytes a character for the whole document: escaped, it stays at 1."""
    document = json.loads((Path(__file__).parents[1] / "fixtures/collector_output_small.json").read_text())
    document["sessions"][0]["job_name"] = "Sicherung Größe ✓ 日本 😀"
    fixture = tmp_path / "names.json"
    fixture.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    pwsh = fake_pwsh("replay", fixture=str(fixture))
    text = run_local_script(collector_script, START, END, pwsh=str(pwsh.path))
    assert text.isascii()
    assert parse_document(text)["sessions"][0]["job_name"] == "Sicherung Größe ✓ 日本 😀"
