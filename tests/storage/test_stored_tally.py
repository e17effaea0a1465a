"""``validate`` counts the window's stored sessions in PostgreSQL (``history_reads.stored_tally``)
instead of reading them: the counts must be the ones pandas gets from the rows, for any sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from veeam_efficiency import storage
from veeam_efficiency.history_reads import stored_sessions, stored_tally
from veeam_efficiency.sessions import combined_tallies, job_tally, sessions_frame, window_table
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.tables import HISTORY_TABLE

HOST = "vbr01.example.test"
START, END = datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)
# raws whose factor 100 / raw lands on, inside and outside the bounds drawn below, and the odd ones
RAWS = [-5, 0, 1, 25, 40, 50, 100, 101, 200, 300, 400, 1000, 1001, 191073, 2**31 - 1]
IDS = [
    "s-1",
    "s-2",
    "S-2",
    "s-10",
    "é-1",
    "z",
    *(f"s-{n:02d}" for n in range(30)),
]  # byte order is not case-folded order


_READY: set[str] = set()  # the databases with the schema and the window's partitions


def _connect(dsn: str) -> psycopg.Connection[Any]:
    """A connection to the test's database (hypothesis runs the test many times on one ``results_db``)."""
    conn = psycopg.connect(dsn)
    if dsn not in _READY:
        storage.ensure_schema(conn)
        conn.execute("SELECT feature3.ensure_history_partitions(%s, %s)", (START - timedelta(days=1), END))
        conn.commit()
        _READY.add(dsn)
    return conn


moments = st.sampled_from(
    [START - timedelta(microseconds=1), START, START + timedelta(days=3), START + timedelta(days=3, microseconds=1),
     END - timedelta(days=1), END - timedelta(microseconds=1), END]
)  # fmt: skip
session = st.fixed_dictionaries(
    {
        "session_id": st.sampled_from(IDS),
        "job_id": st.sampled_from(["job-a", "job-B", "jöb-c"]),
        "job_name": st.sampled_from(["Daily", "Daily (renamed)", "Files", ""]),
        "result": st.sampled_from(["Success", "Warning", "Failed"]),
        "creation_time": moments,
        "running": st.booleans(),
        "data_size_bytes": st.sampled_from([0, 1, 10**12]),
        "dedup_ratio_raw": st.sampled_from(RAWS),
        "compress_ratio_raw": st.one_of(st.just(100), st.sampled_from(RAWS)),  # 1x: the dedup raw decides
    }
)


def _stored(sessions: list[dict[str, Any]], host: str) -> pd.DataFrame:
    """History rows of ``sessions`` (one per session_id and creation time, as the table keys them)."""
    records = [
        {
            **{name: value for name, value in item.items() if name != "running"},
            "end_time": None if item["running"] else item["creation_time"] + timedelta(minutes=5),
            "job_type": "Backup", "object_name": None, "algorithm": "Increment", "is_retry": False,
            "backup_size_bytes": 1, "read_size_bytes": 1, "transferred_size_bytes": 1,
        }
        for item in sessions
    ]  # fmt: skip
    frame = sessions_frame(records).drop_duplicates(["session_id", "creation_time"], ignore_index=True)
    return frame.assign(
        vbr_host=host, vbr_version="12.3", collected_at=pd.Timestamp(END), dedup_ratio=None, compression_ratio=None,
        combined_ratio=None, excluded_reason=None, is_anomaly=False, anomaly_score=None, anomaly_reason=None,
        analysis_date=date(2026, 11, 26),
    )[list(HISTORY_TABLE.names)]  # fmt: skip


def _write(conn: psycopg.Connection[Any], rows: pd.DataFrame) -> None:
    columns = sql.SQL(", ").join(map(sql.Identifier, rows.columns))
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("COPY feature3.storage_efficiency_history ({}) FROM STDIN").format(columns)) as copy,
    ):
        for row in rows.astype(object).where(rows.notna(), None).itertuples(index=False):
            copy.write_row(row)


