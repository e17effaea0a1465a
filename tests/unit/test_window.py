"""window.analysis_window: the run's window from its data interval, never from 'now'."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from veeam_efficiency.window import AnalysisWindow, analysis_window


def test_window_covers_lookback_days_ending_at_data_interval_end() -> None:
    window = analysis_window(datetime(2026, 11, 27, tzinfo=UTC), 30)
    # [2026-11-27 - 30 days, 2026-11-27) = [2026-10-28, 2026-11-27)
    assert window.start == datetime(2026, 10, 28, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 27, tzinfo=UTC)
    assert window.end - window.start == timedelta(days=30)


def test_analysis_date_is_last_day_covered() -> None:
    # the window ends (exclusive) at 2026-11-27T00:00Z, so its last day is 2026-11-26
    assert analysis_window(datetime(2026, 11, 27, tzinfo=UTC), 30).analysis_date == date(2026, 11, 26)
    # a window ending at midday still covers part of that day
    assert analysis_window(datetime(2026, 11, 27, 12, tzinfo=UTC), 1).analysis_date == date(2026, 11, 27)
    # one microsecond after midnight also covers the new day
    assert AnalysisWindow(
        start=datetime(2026, 11, 26, tzinfo=UTC), end=datetime(2026, 11, 27, 0, 0, 0, 1, tzinfo=UTC)
    ).analysis_date == date(2026, 11, 27)


def test_window_of_one_day() -> None:
    window = analysis_window(datetime(2026, 3, 1, tzinfo=UTC), 1)
    assert (window.start, window.end) == (datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert window.analysis_date == date(2026, 2, 28)


def test_offset_end_is_converted_to_utc() -> None:
    # 2026-11-27T02:00+02:00 is 2026-11-27T00:00Z
    window = analysis_window(datetime(2026, 11, 27, 2, tzinfo=timezone(timedelta(hours=2))), 7)
    assert window.end == datetime(2026, 11, 27, tzinfo=UTC)
    assert window.end.utcoffset() == timedelta(0)
    assert window.start == datetime(2026, 11, 20, tzinfo=UTC)
    assert window.analysis_date == date(2026, 11, 26)


def test_naive_end_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        analysis_window(datetime(2026, 11, 27), 30)


def test_pendulum_end_becomes_plain_utc_datetime() -> None:
    pendulum = pytest.importorskip("pendulum")
    end = pendulum.datetime(2026, 11, 27, tz="Europe/Berlin")  # 2026-11-26T23:00Z
    window = analysis_window(end, 30)
    assert type(window.end) is datetime
    assert type(window.start) is datetime
    assert window.end == datetime(2026, 11, 26, 23, tzinfo=UTC)
    assert window.analysis_date == date(2026, 11, 26)
