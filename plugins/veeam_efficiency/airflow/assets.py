"""The results tables as Airflow Assets, so downstream DAGs (risk analysis) run when a host's day is loaded.

An asset's URI names the database the rows went to (``postgres://host:port/db/feature3/table``),
which is only known from the results connection, and connections are not read at parse
time. So the DAG declares stable :class:`AssetAlias` outlets and attaches the concrete
``Asset`` at run time; consumers schedule on the alias (Airflow resolves it to the
concrete assets). Each event's extra says which host and day were loaded, and how many rows.

One task, ``announce_loaded``, after every host's ``load``, adds the events of them all. Not
each ``load``: on Airflow 3.3 two tasks that attach the same concrete asset for the first
time at the same moment race in the API server (unique violation on the asset's name and
URI), and one of them is marked failed although its rows are committed.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetAlias

from veeam_efficiency.tables import HISTORY, SCHEMA, SCORECARDS

__all__ = [
    "HISTORY", "HISTORY_ALIAS", "OUTLETS", "SCORECARDS", "SCORECARDS_ALIAS", "announce", "announce_all", "loaded_runs",
    "table_uri",
]  # fmt: skip

SCORECARDS_ALIAS = AssetAlias("veeam_feature3_scorecards")
HISTORY_ALIAS = AssetAlias("veeam_feature3_history")
OUTLETS = [SCORECARDS_ALIAS, HISTORY_ALIAS]


def table_uri(*, host: str | None, port: int | None, database: str | None, table: str) -> str:
    """The postgres provider's canonical URI of a ``feature3`` table.

    What the connection leaves out is named ``localhost``, 5432 and ``postgres``: naming
    the asset must never fail a load that has already committed.
    """
    return f"postgres://{host or 'localhost'}:{port or 5432}/{database or 'postgres'}/{SCHEMA}/{table}"


def announce(outlet_events: Any, connection: Any, written: dict[str, Any]) -> None:
    """Record one asset event per results table for the host and day ``load`` just wrote."""
    extra = {
        key: written[key]
        for key in ("vbr_host", "analysis_date", "history_rows", "scorecard_rows", "stale_scorecards_deleted")
    }
    for alias, table in ((SCORECARDS_ALIAS, SCORECARDS), (HISTORY_ALIAS, HISTORY)):
        uri = table_uri(host=connection.host, port=connection.port, database=connection.schema, table=table)
        outlet_events[alias].add(Asset(uri), extra=extra)


def loaded_runs(loaded: Any) -> list[dict[str, Any]]:
    """What the mapped ``load`` returned, as a list: Airflow hands over a sequence, a dict or None."""
    runs = [loaded] if isinstance(loaded, dict) else list(loaded or [])
    return [run for run in runs if run]


def announce_all(outlet_events: Any, connection: Any, loaded: Any) -> list[str]:
    """One asset event per results table for every host and day loaded; the hosts announced."""
    runs = loaded_runs(loaded)
    for written in runs:
        announce(outlet_events, connection, written)
    return [str(run["vbr_host"]) for run in runs]
