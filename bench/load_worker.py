"""One load measurement in a fresh interpreter: ``python -m bench.load_worker DOC [--insert-rows-limit N]``.

Builds the DAG's history rows (pipeline.validate -> analyze -> optimize -> history_table,
untimed), then writes them four ways, each into its own fresh database: the project's
``storage.write_run`` (and a second time, onto the full table), ``write_run`` with its
savepoint key probe switched off (every row through the temp table and ``INSERT ... ON
CONFLICT``, what the probe saves a new day), Airflow's ``PostgresHook.insert_rows`` upsert,
and a raw binary ``COPY`` of exactly the bytes write_run sends. Set AIRFLOW_HOME before
running (bench.__main__ does).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.common import LOOKBACK_DAYS, WINDOW_END, WINDOW_START, drop_database, emit, new_database

TABLE = "feature3.storage_efficiency_history"


def history_rows(doc: Path) -> tuple[Any, str, date]:
    """The history frame the DAG's load task writes for this document, plus host and day."""
    from veeam_efficiency import pipeline
    from veeam_efficiency.settings import AnalysisSettings
    from veeam_efficiency.window import AnalysisWindow

    settings = AnalysisSettings(lookback_days=LOOKBACK_DAYS)
    validated = pipeline.validate(
        doc.read_text(encoding="utf-8-sig"), AnalysisWindow(WINDOW_START, WINDOW_END), settings
    )
    history = pipeline.history_table(validated, pipeline.analyze(validated, settings))
    return history, validated["vbr_host"], date.fromisoformat(validated["analysis_date"])


def fresh_schema() -> tuple[str, str]:
    """A new database with the project's schema and the history's partitions of the bench window; (name, DSN).

    Every method then writes into the same monthly partitions (write_run would make them itself;
    a raw COPY or insert_rows could not).
    """
    import psycopg

    from veeam_efficiency.storage import ensure_schema

    name, dsn = new_database()
    with psycopg.connect(dsn) as conn:
        ensure_schema(conn)
        conn.execute("SELECT feature3.ensure_history_partitions(%s, %s)", (WINDOW_START, WINDOW_END))
        conn.commit()
    return name, dsn


def count(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])


