"""The PostgreSQL advisory locks that keep runs of the same VBR host from overlapping.

One key family, all under ``feature3:``: ``load`` takes the host's write lock for its
transaction, ``collect`` the host's collection lock for the whole collection (session
level: it must outlive any transaction, and a collector may run for many minutes), and
schema set-up one lock of its own; ``feature3:partitions`` is taken inside the schema's
partition functions (``include/sql/schema.sql``), so two loads never create one month twice. Keys are hashed with ``hashtextextended`` in SQL, so
every process, whatever its language, derives the same 64-bit lock id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from veeam_efficiency.tables import SCHEMA

SCHEMA_LOCK_KEY = f"{SCHEMA}:schema"


def load_lock_key(vbr_host: str) -> str:
    """The lock a host's ``load`` transaction holds: two loads of one host never interleave."""
    return f"{SCHEMA}:{vbr_host}"


def collect_lock_key(vbr_host: str) -> str:
    """The lock a host's ``collect`` holds: at most one collection per VBR server at a time."""
    return f"{SCHEMA}:collect:{vbr_host}"


@contextmanager
def held(conn: Any, key: str) -> Iterator[None]:
    """Hold session-level advisory lock ``key`` on ``conn`` (waiting for it) until the block ends.

    Each statement is committed at once, so no transaction stays open while the lock is held;
    if the process dies, PostgreSQL releases the lock with its connection.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
    conn.commit()
    try:
        yield
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
        conn.commit()
