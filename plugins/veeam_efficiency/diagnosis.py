"""The first-contact report of the ``veeam_vbr_check`` DAG, from the collector's diagnose run.

``get_efficiency_data.ps1 -Diagnose`` emits the usual contract document plus a
``diagnostics`` object (versions, the session path that ran and why, counts per job type,
timings, what is missing). :func:`diagnosis_report` checks the document against the contract,
exactly as a scheduled run would, and turns both into lines a backup admin can read.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from veeam_efficiency.contract import ContractError, parse_document


@dataclass
class Diagnosis:
    """The report's lines; problems (scheduled runs would fail) and gaps (they would miss data)."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        if self.problems:
            verdict = "NOT READY: scheduled runs would fail on this server"
        elif self.gaps:
            verdict = "READY, WITH GAPS: scheduled runs will collect, but miss what is listed"
        else:
            verdict = "READY: scheduled runs can collect from this server"
        listed = [*(f"  - {problem}" for problem in self.problems), *(f"  - gap: {gap}" for gap in self.gaps)]
        return "\n".join([*self.lines, "", verdict, *listed])


def diagnosis_report(raw_document: str, target: str) -> Diagnosis:
    """Read a diagnose run's output; never raises for bad data, it reports it."""
    report = Diagnosis()
    try:
        document = parse_document(raw_document)
    except ContractError as exc:
        report.lines.append(f"VBR server {target}: the collector's output breaks the contract")
        report.problems.append(str(exc))
        return report
    diagnostics = _diagnostics(raw_document)
    sessions, jobs = document["sessions"], document.get("jobs")
    report.lines.append(
        f"VBR server {document['vbr_host']} (VBR {document['vbr_version']}), contract version "
        f"{document['schema_version']}, window {document['window_start']:%Y-%m-%d %H:%M} to "
        f"{document['window_end']:%Y-%m-%d %H:%M} UTC"
    )
    if diagnostics is None:
        report.lines.append("No diagnostics in this document (a replayed file or an older collector script).")
    else:
        _describe_run(report, diagnostics)
    by_type = Counter(session["job_type"] for session in sessions)
    report.lines.append(
        f"Sessions in the window: {len(sessions)} from {len({s['job_id'] for s in sessions})} jobs; per job type: "
        + (", ".join(f"{name} {count}" for name, count in sorted(by_type.items())) or "none")
    )
    machines = {session.get("object_name") for session in sessions} - {None}
    if machines:
        report.lines.append(f"Per-machine child sessions scored under their parent job: {len(machines)} machines")
    _describe_settings(report, sessions, jobs)
    if not sessions:
        report.gaps.append("no finished backup session in the window: check job_names and check_days")
    return report


def _diagnostics(raw_document: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw_document).get("diagnostics")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, dict) else None


def _describe_run(report: Diagnosis, diagnostics: dict[str, Any]) -> None:
    get = diagnostics.get
    report.lines.append(
        f"PowerShell {get('powershell_version', '?')} {get('powershell_edition') or ''}".rstrip()
        + f"; Veeam module loaded from: {get('module_source', '?')}"
    )
    report.lines.append(f"Session path: {get('session_path', '?')} ({get('session_path_reason', 'no reason given')})")
    if get("session_path") in (None, "none"):
        report.problems.append("no session query can run on this server: " + str(get("session_path_reason")))
    elif "Get-VBRBackupSession" in str(get("session_path")):
        report.gaps.append("the slow full session scan ran (hours on large servers): see the missing queries")
    for query in get("missing_queries") or []:
        report.lines.append(f"Missing indexed query: {query}")
    skipped = {reason: count for reason, count in (get("skipped") or {}).items() if count}
    if skipped:
        report.lines.append(
            f"Sessions read: {get('sessions_read', '?')}; not emitted: "
            + ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items()))
        )
    timings = get("timings_s") or {}
    if timings:
        report.lines.append("Timings: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items()))
    report.gaps.extend(str(item) for item in get("missing") or [] if item != get("session_path_reason"))


def _describe_settings(report: Diagnosis, sessions: list[Any], jobs: list[Any] | None) -> None:
    if jobs is None:
        report.gaps.append("no job settings (contract version 1): update the collector script")
        return
    report.lines.append(f"Storage settings found for {len(jobs)} jobs:")
    for job in jobs:
        repository = job["repository"]
        where = "unknown repository"
        if repository is not None:
            kind = "scale-out, " if repository["scale_out"] else ""
            where = f"repository {repository['name']!r} ({kind}{repository['type'] or 'type unknown'})"
        report.lines.append(
            f"  {job['job_name']!r}: compression {job['compression_level'] or 'unknown'}, block size "
            f"{job['block_size_kb'] or 'unknown'} KB, inline dedup {_flag(job['inline_dedup'])}, encryption "
            f"{_flag(job['encryption'])}, {where}"
        )
    known = {job["job_id"] for job in jobs}
    unknown = sorted({s["job_name"] for s in sessions if s["job_id"] not in known})
    if unknown:
        report.lines.append(f"Jobs with sessions but unknown settings: {', '.join(map(repr, unknown))}")


def _flag(value: bool | None) -> str:
    return "unknown" if value is None else ("on" if value else "off")
