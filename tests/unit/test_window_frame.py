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
from veeam_efficiency.history_reads import RESULT_COLUMNS
from veeam_efficiency.payload import column, column_lists, from_columns, records
from veeam_efficiency.sessions import job_tally, sessions_frame, window_table
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.tables import HISTORY_TABLE
from veeam_efficiency.window import AnalysisWindow

WINDOW = AnalysisWindow(datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))
ASKED = WINDOW.end - timedelta(days=2)  # the server is asked for the window's last two days
SETTINGS = AnalysisSettings(min_sessions=10, max_factor=3.0)  # excludes sessions the default (100) keeps
RESULTS = [column.name for column in RESULT_COLUMNS]


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


def _reader(stored: pd.DataFrame, derived: pd.DataFrame | None = None) -> pipeline.ReadStored:
    """The history: ``stored`` sessions, with ``derived`` (session_id and the result columns earlier
    runs wrote; default none written) when read with ``results``."""

    def read(vbr_host: str, start: datetime, end: datetime, *, results: bool = False) -> pd.DataFrame:
        assert (vbr_host, start, end) == ("vbr01.example.test", WINDOW.start, WINDOW.end)
        if not results:
            return stored
        if derived is None:
            return stored.assign(**({name: None for name in RESULTS} | {"is_anomaly": False}))
        return stored.merge(derived[["session_id", *RESULTS]], on="session_id", how="left")

    return read


def _columns(frame: pd.DataFrame) -> dict[str, str]:
    from veeam_efficiency.payload import to_columns

    return to_columns(frame.sort_values("session_id", ignore_index=True), pipeline.SESSION_KINDS)


def test_validate_hands_on_only_what_the_server_reported(server: dict[str, Any]) -> None:
    collected, stored = _incremental(server)
    validated = pipeline.validate(collected, WINDOW, SETTINGS, _reader(stored))
    full = pipeline.validate(json.dumps(server), WINDOW, SETTINGS)
    reported = sum(1 for session in server["sessions"] if _created(session) >= ASKED) - 1
    assert len(column(validated["sessions"], "session_id")) == validated["sessions_collected"] == reported
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
    full_analysis = pipeline.analyze(full, SETTINGS)
    assert records(analysis["scorecards"]) and analysis["scorecards"] == full_analysis["scorecards"]
    pd.testing.assert_frame_equal(
        pipeline.history_table(validated, full_analysis, window),
        pipeline.history_table(full, full_analysis),
        check_dtype=False,
    )


def test_analyze_hands_load_the_rows_that_turn_the_history_into_a_full_collections(server: dict[str, Any]) -> None:
    """The history as a full collection of the window would write it, once the rows analyze hands
    on are upserted; and only rows that change it: the server's, and stored ones whose results differ."""
    collected, stored = _incremental(server)
    full = pipeline.validate(json.dumps(server), WINDOW, SETTINGS)
    expected = pipeline.history_table(full, pipeline.analyze(full, SETTINGS)).set_index("session_id")
    # what the previous run wrote: the full collection's results, but two sessions it judged otherwise
    derived = expected[RESULTS].reset_index()
    redone = list(derived["session_id"].iloc[[3, 7]])
    derived.loc[3, "is_anomaly"] = True
    derived.loc[7, "dedup_ratio"] = None
    derived.loc[9, "anomaly_score"] += 0.5  # drifts as the window moves: rewritten only when it turns null or back
    validated = pipeline.validate(collected, WINDOW, SETTINGS, _reader(stored, derived))
    analysis = pipeline.analyze(validated, SETTINGS, _reader(stored, derived))
    assert "session_anomalies" not in analysis
    rows = from_columns(analysis["history"], pipeline.HISTORY_ROW_KINDS).set_index("session_id")
    assert set(rows.index) == {*column(validated["sessions"], "session_id"), *redone}
    kept = stored.drop_duplicates("session_id").set_index("session_id").join(derived.set_index("session_id"))
    kept = kept.drop(rows.index, errors="ignore")  # the server repeats a session: the first copy counts
    upserted = pd.concat([kept, rows])[[*expected.columns.intersection(rows.columns)]].sort_index()
    drifting = [name for name in upserted.columns if name in HISTORY_TABLE.drifting]
    for frame in (upserted, want := expected[upserted.columns].sort_index()):
        frame[drifting] = frame[drifting].notna()
    pd.testing.assert_frame_equal(upserted, want, check_dtype=False, check_index_type=False)


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
    twice = {name: [*values, values[0]] for name, values in column_lists(analysis["session_anomalies"]).items()}
    with pytest.raises(ValueError, match="a session_id repeats in the anomaly verdicts"):
        pipeline.history_table(full, analysis | {"session_anomalies": twice})


def test_validate_counts_the_stored_rest_from_its_tally_and_reads_it_only_when_a_session_repeats(
    server: dict[str, Any],
) -> None:
    collected, stored = _incremental(server)
    stored = stored.drop_duplicates("session_id", ignore_index=True)  # the synthetic server repeats sessions
    by_rows = pipeline.validate(collected, WINDOW, SETTINGS, _reader(stored))
    asked: list[Any] = []

    def tally(vbr_host: str, start: datetime, end: datetime, reported: Any, settings: AnalysisSettings) -> Any:
        asked.append((vbr_host, start, end, settings))
        rest, repeats = window_table(stored[~stored["session_id"].isin(reported)], start, end, settings)
        assert not repeats
        return job_tally(rest), len(asked) - 1  # the second time: as if a session were stored twice

    assert pipeline.validate(collected, WINDOW, SETTINGS, tally_stored=tally) == by_rows  # no rows read
    assert asked == [("vbr01.example.test", WINDOW.start, WINDOW.end, SETTINGS)]
    with pytest.raises(ValueError, match="pass read_stored"):
        pipeline.validate(collected, WINDOW, SETTINGS, tally_stored=tally)
    assert pipeline.validate(collected, WINDOW, SETTINGS, _reader(stored), tally_stored=tally) == by_rows


def test_verdicts_joined_by_row_must_be_those_of_their_rows_sessions(server: dict[str, Any]) -> None:
    """analyze joins score_window's verdicts by row number (no session_id lookup): a verdict on another row is refused."""
    full = pipeline.validate(json.dumps(server), WINDOW, SETTINGS)
    sessions = pipeline.window_frame(full)
    verdicts = sessions[["session_id"]].assign(is_anomaly=True, anomaly_score=1.0, anomaly_reason="x").iloc[::2]
    rows = pipeline.history_rows(full, verdicts, sessions, aligned=True)
    assert rows["is_anomaly"].tolist() == [index % 2 == 0 for index in range(len(sessions))]
    with pytest.raises(ValueError, match="the anomaly verdicts are not indexed by their sessions' rows"):
        pipeline.history_rows(full, verdicts.set_axis(verdicts.index + 1), sessions, aligned=True)
