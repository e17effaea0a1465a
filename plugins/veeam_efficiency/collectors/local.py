"""Run the collector script with a local PowerShell, and build the arguments both transports pass.

No shell is involved and no value is ever spliced into script text: the window travels as
fixed-format UTC times and job names as base64 of a JSON array, which the script decodes.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from typing_extensions import TypedDict

from veeam_efficiency.collectors.errors import CollectorError, check_output, stderr_tail

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"
DEFAULT_PWSH = "pwsh"
DEFAULT_TIMEOUT_S = 1800.0


class ScriptOptions(TypedDict, total=False):
    """How the script runs, the same for every transport: which PowerShell, and for how long at most."""

    pwsh: str
    timeout_s: float


def format_utc(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``; sub-seconds are dropped (floored), so adjacent windows still meet."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"window time {moment.isoformat()} has no time zone; pass an aware datetime")
    return moment.astimezone(UTC).strftime(ISO_UTC)


def script_arguments(window_start: datetime, window_end: datetime, job_names: Sequence[str] = ()) -> list[str]:
    """``-From <ISO> -To <ISO> [-JobNameBase64 <b64 of UTF-8 JSON array>]``."""
    if isinstance(job_names, str):  # a bare string would become one name per character
        raise TypeError("job_names must be a sequence of names, not a string")
    window_from, window_to = format_utc(window_start), format_utc(window_end)
    if window_to <= window_from:  # same fixed-width format: string order is time order
        raise ValueError(f"window_end {window_end.isoformat()} is not after window_start {window_start.isoformat()}")
    args = ["-From", window_from, "-To", window_to]
    if job_names:
        encoded = json.dumps(list(job_names), ensure_ascii=False).encode("utf-8")
        args += ["-JobNameBase64", base64.b64encode(encoded).decode("ascii")]
    return args


def run_local_script(
    script: Path,
    window_start: datetime,
    window_end: datetime,
    job_names: Sequence[str] = (),
    *,
    pwsh: str = DEFAULT_PWSH,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> str:
    """Run ``script`` with ``pwsh`` on this machine and return its stdout (one JSON object).

    Raises CollectorError on a non-zero exit, a timeout (the process is killed), empty or
    non-JSON stdout, or a pwsh that cannot be started.
    """
    if not script.is_file():
        raise FileNotFoundError(f"collector script {script} does not exist")
    command = [pwsh, "-NoProfile", "-NonInteractive", "-File", str(script)]
    command += script_arguments(window_start, window_end, job_names)
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CollectorError(
            f"collector on localhost timed out after {timeout_s:g} s and was killed",
            stderr_tail=stderr_tail(exc.stderr),
        ) from None
    except OSError as exc:  # FileNotFoundError, PermissionError, ...
        raise CollectorError(
            f"cannot start PowerShell {pwsh!r}: {exc.strerror or exc}. Install PowerShell 7 or pass "
            "pwsh=<absolute path of pwsh/pwsh.exe> (the collector's pwsh setting)"
        ) from exc
    return check_output(done.returncode, done.stdout, done.stderr, "localhost")
