"""The column registry is self-consistent, and what derives from it agrees (no database here:
tests/storage/test_registry.py holds the tables against schema.sql)."""

from __future__ import annotations

from typing import get_type_hints

import pytest

from veeam_efficiency import columnar, contract, payload, pipeline, storage, tables
from veeam_efficiency.copy_binary import supported

KINDS = {"text", "int", "float", "bool", "time", "date", "json"}
ALL_TABLES = [
    tables.SESSION_RECORD, tables.JOB_RECORD, tables.WINDOW_SESSIONS, tables.SESSION_ANOMALIES, *tables.WRITTEN
]  # fmt: skip


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda table: table.name or table.names[0] + "...")
def test_every_table_is_well_formed(table: tables.Table) -> None:
    assert len(set(table.names)) == len(table.names)
    assert set(table.key) <= set(table.names)
    for column in table.columns:
        assert column.kind in KINDS, column
        assert supported(column.pg_type), column  # the binary COPY encodes every registry type
        assert not (column.identifier and column.nullable), column
        assert column.name not in table.key or not column.nullable, column


def test_a_name_has_one_type_in_every_table() -> None:
    """Nullability may differ (a scorecard's anomaly_score is the component score, always set; a
    session's is its z-score, missing when not assessed), the type never does."""
    seen: dict[str, tuple[str, str, bool]] = {}
    for table in ALL_TABLES:
        for column in table.columns:
            shape = (column.kind, column.pg_type, column.identifier)
            assert seen.setdefault(column.name, shape) == shape, (table.name, column)


def test_the_contract_session_is_built_from_the_registry() -> None:
    assert tables.SESSION_RECORD.names == contract.SESSION_FIELDS
    assert tuple(get_type_hints(contract.Session, include_extras=True)) == tables.SESSION_RECORD.names
    assert set(tables.SESSION_RECORD.names) <= set(tables.HISTORY_TABLE.names)


def test_the_contract_v2_job_settings_are_built_from_the_registry() -> None:
    from veeam_efficiency.job_settings import job_settings_records

    hints = get_type_hints(contract.JobSettings, include_extras=True)
    assert tuple(hints) == (*tables.JOB_RECORD.names, "repository")
    repository = next(arg for arg in hints["repository"].__args__ if arg is not type(None))
    assert tuple(get_type_hints(repository)) == tables.REPOSITORY_RECORD.names
    assert contract.OPTIONAL_SESSION_FIELDS == ("object_name",)
    # a flattened job is the job_settings table but its host and day, in table order
    job = dict.fromkeys(tables.JOB_RECORD.names) | {"repository": dict.fromkeys(tables.REPOSITORY_RECORD.names)}
    (record,) = job_settings_records({"jobs": [job]}) or [None]
    assert tuple(record) == tuple(pipeline.JOB_SETTINGS_KINDS)
    assert {
        name: kind
        for name, kind in tables.JOB_SETTINGS_TABLE.kinds.items()
        if name not in ("vbr_host", "analysis_date")
    } == pipeline.JOB_SETTINGS_KINDS


def test_xcom_kinds_and_writer_columns_come_from_the_registry() -> None:
    assert tables.WINDOW_SESSIONS.kinds == pipeline.SESSION_KINDS
    assert tables.SCORECARD_TABLE.kinds == pipeline.SCORECARD_KINDS
    assert tables.SESSION_ANOMALIES.kinds == pipeline.ANOMALY_KINDS
    assert tables.HISTORY_TABLE.kinds == storage.HISTORY_COLUMNS
    assert tables.SESSION_RECORD.kinds == columnar.KINDS
    empty = payload.from_records([], tables.SCORECARD_TABLE.kinds)
    assert list(empty.columns) == list(tables.SCORECARD_TABLE.names)


def test_flags_are_declared_once() -> None:
    from veeam_efficiency import alerts, scorecards

    assert set(tables.FLAGS_ALERTED) <= set(tables.QUALITY_FLAGS)
    assert (*tables.SCORE_FLAGS, *tables.CONTEXT_FLAGS) == tables.QUALITY_FLAGS
    assert len(set(tables.QUALITY_FLAGS)) == len(tables.QUALITY_FLAGS)
    assert alerts.FLAGS_ALERTED is tables.FLAGS_ALERTED
    assert scorecards.SCORE_FLAGS is tables.SCORE_FLAGS


def test_the_context_columns_are_declared_once() -> None:
    """context_scores adds exactly the registry's context columns, at the end of the scorecard (before
    ``dag_run_id``, which the load task adds: schema.sql's migrations add them in that order)."""
    from veeam_efficiency import context_scores

    names = tuple(column.name for column in tables.CONTEXT_COLUMNS)
    assert tables.SCORECARD_TABLE.names[-len(names) - 1 :] == (*names, "dag_run_id")
    assert {name: tables.SCORECARD_TABLE.kinds[name] for name in names} == context_scores.CONTEXT_COLUMNS
