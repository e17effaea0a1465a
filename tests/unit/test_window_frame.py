"""The window's stored sessions stay in the history: ``validate`` hands on what the server reported,
and ``analyze`` and ``load`` rebuild the very window a full collection gives."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from tools.synthetic import generate_document
from veeam_efficiency import pipeline
from veeam_efficiency.columnar import parse_document_columns
from veeam_efficiency.sessions import sessions_frame
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.window import AnalysisWindow

WINDOW = AnalysisWindow(datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))
ASKED = WINDOW.end - timedelta(days=2)  # the server is asked for the window's last two days
SETTINGS = AnalysisSettings(min_sessions=10, max_factor=3.0)  # excludes sessions the default (100) keeps


@pytest.fixture(scope="module")
def server() -> dict[str, Any]:
    return generate_document(
        vbr_host="vbr01.example.test", jobs=6, sessions=900, window_start=WINDOW.start, window_end=WINDOW.end, seed=5
    )


def _created(session: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(session["creation_time"].replace("Z", "+00:00"))


def _incremental(server: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The collection of the last two days, and the history's sessions of the window: the older ones,
    a stale copy of a session the server now reports finished, and one the server has purged."""
    new = [session for session in server["sessions"] if _created(session) >= ASKED]
    purged, changed = new[0], new[1]
    answer = copy.deepcopy(server) | {"sessions": new[1:]}
    stale = copy.deepcopy(changed) | {"end_time": None, "backup_size_bytes": 1}  # running when last stored
    older = [session for session in server["sessions"] if _created(session) < ASKED]
    stored = sessions_frame(
        parse_document_columns(json.dumps(server | {"sessions": [*older, purged, stale]}))["sessions"]
    )
    collected = {"collection_target": "replay:vbr01", "asked": [[ASKED.isoformat(), WINDOW.end.isoformat()]],
                 "logged": True, "documents": [json.dumps(answer)]}  # fmt: skip
    return collected, stored


def _reader(stored: pd.DataFrame) -> pipeline.ReadStored:
    def read(vbr_host: str, start: datetime, end: datetime) -> pd.DataFrame:
        assert (vbr_host, start, end) == ("vbr01.example.test", WINDOW.start, WINDOW.end)
        return stored

    return read


def _columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    from veeam_efficiency.payload import to_columns

    return to_columns(frame.sort_values("session_id", ignore_index=True), pipeline.SESSION_KINDS)


def test_validate_hands_on_only_what_the_server_reported(server: dict[str, Any]) -> None:
    collected, stored = _incremental(server)
    validated = pipeline.validate(collected, WINDOW, SETTINGS, _reader(stored))
    full = pipeline.validate(json.dumps(server), WINDOW, SETTINGS)
    reported = sum(1 for session in server["sessions"] if _created(session) >= ASKED) - 1
    assert len(validated["sessions"]["session_id"]) == validated["sessions_collected"] == reported
    assert validated["stored_window"] and not full["stored_window"]
    assert validated["sessions_from_history"] == len(server["sessions"]) - reported  # the purged one counts
    for key in ("sessions_in_window", "qualifying_job_ids", "insufficient_jobs", "excluded"):
        assert validated[key] == full[key], key


def test_the_steps_after_rebuild_the_window_and_score_it_as_a_full_collection(server: dict[str, Any]) -> None:
    collected, stored = _incremental(server)
    read = _reader(stored)
    validated = pipeline.validate(collected, WINDOW, SETTINGS, read)
    full = pipeline.validate(json.dumps(server), WINDOW, SETTINGS)
    window = pipeline.window_frame(validated, SETTINGS, pipeline.stored_rest(validated, read))
    assert _columns(window) == _columns(pipeline.window_frame(full))
    assert window["creation_time"].is_monotonic_increasing
    analysis = pipeline.analyze(validated, SETTINGS, read)
    assert analysis["scorecards"] and analysis == pipeline.analyze(full, SETTINGS)
    pd.testing.assert_frame_equal(
        pipeline.history_table(validated, analysis, window), pipeline.history_table(full, analysis), check_dtype=False
    )


def test_a_window_left_in_the_history_is_never_scored_without_it(server: dict[str, Any]) -> None:
    collected, stored = _incremental(server)
    with pytest.raises(ValueError, match="pass read_stored"):
        pipeline.validate(collected, WINDOW, SETTINGS)
    validated = pipeline.validate(collected, WINDOW, SETTINGS, _reader(stored))
    with pytest.raises(ValueError, match="sessions of the window are in the session history: pass read_stored"):
        pipeline.analyze(validated, SETTINGS)
    with pytest.raises(ValueError, match=r"pass them \(stored_rest\) and the run's settings"):
        pipeline.history_table(validated, None)
    with pytest.raises(ValueError, match=r"pass them \(stored_rest\) and the run's settings"):
        pipeline.window_frame(validated, None, stored)


def test_a_session_with_two_verdicts_is_refused(server: dict[str, Any]) -> None:
    full = pipeline.validate(json.dumps(server), WINDOW, SETTINGS)
    analysis = pipeline.analyze(full, SETTINGS)
    assert len(pipeline.history_table(full, analysis)) == full["sessions_in_window"]
    twice = {name: [*values, values[0]] for name, values in analysis["session_anomalies"].items()}
    with pytest.raises(ValueError, match="a session_id repeats in the anomaly verdicts"):
        pipeline.history_table(full, analysis | {"session_anomalies": twice})
