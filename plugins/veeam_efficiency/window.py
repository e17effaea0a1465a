"""The analysis window of a run, from its data interval: never 'now', never 'latest'."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


@dataclass(frozen=True)
class AnalysisWindow:
    """Sessions created in ``[start, end)``; scorecards are dated ``analysis_date``."""

    start: datetime
    end: datetime

    @property
    def analysis_date(self) -> date:
        """The last day the window covers (a run for day D ends its window at D+1 00:00)."""
        return (self.end - timedelta(microseconds=1)).date()


def analysis_window(data_interval_end: datetime, lookback_days: int) -> AnalysisWindow:
    """The ``lookback_days`` ending at the run's data-interval end (UTC)."""
    if data_interval_end.tzinfo is None:
        raise ValueError("data_interval_end must be timezone-aware")
    # a plain datetime: pendulum's subclass loses its zone in pandas comparisons
    end = datetime.fromtimestamp(data_interval_end.timestamp(), tz=UTC)
    return AnalysisWindow(start=end - timedelta(days=lookback_days), end=end)
