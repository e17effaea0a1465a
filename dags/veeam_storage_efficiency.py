"""
### Veeam storage efficiency

Scores every Veeam Backup & Replication backup job on how well its storage is
reduced: deduplication, compression, trend, consistency and anomalies, weighted into
an overall 0-100 score, a grade A-F and the storage and money it wastes against a
good benchmark (2.5x dedup, 1.8x compression by default). Beside it, a grade in
context judges each job against what its backup kind, peers and settings make
possible, with recommendations priced in money and the date its efficiency dropped.

Each run covers the `lookback_days` ending at the end of its day (the data interval),
so a backfill of day D gives exactly the scorecard a scheduled run of day D gave.
Per VBR server: **collect** (PowerShell over SSH, local `pwsh`, or a replayed JSON
file; the `collector` Param defaults to env `VEEAM_COLLECTOR`, and a run with none chosen
fails at once) -> **validate** (the collector contract) -> **sufficient?** (jobs with
`min_sessions` scorable sessions) -> **analyze** -> **optimize** -> **load**
(PostgreSQL schema `feature3`, one transaction, upserts on natural keys).
One server failing does not stop the others (the run is marked failed).

Collections run in the Airflow pool `vbr_collectors` (env `VEEAM_COLLECTOR_POOL`), whose
slots cap how many VBR servers are collected from at once (whoever starts Airflow creates
it). A run without it fails saying how to create it: at once under `airflow dags test`;
under an executor the sensor **watch_collector_pool** fails when the collections wait in
'scheduled' with no collection let through for `VEEAM_POOL_GRACE_SECONDS` (600). At most one
collection per VBR server runs at a time, whatever the runs.

Alerts: a failed task e-mails (and calls the optional alert hook) naming the VBR host,
try and log; after loading, **alert_degraded_jobs** sends one summary of the jobs flagged
CRITICAL_ANOMALIES, DEGRADING_TREND, MISCONFIGURED or LEVEL_SHIFT, each with its top
recommendation; when `VEEAM_RUN_DEADLINE_MINUTES` is set, a run not
finished that long after it was queued raises a Deadline Alert. After the hosts,
**announce_loaded** emits one asset event per host loaded on the aliases
`veeam_feature3_scorecards` / `veeam_feature3_history` for downstream DAGs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task, task_group

from veeam_efficiency.airflow.assets import OUTLETS
from veeam_efficiency.airflow.errors import fail_or_retry
from veeam_efficiency.airflow.notifiers import TaskFailureAlert, run_deadline
from veeam_efficiency.airflow.pools import watch_sensor_args
from veeam_efficiency.collectors.errors import CollectorConfigError
from veeam_efficiency.settings import (
    AlertSettings,
    AnalysisSettings,
    CollectionSettings,
    collector_pool,
    no_collector_message,
    param_specs,
    pool_grace_seconds,
    retry_delay_seconds,
)

GROUP = "score_vbr_host"
log = logging.getLogger(__name__)
PARAMS = {**param_specs(CollectionSettings), **param_specs(AnalysisSettings), **param_specs(AlertSettings)}
# collect..optimize hand on what can be 100s of MB on a large server under XCom keys of their own
# and return a receipt (veeam_efficiency.airflow.handoff): one XCom, which the task log shows.
RECEIPT: dict[str, Any] = {"multiple_outputs": False}
COLLECTOR_POOL = collector_pool()
POOL_GRACE_S = pool_grace_seconds()  # how long collections may wait with no sign of the pool


def _settings(params: dict[str, Any] | None = None) -> tuple[CollectionSettings, AnalysisSettings]:
    """Params as validated settings; a bad combination or no collector raises (``fail_or_retry`` fails the run)."""
    AlertSettings.model_validate(dict(params or {}))  # a bad recipient fails the run before collecting
    collection = CollectionSettings.model_validate(dict(params or {}))
    analysis = AnalysisSettings.model_validate(dict(params or {}))
    if not collection.collector:  # never fall back to the bundled samples
        raise CollectorConfigError(no_collector_message())
    return collection, analysis


def _window(params: dict[str, Any] | None = None, data_interval_end: datetime | None = None) -> Any:
    from veeam_efficiency.window import analysis_window

    return analysis_window(data_interval_end, int(params["lookback_days"]))


@dag(
    dag_id="veeam_storage_efficiency",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    # No start_date: with catchup off the scheduler starts from today, and a backfill or
    # `airflow dags test` of any past day (VBR keeps about a year of sessions) runs every task.
    # A start_date would make runs before it "succeed" without running a single task.
    catchup=False,
    max_active_runs=4,
    tags=["veeam", "backup", "storage-efficiency", "feature3"],
    doc_md=__doc__,
    params={name: Param(**spec) for name, spec in PARAMS.items()},
    deadline=run_deadline({name: spec["default"] for name, spec in PARAMS.items()}),
    default_args={
        "owner": "backup-platform",
        "retries": 3,
        "retry_delay": timedelta(seconds=retry_delay_seconds()),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": TaskFailureAlert(),
    },
)
def veeam_storage_efficiency() -> None:
    @task
    def ensure_results_schema(params: dict[str, Any] | None = None, data_interval_end: datetime | None = None) -> None:
        """Check the collector pool exists, create the `feature3` schema and tables if missing (idempotent),
        and drop the history's months older than `history_retention_days`."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from veeam_efficiency.airflow.pools import require_pool
        from veeam_efficiency.storage import drop_history_before, ensure_schema

        require_pool(COLLECTOR_POOL)  # else every collect would stay 'scheduled' forever
        with fail_or_retry():
            collection, _ = _settings(params)
            horizon = _window(params, data_interval_end).end - timedelta(days=collection.history_retention_days)
            with PostgresHook(postgres_conn_id=collection.postgres_conn_id).get_conn() as conn:
                ensure_schema(conn)
                if dropped := drop_history_before(conn, horizon):
                    log.info("dropped %d month(s) of session history that ended by %s", dropped, horizon)

    @task.sensor(**watch_sensor_args(POOL_GRACE_S))
    def watch_collector_pool(run_id: str | None = None) -> Any:
        """Fail loudly when the collector pool is missing (Airflow would leave every collect 'scheduled' forever)."""
        from veeam_efficiency.airflow.pools import watch

        return watch(COLLECTOR_POOL, str(run_id), POOL_GRACE_S)

    @task
    def list_vbr_hosts(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """The VBR servers (or replay files, one per server) this run collects from."""
        from veeam_efficiency.airflow.collect import collection_targets

        with fail_or_retry():
            collection, _ = _settings(params)
            return collection_targets(collection)

    @task(map_index_template="{{ vbr_host }}", pool=COLLECTOR_POOL, **RECEIPT)
    def collect(
        target: dict[str, str], params: dict[str, Any] | None = None, data_interval_end: datetime | None = None
    ) -> dict[str, Any]:
        """Ask one VBR server for what the history lacks of the run's window (`collection_mode`), one collection per server at a time."""
        from veeam_efficiency import pipeline
        from veeam_efficiency.airflow.collect import collect_window, one_collection_at_a_time
        from veeam_efficiency.airflow.handoff import PAYLOAD, hand_on

        get_current_context()["vbr_host"] = target["vbr_host"] or "connection host"  # type: ignore[typeddict-unknown-key]
        with fail_or_retry():
            collection, _ = _settings(params)
            with one_collection_at_a_time(target, collection) as conn:
                collected = collect_window(target, collection, _window(params, data_interval_end), conn)
        return hand_on({PAYLOAD: collected}, **pipeline.summary(collected))

    @task(**RECEIPT)
    def validate(
        collected: dict[str, Any], params: dict[str, Any] | None = None, data_interval_end: datetime | None = None
    ) -> dict[str, Any]:
        """Check the collector contract and keep the window's sessions (the stored rest read from the history),
        each with why it can't be scored."""
        from veeam_efficiency import pipeline
        from veeam_efficiency.airflow.handoff import PAYLOAD, hand_on, taken
        from veeam_efficiency.airflow.history import stored_history

        with fail_or_retry():  # a broken document fails at once; the history's read is retried
            collection, settings = _settings(params)
            with stored_history(collection.postgres_conn_id) as history:
                window = _window(params, data_interval_end)
                validated = pipeline.validate(
                    taken(collected), window, settings, history.read, tally_stored=history.tally
                )
        sufficiency = pipeline.part(validated, pipeline.SUFFICIENCY)
        return hand_on({PAYLOAD: validated, "sufficiency": sufficiency}, **pipeline.summary(validated))

    @task(retries=0)
    def sufficient(validated: dict[str, Any]) -> None:
        """Skipped when no job has `min_sessions` scorable sessions: analyze and optimize skip with it, load still runs."""
        from airflow.sdk.exceptions import AirflowSkipException

        from veeam_efficiency.airflow.handoff import taken
        from veeam_efficiency.pipeline import has_qualifying_jobs

        if not has_qualifying_jobs(taken(validated, "sufficiency")):  # the job counts, not the window
            raise AirflowSkipException("no job has enough scorable sessions in the window")

    @task(**RECEIPT)
    def analyze(validated: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Score each qualifying job: the five component scores, overall, grade, trend, anomalies
        (the scorecards under the XCom key `scorecards`, each session's anomaly verdict under `payload`)."""
        from veeam_efficiency import pipeline
        from veeam_efficiency.airflow.handoff import PAYLOAD, hand_on, taken
        from veeam_efficiency.airflow.history import stored_history

        with fail_or_retry():
            collection, settings = _settings(params)
            with stored_history(collection.postgres_conn_id) as history:
                analysis = pipeline.analyze(taken(validated), settings, history.read)
        return hand_on(
            {
                PAYLOAD: pipeline.part(analysis, pipeline.VERDICTS),
                "scorecards": pipeline.part(analysis, pipeline.SCORECARDS),
            },
            **pipeline.summary(analysis),
        )

    @task(retries=0, **RECEIPT)
    def optimize(analysis: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Add the storage and money each job wastes against the target dedup and compression."""
        from veeam_efficiency import pipeline
        from veeam_efficiency.airflow.handoff import PAYLOAD, hand_on, taken

        with fail_or_retry():
            optimized = pipeline.optimize(taken(analysis, "scorecards"), _settings(params)[1])
        return hand_on({PAYLOAD: optimized}, **pipeline.summary(optimized))

    @task(trigger_rule="none_failed", multiple_outputs=False)
    def load(
        validated: dict[str, Any],
        analysis: dict[str, Any] | None,
        optimized: dict[str, Any] | None,
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Write the session history and the scorecards (each with this run's id) in one transaction (upserts: re-runs are safe)."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from veeam_efficiency import pipeline
        from veeam_efficiency.airflow.handoff import taken

        with fail_or_retry():
            collection, settings = _settings(params)
            with PostgresHook(postgres_conn_id=collection.postgres_conn_id).get_conn() as conn:
                scored = pipeline.scored(taken(analysis), taken(optimized))
                return pipeline.load(conn, taken(validated), scored, dag_run_id=run_id, settings=settings)

    @task(outlets=OUTLETS, multiple_outputs=False)
    def announce_loaded(loaded: Any, params: dict[str, Any] | None = None, outlet_events: Any = None) -> list[str]:
        """One asset event per host loaded, for downstream DAGs (one task: see veeam_efficiency.airflow.assets)."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from veeam_efficiency.airflow.assets import announce_all, loaded_runs

        with fail_or_retry():
            if not loaded_runs(loaded):
                return []
            conn_id = CollectionSettings.model_validate(dict(params or {})).postgres_conn_id
            return announce_all(outlet_events, PostgresHook.get_connection(conn_id), loaded)

    @task(trigger_rule="all_done", multiple_outputs=False)
    def alert_degraded_jobs(loaded: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One summary of the jobs this run flagged (hosts that failed have their own failure alert)."""
        from veeam_efficiency.airflow.notifiers import send_degradation_summary

        with fail_or_retry():  # bad Params fail at once, not after three retries
            return send_degradation_summary(loaded, params, get_current_context())

    @task_group(group_id=GROUP)
    def score_vbr_host(target: dict[str, str]) -> Any:
        # "Enough sessions?" is one skip: `sufficient` skips itself, Airflow's trigger rules skip
        # analyze and optimize after it, and load (none_failed) stores the history either way.
        # Not @task.branch: on Airflow 3.3.2 a branch inside a mapped task group does not skip its
        # mapped siblings (apache/airflow#67265; docs/branch-in-mapped-task-group.md).
        # Each step hands the next a receipt and pulls the payload it names (handoff).
        validated = validate(collect(target))
        analysis = analyze(validated)
        sufficient(validated) >> analysis
        return load(validated, analysis, optimize(analysis))

    hosts = list_vbr_hosts()
    scored = score_vbr_host.expand(target=hosts)
    schema = ensure_results_schema()
    schema >> scored
    [schema, hosts] >> watch_collector_pool()  # beside the collections, once they may be scheduled
    # teardowns: they run whatever happened (all done), but the run's state is the hosts' (a
    # run whose hosts failed, or that never chose a collector, is failed, not green)
    announce_loaded(scored).as_teardown()
    alert_degraded_jobs(scored).as_teardown()


veeam_storage_efficiency()
