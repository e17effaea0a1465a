"""Incremental collection: which parts of a window to ask the VBR server for, and the window's sessions after.

The results database logs each interval a run collected from a server and when the
server answered (``feature3.collection_log``). A session can still change for
``recheck`` after it was created (it was running, or it was retried and its figures
were updated), so a logged interval is *settled*, final, only up to ``recheck`` before
its collection: ``[start, min(end, collected_at - recheck))``. A run asks for the parts
of its window no settled interval covers. For the daily run of day D+1 after day D was
collected shortly after midnight, that is the last ``recheck`` days and the new day.

The intervals are a handful per server (one per run), so they are handled as plain sorted
lists: no pandas, no interval library, nothing that scales with the sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

Interval = tuple[datetime, datetime]

# what a run asks for when its whole window is settled: job settings come with every
# collection, so the server is still asked, for the window's last day
LAST_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Collected:
    """One row of ``feature3.collection_log``: sessions created in ``[start, end)``, as the server had them at
    ``collected_at``; ``sessions`` of them (distinct ids)."""

    start: datetime
    end: datetime
    collected_at: datetime
    sessions: int = 0


def still_stored(logged: Sequence[Collected], stored: Sequence[int]) -> tuple[list[Collected], list[Collected]]:
    """The logged collections whose sessions the history still holds, and those it lacks some of.

    ``stored``: the history's sessions in each logged interval. The history only grows (a
    session VBR purged stays), so fewer than the server returned mean it lost rows (a manual
    delete, a partial restore): that interval is asked for again rather than scored short.
    """
    kept = [row for row, count in zip(logged, stored, strict=True) if count >= row.sessions]
    lacking = [row for row, count in zip(logged, stored, strict=True) if count < row.sessions]
    return kept, lacking


def settled(logged: Iterable[Collected], recheck: timedelta) -> list[Interval]:
    """The union of what ``logged`` holds for good, as sorted disjoint intervals (whole seconds)."""
    ends = [(row.start, min(row.end, _whole_second(row.collected_at - recheck))) for row in logged]
    parts = sorted((start, end) for start, end in ends if end > start)
    union: list[Interval] = []
    for start, end in parts:
        if union and start <= union[-1][1]:
            union[-1] = (union[-1][0], max(union[-1][1], end))
        else:
            union.append((start, end))
    return union


def _whole_second(moment: datetime) -> datetime:
    """Floored to the second: the collector's ``-From``/``-To`` carry whole seconds."""
    return moment.replace(microsecond=0)


def intervals_to_ask(start: datetime, end: datetime, logged: Iterable[Collected], recheck: timedelta) -> list[Interval]:
    """The parts of ``[start, end)`` that nothing settled covers, in order (never empty).

    When all of it is settled, the window's last day: a collection also brings the jobs'
    settings, which every run records.
    """
    gaps: list[Interval] = []
    cursor = start
    for covered_start, covered_end in settled(logged, recheck):
        if covered_end <= cursor or covered_start >= end:
            continue
        if covered_start > cursor:
            gaps.append((cursor, covered_start))
        cursor = max(cursor, covered_end)
    if cursor < end:
        gaps.append((cursor, end))
    return gaps or [(max(start, end - LAST_DAY), end)]


def merge_stored(collected: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The window's sessions: what the server answered, and the stored history for the rest.

    A session the server reported is taken as it reported it (its latest state); a stored
    session it did not report stays: outside the asked intervals it was not asked for, and
    inside them VBR has purged it (its retention), but it happened and is counted. Both
    frames have the collector contract's session columns.
    """
    if stored.empty:
        return collected
    kept = stored[~stored["session_id"].isin(collected["session_id"])]
    if kept.empty:
        return collected
    return pd.concat([collected, kept[list(collected.columns)]], ignore_index=True)
