"""storage.write_run's binary COPY and its direct-into-the-table path, against real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import psycopg.rows
import pytest
from psycopg import sql

from veeam_efficiency import payload, storage
from veeam_efficiency.copy_binary import NotBinaryCopyable, binary_copy
from veeam_efficiency.tables import HISTORY, HISTORY_TABLE, SCHEMA, SCORECARD_TABLE

pytestmark = pytest.mark.postgres

HOST = "vbr01.example.test"
DAY = date(2026, 11, 27)
T0 = datetime(2026, 11, 20, tzinfo=UTC)
TEXTS = ["plain", "", "tab\there", "new\nline", "back\\slash", "\\N", "Zürich – 東京", "cr\rx", "quote\"'"]


def _history(count: int, *, first: int = 0, job: str = "job-1") -> pd.DataFrame:
    n = np.arange(first, first + count)
    frame = pd.DataFrame(
        {
            "vbr_host": HOST,
            "session_id": [f"s-{i:06d}" for i in n],
            "vbr_version": "12.3.1.1139",
            "collected_at": pd.Timestamp("2026-11-27T06:00:00Z"),
            "job_id": job,
            "job_name": [TEXTS[i % len(TEXTS)] for i in n],
            "job_type": "Backup",
            "object_name": None,
            "algorithm": np.where(n % 7 == 0, "Full", "Increment"),
            "result": "Success",
            "is_retry": n % 5 == 0,
            "creation_time": [T0 + timedelta(minutes=int(i), microseconds=int(i)) for i in n],
            "end_time": [None if i % 4 == 0 else T0 + timedelta(minutes=int(i) + 9) for i in n],
            "data_size_bytes": 2**63 - 1 - n,
            "backup_size_bytes": n,
            "read_size_bytes": n * 3,
            "transferred_size_bytes": n * 2,
            "dedup_ratio_raw": np.where(n % 3 == 0, 2**31 - 1, 50),
            "compress_ratio_raw": 0,
            "dedup_ratio": np.where(n % 3 == 0, np.nan, 100 / (1 + n)),
            "compression_ratio": np.where(n % 6 == 1, np.inf, -0.0),
            "combined_ratio": 1e-300 * n,
            "excluded_reason": [None if i % 2 else "failed" for i in n],
            "is_anomaly": n % 9 == 0,
            "anomaly_score": np.where(n % 2 == 0, np.nan, -1.5 * n),
            "anomaly_reason": [None if i % 3 else f"reason {TEXTS[i % len(TEXTS)]}" for i in n],
            "analysis_date": DAY,
        }
    )
    frame["creation_time"] = pd.to_datetime(frame["creation_time"], utc=True)
    frame["end_time"] = pd.to_datetime(frame["end_time"], utc=True)
    return frame


NO_CARDS = payload.from_records([], SCORECARD_TABLE.kinds)


@pytest.fixture
def conn(results_db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(results_db) as connection:
        storage.ensure_schema(connection)
        yield connection


def _rows(conn: psycopg.Connection[Any], table: str = f"{SCHEMA}.{HISTORY}") -> list[Any]:
    return conn.execute(f"SELECT * FROM {table} ORDER BY session_id").fetchall()


def _python_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The frame's rows as plain Python values (NaN/NaT as None), for psycopg to adapt itself."""
    columns = []
    for name in HISTORY_TABLE.names:
        values = frame[name].astype(object).tolist()
        if HISTORY_TABLE.column(name).kind == "time":
            values = [None if pd.isna(moment) else pd.Timestamp(moment).to_pydatetime() for moment in values]
        columns.append([None if value is None or value != value else value for value in values])  # NaN != NaN
    return list(zip(*columns, strict=True))


def test_binary_copy_stores_what_parameterised_inserts_store(conn: psycopg.Connection[Any]) -> None:
    """The reference is psycopg's own adaptation of each Python value, one INSERT per row."""
    history = _history(300)
    counts = storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=history, scorecards=NO_CARDS)
    assert counts == {"history_rows": 300, "scorecard_rows": 0, "stale_scorecards_deleted": 0, "unscored_jobs": 0}
    conn.execute(f"CREATE TEMP TABLE reference (LIKE {SCHEMA}.{HISTORY})")
    names = sql.SQL(", ").join(map(sql.Identifier, HISTORY_TABLE.names))
    marks = sql.SQL(", ").join(sql.Placeholder() * len(HISTORY_TABLE.names))
    with conn.cursor() as cur:
        cur.executemany(sql.SQL("INSERT INTO reference ({}) VALUES ({})").format(names, marks), _python_rows(history))
    binary, reference = _rows(conn), _rows(conn, "reference")
    assert len(binary) == 300
    assert binary == reference
    assert {row[5] for row in binary} == set(TEXTS)  # job_name, byte for byte ('' is not NULL)


