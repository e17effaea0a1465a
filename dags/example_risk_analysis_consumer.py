"""
### Example consumer: risk analysis on fresh storage-efficiency scorecards

Runs whenever `veeam_storage_efficiency` has loaded a VBR host's day: it is scheduled
on the asset alias `veeam_feature3_scorecards`, which the producer's `announce_loaded` resolves to
`postgres://<host>:<port>/<db>/feature3/metrics_storage_efficiency`. Each triggering
event's extra names the host and day (`vbr_host`, `analysis_date`) and the row counts,
so the consumer reads exactly those scorecards and their `quality_flags`: the seed's
CRITICAL_ANOMALIES, DEGRADING_TREND and HIGH_VARIANCE, and MISCONFIGURED (a critical
recommendation) and LEVEL_SHIFT (efficiency dropped to a new level), always present
as booleans. Copy it as the starting point of the real risk-analysis DAG.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from veeam_efficiency.airflow.assets import SCORECARDS, SCORECARDS_ALIAS

log = logging.getLogger(__name__)


@dag(
    dag_id="example_risk_analysis_consumer",
    schedule=SCORECARDS_ALIAS,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["veeam", "feature3", "example"],
    doc_md=__doc__,
    params={"postgres_conn_id": Param("postgres_default", type="string", minLength=1, maxLength=250)},
)
def example_risk_analysis_consumer() -> None:
    @task
    def read_quality_flags(
        params: dict[str, Any] | None = None, triggering_asset_events: Any = None
    ) -> list[dict[str, Any]]:
        """The quality flags of every job scorecard the triggering events announced."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from veeam_efficiency.flagged_jobs import job_scorecards

        loaded = {
            (event.extra["vbr_host"], event.extra["analysis_date"])
            for asset, events in (triggering_asset_events or {}).items()
            if str(getattr(asset, "uri", "")).endswith(f"/{SCORECARDS}")
            for event in events
        }
        with PostgresHook(postgres_conn_id=(params or {})["postgres_conn_id"]).get_conn() as conn:
            cards = job_scorecards(conn, loaded)
        keys = ("vbr_host", "analysis_date", "job_id", "job_name", "grade", "context_grade", "quality_flags")
        flags = [{key: card[key] for key in keys} for card in cards]
        at_risk = [card for card in flags if any(card["quality_flags"].values())]
        misconfigured = [card["job_name"] for card in flags if card["quality_flags"].get("MISCONFIGURED")]
        shifted = [card["job_name"] for card in flags if card["quality_flags"].get("LEVEL_SHIFT")]
        log.info(
            "%d scorecards of %s; %d with a quality flag; misconfigured: %s; level shift: %s",
            len(flags), sorted(loaded), len(at_risk), misconfigured or "none", shifted or "none",
        )  # fmt: skip
        return flags

    read_quality_flags()


example_risk_analysis_consumer()
