"""
### VBR first contact check

Trigger this by hand after pointing the package at a VBR server (README, "Point it at your
VBR server"). For each configured VBR host it runs the collector script in its diagnose
mode over the last `check_days` and logs a report a backup admin can read: VBR and
PowerShell versions, which session path ran and why, sessions per job type, the storage
settings found per job, timings, and what is missing (rights, module, indexed calls).
It writes nothing to the results database. A host fails when scheduled runs could not
collect from it, and its log says why.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from veeam_efficiency.airflow.errors import fail_or_retry
from veeam_efficiency.airflow.pools import watch_sensor_args
from veeam_efficiency.settings import CollectionSettings, collector_pool, param_specs, pool_grace_seconds

# a check asks for its days whatever was collected, and writes nothing
NOT_FOR_A_CHECK = ("collection_mode", "recheck_days", "history_retention_days")
PARAMS = {
    **{name: spec for name, spec in param_specs(CollectionSettings).items() if name not in NOT_FOR_A_CHECK},
    "check_days": {"type": "integer", "minimum": 1, "maximum": 30, "default": 1,
                   "description": "Days of sessions, ending now, the check collects."},
}  # fmt: skip
COLLECTOR_POOL = collector_pool()
POOL_GRACE_S = pool_grace_seconds()  # how long collections may wait with no sign of the pool


def _collection(params: dict[str, Any] | None) -> CollectionSettings:
    return CollectionSettings.model_validate(dict(params or {}))  # fail_or_retry: invalid Params fail


@dag(
    dag_id="veeam_vbr_check",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["veeam", "backup", "storage-efficiency", "diagnostics"],
    doc_md=__doc__,
    params={name: Param(**spec) for name, spec in PARAMS.items()},
    default_args={"owner": "backup-platform", "retries": 0},
)
def veeam_vbr_check() -> None:
    @task
    def list_vbr_hosts(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """The VBR servers (or replay files) the check runs against (after checking the collector pool exists)."""
        from veeam_efficiency.airflow.collect import collection_targets
        from veeam_efficiency.airflow.pools import require_pool

        require_pool(COLLECTOR_POOL)  # else every diagnose would stay 'scheduled' forever
        with fail_or_retry():
            return collection_targets(_collection(params))

    @task(map_index_template="{{ vbr_host }}", pool=COLLECTOR_POOL)
    def diagnose(target: dict[str, str], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the collector in diagnose mode on one VBR server and log what it found."""
        import logging
        from datetime import UTC, datetime

        from veeam_efficiency.airflow.collect import collect_document
        from veeam_efficiency.airflow.errors import PERMANENT
        from veeam_efficiency.collectors.errors import CollectorError
        from veeam_efficiency.diagnosis import diagnosis_report
        from veeam_efficiency.window import AnalysisWindow

        log = logging.getLogger("veeam_efficiency.vbr_check")
        name = target["vbr_host"] or "connection host"
        get_current_context()["vbr_host"] = name  # type: ignore[typeddict-unknown-key]
        end = datetime.now(UTC).replace(microsecond=0)  # a check looks at now, not at a data interval
        window = AnalysisWindow(start=end - timedelta(days=int((params or {})["check_days"])), end=end)
        with fail_or_retry():  # the DAG has no retries: a collector error fails the host
            collection = _collection(params)
            try:
                raw = collect_document(target, collection, window, diagnose=True)
            except (CollectorError, *PERMANENT) as exc:
                log.error("VBR server %s: the collector did not run to the end:\n%s", name, exc)
                raise
        report = diagnosis_report(raw, name)
        log.info("VBR check report for %s\n%s", name, report.text)
        if report.problems:
            raise AirflowFailException(f"{name}: {len(report.problems)} problem(s): " + "; ".join(report.problems))
        return {"vbr_host": name, "gaps": report.gaps}

    @task.sensor(**watch_sensor_args(POOL_GRACE_S))
    def watch_collector_pool(run_id: str | None = None) -> Any:
        """Fail loudly when the collector pool is missing (Airflow would leave every diagnose 'scheduled' forever)."""
        from veeam_efficiency.airflow.pools import watch

        return watch(COLLECTOR_POOL, str(run_id), POOL_GRACE_S)

    hosts = list_vbr_hosts()
    diagnose.expand(target=hosts)
    hosts >> watch_collector_pool()


veeam_vbr_check()