def test_integer_out_of_range_is_refused_before_any_data() -> None:
    frame = pd.DataFrame({"n": [1, 2**31]})
    with pytest.raises(NotBinaryCopyable, match="range of integer"):
        binary_copy(frame, {"n": "integer"})
    order, _ = binary_copy(frame, {"n": "bigint"})
    assert order == ["n"]


def test_rerun_and_a_key_the_sample_misses_still_upsert(conn: psycopg.Connection[Any]) -> None:
    first = _history(3000)
    storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=first.iloc[[1]], scorecards=NO_CARDS)
    # only row 1 exists: the sample of keys (every third row of 3000) misses it, the direct COPY
    # hits its key, and the savepoint hands the rows to INSERT ... ON CONFLICT
    changed = first.assign(job_name="renamed", anomaly_score=7.0)
    counts = storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=changed, scorecards=NO_CARDS)
    assert counts["history_rows"] == 3000
    rows = _rows(conn)
    assert len(rows) == 3000
    assert {row[5] for row in rows} == {"renamed"}
    again = storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=changed, scorecards=NO_CARDS)
    assert again["history_rows"] == 0  # nothing changed: nothing rewritten
    assert _rows(conn) == rows


def _row_versions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    return dict(conn.execute(f"SELECT session_id, xmin::text FROM {SCHEMA}.{HISTORY}").fetchall())


def test_only_changed_rows_are_rewritten(conn: psycopg.Connection[Any]) -> None:
    first = _history(3000)
    storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=first, scorecards=NO_CARDS)
    versions, rows = _row_versions(conn), _rows(conn)
    # the next day's run collects the same sessions again: only which run wrote them differs
    later = first.assign(
        collected_at=pd.Timestamp("2026-11-28T06:00:00Z"), vbr_version="13.0.1.180", analysis_date=DAY + timedelta(1)
    )
    counts = storage.write_run(
        conn, vbr_host=HOST, analysis_date=DAY + timedelta(1), history=later, scorecards=NO_CARDS
    )
    assert counts["history_rows"] == 0
    assert _row_versions(conn) == versions and _rows(conn) == rows  # no new row version, the first run's provenance

    changed = later.copy()
    changed.loc[[5, 17], "backup_size_bytes"] += 1  # VBR corrected two sessions
    changed.loc[40, "anomaly_score"] = np.nan if not np.isnan(changed.loc[40, "anomaly_score"]) else 1.0
    counts = storage.write_run(
        conn, vbr_host=HOST, analysis_date=DAY + timedelta(1), history=changed, scorecards=NO_CARDS
    )
    assert counts["history_rows"] == 3
    after = _row_versions(conn)
    assert {session for session, version in after.items() if version != versions[session]} == {
        "s-000005", "s-000017", "s-000040",
    }  # fmt: skip
    stored = dict(conn.execute(f"SELECT session_id, collected_at FROM {SCHEMA}.{HISTORY}").fetchall())
    assert stored["s-000005"] == datetime(2026, 11, 28, 6, tzinfo=UTC)  # a rewritten row: its provenance too
    assert stored["s-000006"] == datetime(2026, 11, 27, 6, tzinfo=UTC)

    # the next window moves every session's standard score a little: not a change of the session
    drifted = changed.assign(anomaly_score=changed["anomaly_score"] + 0.25)
    versions = _row_versions(conn)
    counts = storage.write_run(
        conn, vbr_host=HOST, analysis_date=DAY + timedelta(2), history=drifted, scorecards=NO_CARDS
    )
    assert counts["history_rows"] == 0 and _row_versions(conn) == versions


