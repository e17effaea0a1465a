"""A stand-in for ``pwsh`` that the tests install (with a shebang) as an executable.

It checks the command line the collectors build, records it, and then behaves as the
control file next to it says (``<this file>.control.json``): replay the recorded
document, fail, fail only the first ``failures`` calls (a transient outage), hang silently,
stay busy with a heartbeat on stderr that never ends, print truncated JSON or nothing, or
reset its SSH connection.
Standard library only: it also runs under the test sshd, with a bare environment.
"""

import base64
import json
import os
import re
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def fail(message, code=64):
    sys.stderr.write(f"fake pwsh: {message}\n")
    sys.exit(code)


def parse_arguments(argv):
    """Mirror of the script's param() block; returns (script path, from, to, job names, switches)."""
    if argv[:3] != ["-NoProfile", "-NonInteractive", "-File"] or len(argv) < 4:
        fail(f"expected -NoProfile -NonInteractive -File <script>, got {argv!r}")
    script = Path(argv[3])
    if script.suffix != ".ps1" or not script.is_file():
        fail(f"-File {argv[3]!r} is not an existing .ps1 file (cwd {os.getcwd()})")
    rest = argv[4:]
    switches = []
    while rest and rest[-1] in ("-AllowFullSessionScan", "-Diagnose"):
        switches.insert(0, rest.pop())
    if len(rest) not in (4, 6) or rest[0] != "-From" or rest[2] != "-To":
        fail(f"expected -From <ISO> -To <ISO> [-JobNameBase64 <b64>] [-AllowFullSessionScan] [-Diagnose], got {rest!r}")
    for value in (rest[1], rest[3]):
        if not ISO_UTC.fullmatch(value):
            fail(f"{value!r} is not YYYY-MM-DDTHH:MM:SSZ")
    names = None
    if len(rest) == 6:
        if rest[4] != "-JobNameBase64":
            fail(f"unexpected argument {rest[4]!r}")
        names = json.loads(base64.b64decode(rest[5], validate=True).decode("utf-8"))
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            fail(f"-JobNameBase64 does not decode to a JSON array of strings: {names!r}")
    return script, rest[1], rest[3], names, switches


def sshd_ancestor():
    """The nearest ancestor process named sshd: this command's SSH session."""
    pid = os.getppid()
    while pid > 1:
        if Path(f"/proc/{pid}/comm").read_text().strip().startswith("sshd"):
            return pid
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    fail("no sshd ancestor to reset", 70)


def wait_for_orphaning(limit_s=30):
    """Hang, but leave as soon as whoever started us is gone (no stray processes)."""
    parent = os.getppid()
    deadline = time.monotonic() + limit_s
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.1)


def in_window(document, window_from, window_to):
    """The recorded document as the script answers -From/-To: the sessions created in that window, and the window.

    A recording with nothing outside the window, or that is not a JSON object with a list of
    sessions (a hostile-document test), is replayed byte for byte; a session without a
    readable creation time is kept.
    """
    try:
        parsed = json.loads(document)
        sessions = parsed["sessions"]
        start, end = (datetime.fromisoformat(value) for value in (window_from, window_to))
        kept = []
        for session in sessions:
            try:
                created = datetime.fromisoformat(session["creation_time"])
                outside = created < start or created >= end
            except (TypeError, KeyError, ValueError):
                outside = False
            if not outside:
                kept.append(session)
    except (ValueError, TypeError, KeyError, AttributeError):
        return document
    if len(kept) == len(sessions):  # the bytes as recorded (a hostile-document test needs them so)
        return document
    parsed.update(sessions=kept, window_start=window_from, window_end=window_to)
    return json.dumps(parsed, ensure_ascii=False).encode("utf-8")


def main():
    control = json.loads(Path(__file__ + ".control.json").read_text())
    record = {"argv": sys.argv[1:], "cwd": os.getcwd()}
    Path(control["record"]).write_text(json.dumps(record))
    script, window_from, window_to, names, switches = parse_arguments(sys.argv[1:])
    record.update(script_text=script.read_text(), window=[window_from, window_to], job_names=names, switches=switches)
    Path(control["record"]).write_text(json.dumps(record))

    document = in_window(Path(control["fixture"]).read_bytes(), window_from, window_to)
    mode = control["mode"]
    out = sys.stdout.buffer
    if mode == "replay":
        out.write(document)
    elif mode == "fail":
        for number in range(1, control.get("stderr_lines", 30) + 1):
            sys.stderr.write(f"Get-VBRBackupSession: failure line {number}\n")
        sys.exit(control.get("exit_code", 3))
    elif mode == "fail_first":  # a transient outage: the first calls fail, later ones replay
        calls = Path(__file__ + ".calls")
        number = int(calls.read_text()) if calls.exists() else 0
        calls.write_text(str(number + 1))
        if number < control.get("failures", 1):
            sys.stderr.write(f"Connect-VBRServer: the server is not responding (call {number + 1})\n")
            sys.exit(control.get("exit_code", 3))
        out.write(document)
    elif mode == "heartbeat":  # busy forever: a heartbeat line on stderr, never a result
        started = time.monotonic()
        try:
            parent = os.getppid()
            while time.monotonic() - started < 60 and os.getppid() == parent:
                sys.stderr.write(f"get_efficiency_data: heartbeat: {time.monotonic() - started:.1f} s\n")
                sys.stderr.flush()
                time.sleep(control.get("interval_s", 0.2))
        except BrokenPipeError:  # the transport closed our channel: leave
            pass
    elif mode == "hang":
        sys.stderr.write("collector started, now hanging\n")
        sys.stderr.flush()
        wait_for_orphaning()
    elif mode == "truncated":
        out.write(document[: len(document) // 2])
    elif mode == "not_object":
        out.write(b"[1, 2, 3]\n")
    elif mode == "empty":
        sys.stderr.write("WARNING: no sessions found\n")
    elif mode == "reset":
        out.write(document[:100])
        out.flush()
        os.kill(sshd_ancestor(), signal.SIGKILL)
        wait_for_orphaning()
    else:
        fail(f"unknown mode {mode!r}", 70)


if __name__ == "__main__":
    main()