@pytest.mark.postgres
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sessions=st.lists(session, max_size=40, unique_by=lambda item: item["session_id"]),
    moved=st.lists(session, max_size=2),  # stored again under another creation time: counted from the rows
    elsewhere=st.lists(session, max_size=3),
    reported=st.sets(st.sampled_from([*IDS, "not-stored"])),
    bounds=st.sampled_from([(0.1, 100.0), (0.5, 2.0), (0.25, 2.5), (1 / 3, 4.0)]),
)
def test_the_tally_of_the_stored_rest_is_what_pandas_counts_from_its_rows(
    results_db: str,
    sessions: list[dict[str, Any]],
    moved: list[dict[str, Any]],
    elsewhere: list[dict[str, Any]],
    reported: set[str],
    bounds: tuple[float, float],
) -> None:
    with _connect(results_db) as conn:
        conn.execute("TRUNCATE feature3.storage_efficiency_history")
        for rows in (_stored([*sessions, *moved], HOST), _stored(elsewhere, "vbr02.example.test")):
            _write(conn, rows)
        conn.commit()
        low, high = bounds
        analysis = AnalysisSettings(min_factor=low, max_factor=high)

        tally, repeats = stored_tally(conn, HOST, START, END, sorted(reported), analysis)

        rows = stored_sessions(conn, HOST, START, END)
        rest, duplicates = window_table(rows[~rows["session_id"].isin(reported)], START, END, analysis)
        assert repeats == duplicates
        if not repeats:  # a session stored twice is counted from its rows (pipeline.validate)
            expected = job_tally(rest)
            pd.testing.assert_frame_equal(tally, expected, check_dtype=False)
            assert int(tally["sessions"].sum()) == len(rest)


@given(sessions=st.lists(session, max_size=30, unique_by=lambda item: item["session_id"]), split=st.integers(0, 30))
def test_tallies_of_disjoint_sessions_add_up_to_the_tally_of_all(sessions: list[dict[str, Any]], split: int) -> None:
    """validate adds the server's tally to the stored rest's: as if it had tallied the window whole."""
    whole, _ = window_table(_stored(sessions, HOST), START, END, AnalysisSettings())
    first, second = whole.iloc[:split], whole.iloc[split:]
    pd.testing.assert_frame_equal(combined_tallies(job_tally(first), job_tally(second)), job_tally(whole))


@pytest.mark.postgres
def test_the_tally_hashes_the_reported_ids_when_the_history_has_no_statistics_yet(results_db: str) -> None:
    """A history written moments ago looks empty to the planner until autovacuum analyses it. The count
    must not then compare each stored session with every reported id (a nested loop: 14 s for 20,000
    sessions in the bench, hours for a million)."""
    day = (END - START) / 3000
    sessions = [
        {"session_id": f"s-{n:05d}", "job_id": f"job-{n % 7}", "job_name": "Daily", "result": "Success",
         "creation_time": START + n * day, "running": False, "data_size_bytes": 10**9,
         "dedup_ratio_raw": 50, "compress_ratio_raw": 50}
        for n in range(3000)
    ]  # fmt: skip
    with _connect(results_db) as conn:
        partitions = conn.execute(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'feature3.storage_efficiency_history'::regclass"
        ).fetchall()
        for (partition,) in partitions:  # no statistics until the test ends, however long it takes
            conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(
                sql.Identifier("feature3", partition)))  # fmt: skip
        _write(conn, _stored(sessions, HOST))
        conn.commit()
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.Error:
            pytest.skip("PostgreSQL's auto_explain (postgresql-contrib) is not installed: the plan cannot be seen")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_level = 'notice'")  # each plan to this client
        plans: list[str] = []
        conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))

        tally, _ = stored_tally(
            conn, HOST, START, END, [item["session_id"] for item in sessions[10:]], AnalysisSettings()
        )

    tallies = [text for text in plans if "unnest" in text]
    assert len(tallies) == 1, plans  # auto_explain showed the count's plan
    assert "Anti Join" in tallies[0] and "Nested Loop" not in tallies[0], tallies[0]
    assert int(tally["sessions"].sum()) == 10