def test_direct_copy_leaves_other_hosts_alone(conn: psycopg.Connection[Any]) -> None:
    other = _history(10).assign(vbr_host="vbr02.example.test")
    storage.write_run(conn, vbr_host="vbr02.example.test", analysis_date=DAY, history=other, scorecards=NO_CARDS)
    storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=_history(10), scorecards=NO_CARDS)
    hosts = conn.execute(f"SELECT vbr_host, count(*) FROM {SCHEMA}.{HISTORY} GROUP BY 1").fetchall()
    assert sorted(hosts) == [(HOST, 10), ("vbr02.example.test", 10)]


@pytest.mark.parametrize("prefix", ["s-", "Zürich-"], ids=["ascii", "non-ascii"])
def test_rows_go_in_primary_key_order(prefix: str) -> None:
    history = _history(40)
    history["session_id"] = [f"{prefix}{n}" for n in np.random.default_rng(3).permutation(40)]
    ordered = storage.in_key_order(history)
    assert ordered["session_id"].tolist() == sorted(history["session_id"], key=lambda text: text.encode())
    merged = ordered.merge(history, on="session_id", suffixes=("", "_before"))
    assert (merged["job_name"] == merged["job_name_before"]).all()  # whole rows move, not one column


def _key_collations(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT format('%s.%s', c.relname, a.attname), coll.collname FROM pg_attribute AS a "
        "JOIN pg_class AS c ON c.oid = a.attrelid JOIN pg_collation AS coll ON coll.oid = a.attcollation "
        "WHERE c.relnamespace = 'feature3'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND a.attname IN ('vbr_host', 'job_id', 'session_id')"
    ).fetchall()
    return dict(rows)


