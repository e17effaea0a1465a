"""The column registry (veeam_efficiency.tables) against the tables include/sql/schema.sql makes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from veeam_efficiency import storage
from veeam_efficiency.tables import SCHEMA, WRITTEN

pytestmark = pytest.mark.postgres


def _columns(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str, bool, bool]]:
    """(name, type, nullable, byte-ordered) of each column, in table order."""
    return conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, "
        "coalesce(coll.collname = 'C', false) FROM pg_attribute AS a "
        "LEFT JOIN pg_collation AS coll ON coll.oid = a.attcollation "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (f"{SCHEMA}.{table}",),
    ).fetchall()


def _primary_key(conn: psycopg.Connection[Any], table: str) -> tuple[str, ...]:
    row = conn.execute(
        "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index AS i "
        "CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary",
        (f"{SCHEMA}.{table}",),
    ).fetchone()
    return tuple(row[0])


@pytest.mark.parametrize("table", WRITTEN, ids=lambda table: table.name)
def test_schema_sql_makes_exactly_the_registry_table(results_db: str, table: Any) -> None:
    with psycopg.connect(results_db) as conn:
        storage.ensure_schema(conn)
        declared = [(column.name, column.pg_type, column.nullable, column.identifier) for column in table.columns]
        assert _columns(conn, table.name) == declared
        assert _primary_key(conn, table.name) == table.key
