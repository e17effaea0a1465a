"""The words of every alert the DAG sends: plain functions of plain values, no Airflow, no I/O.

Three alerts: a task failed (which server, which try, where its log is), a run found
jobs whose storage efficiency is dropping or whose settings are wrong (one summary per
run, not one mail per job: an admin reads one list, sorted by the money at stake, each
job with its top recommendation), and a run missed its deadline.
Each is an :class:`Alert` with a subject, a plain-text body (for chat hooks) and an
HTML body (for e-mail), so every channel says the same thing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from veeam_efficiency.tables import CRITICAL_ANOMALIES, DEGRADING_TREND, FLAGS_ALERTED, LEVEL_SHIFT, MISCONFIGURED

__all__ = ["FLAGS_ALERTED", "Alert", "degradation_summary", "flagged", "run_deadline_missed", "task_failure"]

SUBJECT_PREFIX = "[Veeam storage efficiency]"


@dataclass(frozen=True)
class Alert:
    """One message, ready for any channel."""

    subject: str
    text: str

    @property
    def html(self) -> str:
        """The text, escaped, in a monospaced block: job names may hold any character."""
        return f'<pre style="font-family: monospace">{html.escape(self.text)}</pre>'


def task_failure(
    *,
    dag_id: str,
    task_id: str,
    vbr_host: str | None,
    try_number: int,
    max_tries: int,
    run_id: str,
    log_url: str,
    error: BaseException | str | None,
) -> Alert:
    """A task gave up: what failed, on which VBR server, after which try, and where to read why."""
    host = vbr_host or "-"
    reason = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error or "-")
    lines = [
        f"DAG:       {dag_id}",
        f"Task:      {task_id}",
        f"VBR host:  {host}",
        f"Try:       {try_number} of {max(max_tries + 1, try_number)}",  # max_tries counts the retries
        f"Run:       {run_id}",
        f"Log:       {log_url}",
        "",
        f"Error:     {_one_line(reason, 1000)}",
    ]
    subject = f"{SUBJECT_PREFIX} task failed: {dag_id}.{task_id} on {host} (try {try_number})"
    return Alert(subject=_one_line(subject, 250), text="\n".join(lines) + "\n")


def flagged(card: Mapping[str, Any]) -> list[str]:
    """The alerted flags a scorecard carries (its ``quality_flags`` JSON, as a dict)."""
    flags = card.get("quality_flags") or {}
    return [flag for flag in FLAGS_ALERTED if flags.get(flag)]


def degradation_summary(cards: Iterable[Mapping[str, Any]], *, dag_id: str, run_id: str) -> Alert | None:
    """One summary of the job scorecards with a flag of :data:`FLAGS_ALERTED`; None when there is none.

    ``cards`` are scorecard rows (``vbr_host``, ``job_name``, ``analysis_date``, ``grade``,
    ``overall_score``, ``trend_change``, ``annual_savings_usd``, ``optimization_potential_gb``,
    ``quality_flags``; optionally ``context_grade``, ``context_score``,
    ``attainable_annual_savings_usd`` and ``recommendations``). Listed by money at stake,
    largest first: that is what an admin fixes first.
    """
    rows = [card for card in cards if flagged(card)]
    if not rows:
        return None
    rows.sort(key=lambda card: (-_number(card.get("annual_savings_usd")), str(card["vbr_host"]), str(card["job_name"])))
    degrading = sum(DEGRADING_TREND in flagged(card) for card in rows)
    critical = sum(CRITICAL_ANOMALIES in flagged(card) for card in rows)
    misconfigured = sum(MISCONFIGURED in flagged(card) for card in rows)
    shifted = sum(LEVEL_SHIFT in flagged(card) for card in rows)
    extra = (f", {misconfigured} misconfigured" if misconfigured else "") + (
        f", {shifted} with a level shift" if shifted else ""
    )
    hosts = sorted({str(card["vbr_host"]) for card in rows})
    days = sorted({str(card["analysis_date"]) for card in rows})
    at_stake = sum(_number(card.get("annual_savings_usd")) for card in rows)
    subject = (
        f"{SUBJECT_PREFIX} {_count(len(rows), 'job')} flagged on {_count(len(hosts), 'VBR host')} "
        f"({degrading} degrading, {critical} with critical anomalies{extra}), {_usd(at_stake)}/year at stake"
    )
    lines = [
        f"Analysis day(s): {', '.join(days)}    DAG: {dag_id}    Run: {run_id}",
        "",
        "Jobs whose storage efficiency needs attention, largest money at stake first.",
        "Drop: change of the mean combined (dedup x compression) factor between the older and",
        "newer half of the window. At stake: storage and money a year against the target factors.",
        "",
    ]
    for card in rows:
        lines += [
            f"- {_one_line(str(card['job_name']), 200)}  on {card['vbr_host']}  ({card['analysis_date']})",
            f"    grade {card['grade']} (score {_number(card.get('overall_score')):.1f}), "
            f"drop {_percent(card.get('trend_change'))}, "
            f"at stake {_usd(_number(card.get('annual_savings_usd')))}/year, "
            f"{_number(card.get('optimization_potential_gb')):,.1f} GB/day, "
            f"flags: {', '.join(flagged(card))}",
            *_in_context(card),
        ]
    return Alert(subject=_one_line(subject, 250), text="\n".join(lines) + "\n")


def _in_context(card: Mapping[str, Any]) -> list[str]:
    """The job's grade in context and its top recommendation (none on scorecards written before them)."""
    lines = []
    if card.get("context_grade"):
        lines.append(
            f"    in context: grade {card['context_grade']} (score {_number(card.get('context_score')):.1f}), "
            f"following the recommendations saves {_usd(_number(card.get('attainable_annual_savings_usd')))}/year"
        )
    recommendations = card.get("recommendations") or []
    if recommendations:
        top = recommendations[0]
        money = top.get("est_annual_savings_usd")
        worth = f"{_usd(_number(money))}/year" if money is not None else "no storage figure"
        lines.append(
            f"    top recommendation [{top.get('severity')}, {worth}]: {_one_line(str(top.get('title')), 200)}"
        )
        lines.append(f"      {_one_line(str(top.get('detail')), 600)}")
    return lines


def run_deadline_missed(
    *, dag_id: str, run_id: str, state: str | None, queued_at: str | None, deadline_time: str | None
) -> Alert:
    """The run is still not finished at its deadline: the day's scorecards are late."""
    lines = [
        f"DAG:       {dag_id}",
        f"Run:       {run_id}",
        f"State:     {state or '-'}",
        f"Queued at: {queued_at or '-'}",
        f"Deadline:  {deadline_time or '-'}",
        "",
        "The run had not finished by its deadline, so today's scorecards are late or missing.",
        "Check the run's collect tasks (a VBR host or SSH may be hanging) and the workers.",
    ]
    subject = f"{SUBJECT_PREFIX} run not finished by its deadline: {dag_id} {run_id}"
    return Alert(subject=_one_line(subject, 250), text="\n".join(lines) + "\n")


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _percent(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{number:+.1%}" if math.isfinite(number) else "n/a"


def _usd(amount: float) -> str:
    return f"${amount:,.0f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _one_line(text: str, limit: int) -> str:
    """Control characters out (a subject must stay one header line), long values cut."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