def _index_files(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The indexes with storage (a partitioned table's own index has none: its partitions' do)."""
    rows = conn.execute(
        "SELECT relname, relfilenode FROM pg_class WHERE relnamespace = 'feature3'::regnamespace AND relkind = 'i'"
    ).fetchall()
    return dict(rows)


def _older_schema() -> str:
    """schema.sql as it was before COLLATE "C" and before the history was partitioned."""
    text = storage.SCHEMA_SQL.read_text(encoding="utf-8").split("DO $migrate$")[0].replace(' COLLATE "C"', "")
    start, end = text.index("DO $unpartitioned$"), text.index("$unpartitioned$;") + len("$unpartitioned$;")
    text = text[:start] + text[end:]
    return text.replace(") PARTITION BY RANGE (creation_time);", ");").replace(
        "PRIMARY KEY (vbr_host, session_id, creation_time)", "PRIMARY KEY (vbr_host, session_id)"
    )


def test_older_tables_are_converted_once_to_byte_ordered_keys_and_a_partitioned_history(results_db: str) -> None:
    """Tables made before COLLATE "C" are converted with their rows and indexes, the history made before
    partitioning is moved into monthly partitions; later runs change nothing."""
    with psycopg.connect(results_db) as conn:
        conn.execute(_older_schema())
        conn.execute(  # the job index of older versions, on the text key (the schema text above drops it)
            "CREATE INDEX storage_efficiency_history_job_time_idx "
            "ON feature3.storage_efficiency_history (vbr_host, job_id, creation_time)"
        )
        history = _history(60)
        history["creation_time"] = pd.to_datetime([T0 - timedelta(days=40 - i) for i in range(60)], utc=True)
        history, later = history.iloc[:50], history  # two months, and the next run's sessions
        with conn.cursor() as cur:
            names = ", ".join(HISTORY_TABLE.names)
            cur.executemany(
                f"INSERT INTO {SCHEMA}.{HISTORY} ({names}) VALUES ({', '.join(['%s'] * len(HISTORY_TABLE.names))})",
                _python_rows(history),
            )
        conn.execute(
            "INSERT INTO feature3.unscored_jobs VALUES ('h', 'j', '2026-11-01', 'n', 1, 30, 'too_few_scorable_sessions')"
        )
        conn.commit()
        assert set(_key_collations(conn).values()) == {"default"}
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'feature3.storage_efficiency_history'::regclass"
        ).fetchone() == ("r",)
        before = _rows(conn)
        old_indexes = _index_files(conn)

        storage.ensure_schema(conn)
        collations = _key_collations(conn)
        # with unscored_jobs, job_settings and collection_log
        assert len(collations) == 10 and set(collations.values()) == {"C"}, collations
        assert _rows(conn) == before
        partitions = conn.execute(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'feature3.storage_efficiency_history'::regclass ORDER BY 1"
        ).fetchall()
        assert partitions == [("storage_efficiency_history_y2026m10",), ("storage_efficiency_history_y2026m11",)]
        assert conn.execute("SELECT to_regclass('feature3.storage_efficiency_history_unpartitioned')").fetchone() == (
            None,
        )
        converted = _index_files(conn)
        history_indexes = {name for name in converted if name.startswith("storage_efficiency_history_y")}
        assert len(history_indexes) == 4  # each partition's primary key and (hash of job, time) index
        new_tables = {"job_settings_pkey", "collection_log_pkey", "collection_log_target_idx"}
        assert set(converted) - new_tables - history_indexes == set(old_indexes) - {
            "storage_efficiency_history_job_time_idx", "storage_efficiency_history_pkey",
            "storage_efficiency_history_job_hash_time_idx",  # the partitioned table's own: on its partitions
        }  # fmt: skip
        rebuilt = {name for name in converted if converted[name] != old_indexes.get(name, converted[name])}
        assert rebuilt == {"metrics_storage_efficiency_pkey", "unscored_jobs_pkey"}  # not the date one

        storage.ensure_schema(conn)  # already converted: no rebuild
        assert _index_files(conn) == converted
        storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=later, scorecards=NO_CARDS)
        assert len(_rows(conn)) == 60  # into the month partitions, one row per session


def _settings(day: date, **changes: Any) -> pd.DataFrame:
    """Two jobs' settings as pipeline.load builds them: nullable flags, one unknown repository."""
    records = [
        {"job_id": "job-1", "job_name": "SQL Daily", "job_type": "Backup", "compression_level": "Optimal",
         "block_size_kb": 1024, "inline_dedup": True, "encryption": False, "repository_id": "repo-1",
         "repository_name": "DataDomain", "repository_type": "DataDomain", "dedup_appliance": True,
         "decompress_before_storing": False, "align_blocks": None, "fast_clone": None, "object_storage": False,
         "scale_out": False} | changes,
        {"job_id": "job-2", "job_name": "Files", "job_type": None, "compression_level": None, "block_size_kb": None,
         "inline_dedup": None, "encryption": None, "repository_id": None, "repository_name": None,
         "repository_type": None, "dedup_appliance": None, "decompress_before_storing": None, "align_blocks": None,
         "fast_clone": None, "object_storage": None, "scale_out": None},
    ]  # fmt: skip
    return payload.from_records(records, storage.JOB_SETTINGS_COLUMNS).assign(vbr_host=HOST, analysis_date=day)


def test_job_settings_are_kept_per_day_nulls_stay_null_and_reruns_replace(conn: psycopg.Connection[Any]) -> None:
    table = f"{storage.SCHEMA}.{storage.JOB_SETTINGS}"
    query = f"SELECT analysis_date, job_id, compression_level, inline_dedup, align_blocks FROM {table} ORDER BY 1, 2"
    before = DAY - timedelta(days=1)
    storage.write_run(conn, vbr_host=HOST, analysis_date=before, history=_history(3), scorecards=NO_CARDS,
                      job_settings=_settings(before))  # fmt: skip
    counts = storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=_history(3), scorecards=NO_CARDS,
                               job_settings=_settings(DAY, compression_level="None", inline_dedup=False))  # fmt: skip
    assert counts["job_settings_rows"] == 2
    assert conn.execute(query).fetchall() == [
        (before, "job-1", "Optimal", True, None), (before, "job-2", None, None, None),
        (DAY, "job-1", "None", False, None), (DAY, "job-2", None, None, None),
    ]  # fmt: skip  # the change of settings is visible from one day to the next
    storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=_history(3), scorecards=NO_CARDS,
                      job_settings=_settings(DAY).iloc[[0]])  # fmt: skip
    assert [row[:3] for row in conn.execute(query).fetchall()] == [
        (before, "job-1", "Optimal"), (before, "job-2", None), (DAY, "job-1", "Optimal"),
    ]  # fmt: skip  # re-run of the day: upserted, and the job it no longer lists is gone
    storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=_history(3), scorecards=NO_CARDS)
    assert len(conn.execute(query).fetchall()) == 3  # a v1 run knows no settings and leaves them alone


