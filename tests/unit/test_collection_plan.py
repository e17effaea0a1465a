"""Incremental collection: what a run asks the server for, and that it scores what a full collection would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veeam_efficiency.collection_plan import Collected, intervals_to_ask, merge_stored, settled, still_stored

DAY = timedelta(days=1)
D = datetime(2026, 11, 20, tzinfo=UTC)
RECHECK = 2 * DAY


def test_a_first_run_asks_for_the_whole_window():
    assert intervals_to_ask(D - 30 * DAY, D, [], RECHECK) == [(D - 30 * DAY, D)]


def test_the_next_day_asks_for_the_recheck_tail_and_the_new_day_only():
    yesterday = Collected(D - 30 * DAY, D, collected_at=D + timedelta(minutes=5, microseconds=7))
    asked = intervals_to_ask(D - 29 * DAY, D + DAY, [yesterday], RECHECK)
    # settled up to 2 days before the collection, floored to the second the script's -From carries
    assert asked == [(D - RECHECK + timedelta(minutes=5), D + DAY)]


def test_a_settled_window_still_asks_for_its_last_day_for_the_job_settings():
    long_ago = Collected(D - 60 * DAY, D, collected_at=D + 30 * DAY)
    assert intervals_to_ask(D - 30 * DAY, D, [long_ago], RECHECK) == [(D - DAY, D)]


def test_gaps_between_collections_are_asked_for_each_once():
    logged = [
        Collected(D - 30 * DAY, D - 20 * DAY, collected_at=D + 10 * DAY),
        Collected(D - 10 * DAY, D - 5 * DAY, collected_at=D + 10 * DAY),
    ]
    assert intervals_to_ask(D - 30 * DAY, D, logged, RECHECK) == [(D - 20 * DAY, D - 10 * DAY), (D - 5 * DAY, D)]


def test_recent_collections_settle_only_up_to_recheck_before_them():
    logged = [Collected(D - 10 * DAY, D, collected_at=D - DAY)]  # a clock behind the interval's end
    assert settled(logged, RECHECK) == [(D - 10 * DAY, D - 3 * DAY)]
    assert settled(logged, timedelta(0)) == [(D - 10 * DAY, D - DAY)]
    assert settled([Collected(D - DAY, D, collected_at=D)], RECHECK) == []


def test_overlapping_collections_merge():
    logged = [
        Collected(D - 10 * DAY, D - 4 * DAY, collected_at=D + 9 * DAY),
        Collected(D - 6 * DAY, D - 2 * DAY, collected_at=D + 9 * DAY),
        Collected(D - 2 * DAY, D, collected_at=D + 9 * DAY),
    ]
    assert settled(logged, RECHECK) == [(D - 10 * DAY, D)]


def test_an_interval_whose_sessions_the_history_lost_is_not_trusted():
    logged = [Collected(D - 9 * DAY, D - 5 * DAY, D, sessions=40), Collected(D - 5 * DAY, D, D, sessions=12)]
    assert still_stored(logged, [40, 12]) == (logged, [])
    assert still_stored(logged, [41, 11]) == ([logged[0]], [logged[1]])  # more: purged by VBR, kept by us
    assert intervals_to_ask(D - 9 * DAY, D, still_stored(logged, [0, 12])[0], timedelta(0)) == [
        (D - 9 * DAY, D - 5 * DAY)
    ]


def test_the_server_wins_and_stored_sessions_it_did_not_report_stay():
    answered = pd.DataFrame({"session_id": ["a", "b"], "state": ["new", "new"]})
    stored = pd.DataFrame({"state": ["old", "old"], "session_id": ["b", "purged"]})
    merged = merge_stored(answered, stored)
    assert merged.to_dict("records") == [
        {"session_id": "a", "state": "new"},
        {"session_id": "b", "state": "new"},
        {"session_id": "purged", "state": "old"},
    ]
    assert merge_stored(answered, stored.iloc[:0]) is answered


# ---- the same answer as a full collection, for any order of runs --------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Server:
    """Sessions created over 40 days; each changes (running -> final) up to ``recheck`` after it starts."""

    def __init__(self, created_h: list[int], settle_h: list[int]) -> None:
        self.created = [START + hours * HOUR for hours in created_h]
        self.final = [created + hours * HOUR for created, hours in zip(self.created, settle_h, strict=True)]

    def answer(self, clock: datetime, start: datetime, end: datetime) -> pd.DataFrame:
        """What the script returns at ``clock`` for sessions created in ``[start, end)``."""
        rows = [
            {"session_id": f"s{number}", "creation_time": created, "state": "final" if clock >= final else "running"}
            for number, (created, final) in enumerate(zip(self.created, self.final, strict=True))
            if start <= created < end and created <= clock
        ]
        return pd.DataFrame(rows, columns=["session_id", "creation_time", "state"])


def _in(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    return frame[(frame["creation_time"] >= start) & (frame["creation_time"] < end)]


RUNS = st.lists(st.tuples(st.integers(31, 45), st.integers(0, 24 * 20)), min_size=1, max_size=6)


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(
    sessions=st.lists(st.tuples(st.integers(0, 24 * 45), st.integers(0, 48)), max_size=40),
    runs=RUNS,
    recheck_days=st.integers(0, 3),
)
def test_any_order_of_runs_scores_what_a_full_collection_would(sessions, runs, recheck_days):
    """Days D (window [D-30, D)) run at any clock after D: late, out of order, re-run, with gaps.

    Sessions change for up to 2 days after they start; with a recheck of at least that, every
    run's window equals the server's whole window at that moment. A shorter recheck may miss
    a late change, so then only the sessions themselves must be all there.
    """
    server = Server([created for created, _ in sessions], [hours for _, hours in sessions])
    recheck = recheck_days * DAY
    history = pd.DataFrame(columns=["session_id", "creation_time", "state"])
    logged: list[Collected] = []
    for day, delay_h in sorted(runs, key=lambda run: START + run[0] * DAY + run[1] * HOUR):
        end = START + day * DAY
        start, clock = end - 30 * DAY, end + delay_h * HOUR
        asked = intervals_to_ask(start, end, logged, recheck)
        assert all(start <= a < b <= end for a, b in asked)
        answered = pd.concat([server.answer(clock, a, b) for a, b in asked], ignore_index=True)
        window = _in(merge_stored(answered, _in(history, start, end)), start, end)
        full = server.answer(clock, start, end)
        if recheck_days >= 2:
            assert (
                window.sort_values("session_id").to_numpy().tolist()
                == full.sort_values("session_id").to_numpy().tolist()
            )
        else:
            assert set(window["session_id"]) == set(full["session_id"])
        # the load: the window's sessions upserted, the asked intervals logged, in one go
        history = pd.concat([window, history[~history["session_id"].isin(window["session_id"])]], ignore_index=True)
        logged += [Collected(a, b, collected_at=clock) for a, b in asked]


@pytest.mark.parametrize("recheck_days", [1, 2])
def test_the_daily_steady_state_asks_for_three_days_of_thirty(recheck_days):
    logged: list[Collected] = []
    asked_days = []
    for day in range(31, 41):  # each run shortly after midnight
        end = START + day * DAY
        asked = intervals_to_ask(end - 30 * DAY, end, logged, recheck_days * DAY)
        asked_days.append(sum((b - a for a, b in asked), timedelta()) / DAY)
        logged += [Collected(a, b, collected_at=end + timedelta(minutes=3)) for a, b in asked]
    assert asked_days[0] == 30
    assert all(days <= recheck_days + 1 for days in asked_days[1:]), asked_days
