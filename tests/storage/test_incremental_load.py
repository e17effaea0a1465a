"""An incremental run's load: the server's sessions, and the stored ones whose results changed, nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
import pytest

from tools.synthetic import generate_document
from veeam_efficiency import pipeline
from veeam_efficiency.history_reads import stored_sessions, stored_tally
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.storage import ensure_schema
from veeam_efficiency.window import AnalysisWindow

pytestmark = pytest.mark.postgres

WINDOW = AnalysisWindow(datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))
ASKED = WINDOW.end - timedelta(days=2)
DEFAULTS = AnalysisSettings(min_sessions=10)
STRICT = AnalysisSettings(min_sessions=10, max_factor=3.0)  # a changed Param: more sessions implausible
UNSCORED = AnalysisSettings(min_sessions=1000)  # no job qualifies: every anomaly score becomes null
RESULTS = (
    "SELECT session_id, dedup_ratio, compression_ratio, combined_ratio, excluded_reason, is_anomaly, "
    "anomaly_score IS NULL, anomaly_reason FROM feature3.storage_efficiency_history ORDER BY session_id"
)


def _scored(validated: dict[str, Any], settings: AnalysisSettings, read: Any = None) -> dict[str, Any] | None:
    if not validated["qualifying_job_ids"]:
        return None
    analysis = pipeline.analyze(validated, settings, read)
    return pipeline.scored(analysis, pipeline.optimize(analysis, settings))


def test_stored_sessions_are_rewritten_only_when_their_results_change(results_db: str) -> None:
    server = generate_document(
        vbr_host="vbr01.example.test", jobs=6, sessions=900, window_start=WINDOW.start, window_end=WINDOW.end, seed=5
    )
    new = [s for s in server["sessions"] if datetime.fromisoformat(s["creation_time"].replace("Z", "+00:00")) >= ASKED]
    collected = {"collection_target": "replay:vbr01", "asked": [[ASKED.isoformat(), WINDOW.end.isoformat()]],
                 "logged": True, "documents": [json.dumps(server | {"sessions": new})]}  # fmt: skip
    with psycopg.connect(results_db) as conn:
        ensure_schema(conn)
        first = pipeline.validate(json.dumps(server), WINDOW, DEFAULTS)
        pipeline.load(conn, first, _scored(first, DEFAULTS))
        read = partial(stored_sessions, conn)

        same = pipeline.validate(collected, WINDOW, DEFAULTS, read)
        assert pipeline.validate(collected, WINDOW, DEFAULTS, tally_stored=partial(stored_tally, conn)) == same
        assert pipeline.load(conn, same, _scored(same, DEFAULTS, read), settings=DEFAULTS)["history_rows"] == 0

        for settings in (STRICT, UNSCORED):  # then Params that change stored sessions' results
            again = pipeline.validate(collected, WINDOW, settings, read)
            assert pipeline.validate(collected, WINDOW, settings, tally_stored=partial(stored_tally, conn)) == again
            written = pipeline.load(conn, again, _scored(again, settings, read), settings=settings)["history_rows"]
            assert written > len(new)  # stored sessions whose results changed were written too
            assert conn.execute(RESULTS).fetchall() == _full_collection(server, settings)


def _full_collection(server: dict[str, Any], settings: AnalysisSettings) -> list[tuple[Any, ...]]:
    """The history's results as a full collection with ``settings`` stores them."""
    full = pipeline.validate(json.dumps(server), WINDOW, settings)
    expected = pipeline.history_table(full, _scored(full, settings)).sort_values("session_id")
    columns = ["session_id", "dedup_ratio", "compression_ratio", "combined_ratio", "excluded_reason", "is_anomaly"]
    expected = expected.assign(score_null=expected["anomaly_score"].isna())[[*columns, "score_null", "anomaly_reason"]]
    return [tuple(None if value != value else value for value in row) for row in expected.itertuples(index=False)]