def test_a_jobs_sessions_are_read_through_the_hashed_job_index_and_only_its_own(results_db: str) -> None:
    """The view's session query can use the (hash of job_id, time) index, and returns that host's job only."""
    from veeam_efficiency import view_queries

    other_host = _history(30, first=100).assign(vbr_host="vbr02.example.test")  # same job_id elsewhere
    with psycopg.connect(results_db) as conn:
        storage.ensure_schema(conn)
        for rows in (_history(40), _history(20, first=200, job="job-2"), other_host):
            storage.write_run(
                conn, vbr_host=rows["vbr_host"].iat[0], analysis_date=DAY, history=rows, scorecards=NO_CARDS
            )
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            page = view_queries.job_sessions(cur, HOST, "job-1", before=None, limit=25)
            rest = view_queries.job_sessions(cur, HOST, "job-1", before=page["older"], limit=25)
        ids = [row["session_id"] for row in page["rows"] + rest["rows"]]
        assert ids == [f"s-{i:06d}" for i in reversed(range(40))] and rest["older"] is None
        conn.execute("SET enable_seqscan = off")  # a tiny table: make the planner show what it can use
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            plan = view_queries.job_sessions(_Explaining(cur), HOST, "job-1", before=None, limit=25)["rows"]
        # each month's partition has the index (named by PostgreSQL after the parent's)
        assert "Index Cond: (hashtextextended(job_id, '0'::bigint) = " in str(plan), plan