def python_rows(history: Any, columns: list[str]) -> list[tuple[Any, ...]]:
    """Plain Python tuples (datetime, date, int, float, None for missing), as a DbApiHook caller passes them."""
    import pandas as pd

    out = []
    for name in columns:
        series = history[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            values = [None if pd.isna(v) else v.to_pydatetime() for v in series]
        else:
            values = series.astype(object).where(series.notna(), None).tolist()
        out.append(values)
    return list(zip(*out, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("doc", type=Path)
    parser.add_argument(
        "--insert-rows-budget", type=float, default=300.0,
        help="seconds insert_rows may take for all rows; beyond, it is measured on --insert-rows-sample rows",
    )  # fmt: skip
    parser.add_argument("--insert-rows-sample", type=int, default=100_000)
    parser.add_argument(
        "--repeat", type=int, default=0,
        help="after the first pass, this many more rounds of write_run, raw binary COPY and insert_rows, interleaved",
    )  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="also profile one more write_run into a fresh database")
    args = parser.parse_args()

    import psycopg
    from psycopg import sql

    from veeam_efficiency import payload, storage
    from veeam_efficiency.copy_binary import binary_copy
    from veeam_efficiency.storage import in_key_order, write_run
    from veeam_efficiency.tables import HISTORY_TABLE, SCORECARD_TABLE

    history, host, day = history_rows(args.doc)
    rows = len(history)
    no_scorecards = payload.from_records(
        [], SCORECARD_TABLE.kinds
    )  # history only: the three methods write the same rows
    result: dict[str, Any] = {"rows": rows}
    made: list[str] = []

    def fresh() -> str:
        name, dsn = fresh_schema()
        made.append(name)
        return dsn

    def done(dsn: str) -> int:
        rows_in_table = count(dsn)
        drop_database(made.pop())
        return rows_in_table

    def time_write_run(again: bool = False) -> tuple[float, float | None, int]:
        """The project's path into a fresh database; optionally a second write of the same rows (all conflict)."""
        dsn = fresh()
        with psycopg.connect(dsn) as conn:
            start = time.perf_counter()
            write_run(conn, vbr_host=host, analysis_date=day, history=history, scorecards=no_scorecards)
            first = time.perf_counter() - start
            second = None
            if again:
                start = time.perf_counter()
                write_run(conn, vbr_host=host, analysis_date=day, history=history, scorecards=no_scorecards)
                second = time.perf_counter() - start
        return first, second, done(dsn)

    def time_write_run_without_probe() -> tuple[float, int]:
        """write_run into a fresh database with the key probe answering "a key exists": the staged path."""
        dsn = fresh()
        probe = storage._any_key_exists
        storage._any_key_exists = lambda *args, **kwargs: True  # type: ignore[assignment]
        try:
            with psycopg.connect(dsn) as conn:
                start = time.perf_counter()
                write_run(conn, vbr_host=host, analysis_date=day, history=history, scorecards=no_scorecards)
                staged = time.perf_counter() - start
        finally:
            storage._any_key_exists = probe  # type: ignore[assignment]
        return staged, done(dsn)

    def time_probe_on_full_table() -> float:
        """The probe's own cost when every key is there (a re-run): one indexed look-up of up to 1000 keys."""
        dsn = fresh()
        with psycopg.connect(dsn) as conn:
            write_run(conn, vbr_host=host, analysis_date=day, history=history, scorecards=no_scorecards)
            target = sql.Identifier(*TABLE.split("."))
            with conn.cursor() as cur:
                start = time.perf_counter()
                assert storage._any_key_exists(cur, target, HISTORY_TABLE.key, in_key_order(history))
                probe_s = time.perf_counter() - start
        done(dsn)
        return probe_s

    def time_raw_binary_copy() -> tuple[float, float, float, int]:
        """Exactly the bytes write_run streams (rows in primary-key order) straight into the empty table.

        Returns (serialise s, COPY s, MB, rows): the sort and encoding are timed apart.
        """
        dsn = fresh()
        with psycopg.connect(dsn) as conn:
            pg_types = HISTORY_TABLE.pg_types
            start = time.perf_counter()
            order, chunks_iter = binary_copy(in_key_order(history), pg_types)
            chunks = list(chunks_iter)
            serialise = time.perf_counter() - start
            start = time.perf_counter()
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY {TABLE} ({', '.join(order)}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                for chunk in chunks:
                    copy.write(chunk)
            conn.commit()
            copy_s = time.perf_counter() - start
        return serialise, copy_s, sum(map(len, chunks)) / 1e6, done(dsn)

    def time_insert_rows() -> dict[str, Any]:
        """Airflow's PostgresHook.insert_rows upsert (commit_every=1000, its default) into a fresh database."""
        dsn = fresh()
        os.environ["AIRFLOW_CONN_BENCH_PG"] = dsn
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id="bench_pg")
        target = list(HISTORY_TABLE.names)
        sample = min(rows, args.insert_rows_sample)
        start = time.perf_counter()
        tuples = python_rows(history.iloc[:sample], target)
        prep_s = time.perf_counter() - start
        start = time.perf_counter()
        hook.insert_rows(TABLE, tuples, target_fields=target, replace=True, replace_index=list(HISTORY_TABLE.key))
        sample_s = time.perf_counter() - start
        estimate = sample_s * rows / sample
        if sample < rows and estimate <= args.insert_rows_budget:
            start = time.perf_counter()
            tuples = python_rows(history.iloc[sample:], target)
            prep_s += time.perf_counter() - start
            start = time.perf_counter()
            hook.insert_rows(TABLE, tuples, target_fields=target, replace=True, replace_index=list(HISTORY_TABLE.key))
            sample_s += time.perf_counter() - start
            sample = rows
        del tuples
        return {
            "measured_rows": sample,
            "prep_s": prep_s * rows / sample,
            "s": sample_s * rows / sample,
            "extrapolated": sample < rows,
            "rows_in_table": done(dsn),
        }

    try:
        # (1) the project's path, then a second write of the same rows (every row conflicts)
        result["write_run_s"], result["write_run_again_s"], result["write_run_rows"] = time_write_run(again=True)
        if args.profile:
            import cProfile

            from bench.common import top_functions

            dsn = fresh()
            profile = cProfile.Profile()
            with psycopg.connect(dsn) as conn:
                profile.enable()
                write_run(conn, vbr_host=host, analysis_date=day, history=history, scorecards=no_scorecards)
                profile.disable()
            result["write_run_profile"] = top_functions(profile)
            done(dsn)

        # (3b) raw binary COPY of exactly the bytes write_run streams
        (
            result["serialise_binary_s"], result["raw_binary_copy_s"], result["copy_binary_mb"],
            result["raw_binary_copy_rows"],
        ) = time_raw_binary_copy()  # fmt: skip

        # (1b) the savepoint key probe: what it saves on a new day, and what it costs on a re-run
        result["write_run_no_probe_s"], result["write_run_no_probe_rows"] = time_write_run_without_probe()
        result["probe_full_table_s"] = time_probe_on_full_table()

        # (2) Airflow's PostgresHook.insert_rows upsert
        inserted = time_insert_rows()
        result["insert_rows_measured_rows"] = inserted["measured_rows"]
        result["insert_rows_prep_s"] = inserted["prep_s"]
        result["insert_rows_s"] = inserted["s"]
        result["insert_rows_extrapolated"] = inserted["extrapolated"]
        result["insert_rows_rows_in_table"] = inserted["rows_in_table"]

        # more rounds of the three compared methods, interleaved, for medians
        rounds = {"write_run_s": [result["write_run_s"]], "raw_binary_copy_s": [result["raw_binary_copy_s"]],
                  "insert_rows_s": [result["insert_rows_s"]],
                  "write_run_no_probe_s": [result["write_run_no_probe_s"]]}  # fmt: skip
        for _ in range(args.repeat):
            rounds["write_run_s"].append(time_write_run()[0])
            rounds["write_run_no_probe_s"].append(time_write_run_without_probe()[0])
            rounds["raw_binary_copy_s"].append(time_raw_binary_copy()[1])
            rounds["insert_rows_s"].append(time_insert_rows()["s"])
        result["rounds"] = rounds
    finally:
        for name in made:
            drop_database(name)
    assert result["write_run_rows"] == result["write_run_no_probe_rows"] == result["raw_binary_copy_rows"] == rows, (
        result
    )
    assert not math.isnan(result["insert_rows_s"])
    emit(result)


if __name__ == "__main__":
    main()