class _Explaining:
    """A cursor that EXPLAINs the statement it is given instead of running it."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def execute(self, query: sql.Composable, params: Any) -> None:
        self.cur.execute(sql.SQL("EXPLAIN ") + query, params)

    def fetchall(self) -> list[Any]:
        return self.cur.fetchall()


def test_stored_sessions_read_back_exactly_as_the_contract_sent_them(conn: psycopg.Connection[Any]) -> None:
    """What an incremental run reads from the history instead of asking the server: every field, nulls and odd text."""
    from veeam_efficiency.history_reads import stored_counts, stored_sessions
    from veeam_efficiency.tables import SESSION_RECORD

    history = _history(400)
    history["object_name"] = pd.Series(
        [None if i % 3 else TEXTS[i // 3 % len(TEXTS)] for i in range(400)], dtype=object
    )
    other_host = _history(5).assign(vbr_host="vbr02.example.test")
    storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=history, scorecards=NO_CARDS)
    storage.write_run(conn, vbr_host="vbr02.example.test", analysis_date=DAY, history=other_host, scorecards=NO_CARDS)
    start, end = T0 + timedelta(minutes=10, microseconds=10), T0 + timedelta(minutes=300, microseconds=300)

    stored = stored_sessions(conn, HOST, start, end).sort_values("session_id", ignore_index=True)

    created = history["creation_time"]
    expected = history[(created >= start) & (created < end)][list(SESSION_RECORD.names)].reset_index(drop=True)
    assert stored["session_id"].tolist() == [f"s-{i:06d}" for i in range(10, 300)]  # half-open, to the microsecond
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert stored["object_name"].iloc[[4, 5]].tolist() == [None, "\\N"]  # session 15: the text, not a null marker
    # with what the runs derived (load compares it): every float back exactly, nulls as nulls
    from veeam_efficiency.history_reads import RESULT_COLUMNS

    results = [column.name for column in RESULT_COLUMNS]
    full = stored_sessions(conn, HOST, start, end, results=True).sort_values("session_id", ignore_index=True)
    pd.testing.assert_frame_equal(full[list(SESSION_RECORD.names)], stored)
    wanted = history[(created >= start) & (created < end)][results].reset_index(drop=True)
    wanted["excluded_reason"] = wanted["excluded_reason"].astype(object)
    pd.testing.assert_frame_equal(full[results], wanted, check_dtype=False, check_exact=True)
    assert np.signbit(full["compression_ratio"]).any() and np.isinf(full["compression_ratio"]).any()
    assert stored_sessions(conn, "nobody", start, end).empty
    # what the check of the collection log counts: one scan, each interval half-open
    intervals = [(start, end), (T0, T0 + timedelta(minutes=1)), (T0 - timedelta(days=1), T0)]
    assert stored_counts(conn, HOST, intervals) == [290, 1, 0]
    assert stored_counts(conn, HOST, []) == []


def test_the_collection_log_is_written_with_the_history_and_read_by_target(conn: psycopg.Connection[Any]) -> None:
    from veeam_efficiency.collection_plan import Collected
    from veeam_efficiency.history_reads import collected_intervals
    from veeam_efficiency.tables import COLLECTION_LOG_TABLE

    def log(start: datetime, end: datetime, at: datetime, target: str = "vbr01") -> dict[str, Any]:
        return {"vbr_host": HOST, "interval_start": start, "interval_end": end, "collection_target": target,
                "collected_at": at, "sessions_returned": 3, "dag_run_id": "manual__1"}  # fmt: skip

    rows = [log(T0 - timedelta(days=30), T0, T0 + timedelta(hours=1)), log(T0, T0 + timedelta(days=1), T0, "other")]
    frame = payload.from_records(rows, COLLECTION_LOG_TABLE.kinds)
    counts = storage.write_run(
        conn, vbr_host=HOST, analysis_date=DAY, history=_history(3), scorecards=NO_CARDS, collection_log=frame
    )
    assert counts["collection_log_rows"] == 2
    assert collected_intervals(conn, "vbr01", T0 - timedelta(days=1), T0 + timedelta(days=1)) == (
        HOST,
        [Collected(T0 - timedelta(days=30), T0, T0 + timedelta(hours=1), sessions=3)],
    )
    assert collected_intervals(conn, "vbr01", T0, T0 + timedelta(days=1)) == (None, [])  # half-open: no overlap
    # a re-run logs the same intervals: one row each, the latest answer's time
    again = frame.assign(collected_at=pd.Timestamp(T0 + timedelta(hours=5)), dag_run_id="manual__2")
    storage.write_run(
        conn, vbr_host=HOST, analysis_date=DAY, history=_history(3), scorecards=NO_CARDS, collection_log=again
    )
    assert [row.collected_at for row in collected_intervals(conn, "vbr01", T0 - timedelta(days=1), T0)[1]] == [
        T0 + timedelta(hours=5)
    ]


def test_retention_drops_whole_months_and_the_collection_log_before_the_horizon(conn: psycopg.Connection[Any]) -> None:
    from veeam_efficiency.tables import COLLECTION_LOG_TABLE

    history = _history(90)
    history["creation_time"] = pd.to_datetime([T0 - timedelta(days=60 - i) for i in range(90)], utc=True)
    log = payload.from_records(
        [{"vbr_host": HOST, "interval_start": start, "interval_end": end, "collection_target": "vbr01",
          "collected_at": end, "sessions_returned": 1, "dag_run_id": None}
         for start, end in ((T0 - timedelta(days=60), T0 - timedelta(days=50)), (T0 - timedelta(days=50), T0))],
        COLLECTION_LOG_TABLE.kinds,
    )  # fmt: skip
    storage.write_run(conn, vbr_host=HOST, analysis_date=DAY, history=history, scorecards=NO_CARDS, collection_log=log)
    months = (
        "SELECT to_char(date_trunc('month', creation_time, 'UTC'), 'YYYY-MM'), count(*) FROM {} GROUP BY 1 ORDER BY 1"
    )
    assert conn.execute(months.format(f"{SCHEMA}.{HISTORY}")).fetchall() == [
        ("2026-09", 10), ("2026-10", 31), ("2026-11", 30), ("2026-12", 19),
    ]  # fmt: skip

    # 2026-10-31 ends October's last day but one: September goes, whole; October stays
    assert storage.drop_history_before(conn, datetime(2026, 10, 31, tzinfo=UTC)) == 1
    assert [month for month, _ in conn.execute(months.format(f"{SCHEMA}.{HISTORY}")).fetchall()] == [
        "2026-10", "2026-11", "2026-12",
    ]  # fmt: skip
    assert conn.execute("SELECT interval_end FROM feature3.collection_log").fetchall() == [(T0,)]
    assert storage.drop_history_before(conn, datetime(2026, 10, 31, tzinfo=UTC)) == 0  # idempotent
    assert storage.drop_history_before(conn, datetime(2026, 11, 1, tzinfo=UTC)) == 1  # October ended


def test_before_the_schema_exists_the_history_reads_as_empty(results_db: str) -> None:
    """A first run's collections start beside its schema step: they may look before the tables exist."""
    from veeam_efficiency.history_reads import collected_intervals, stored_sessions

    with psycopg.connect(results_db) as conn:
        assert collected_intervals(conn, "vbr01", T0, T0 + timedelta(days=1)) == (None, [])
        assert stored_sessions(conn, HOST, T0, T0 + timedelta(days=1)).empty
