"""DAG integrity: it imports cleanly, the way the stock Airflow CLI and the dag-processor load it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "veeam_storage_efficiency"
CONSUMER_ID = "example_risk_analysis_consumer"
CHECK_ID = "veeam_vbr_check"


@pytest.fixture(scope="module")
def dag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_dag_shape(dag):
    assert dag.tags and "veeam" in dag.tags
    assert dag.doc_md and "Veeam storage efficiency" in dag.doc_md
    assert dag.catchup is False
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    expected = {
        "ensure_results_schema", "list_vbr_hosts", "watch_collector_pool", "alert_degraded_jobs", "announce_loaded",
        *(f"score_vbr_host.{name}" for name in ("collect", "validate", "sufficient", "analyze", "optimize", "load")),
    }  # fmt: skip
    assert set(dag.task_dict) == expected
    assert dag.task_dict["score_vbr_host.collect"].downstream_task_ids == {"score_vbr_host.validate"}
    # one mechanism for "enough sessions?": sufficient skips itself, the trigger rules carry it to
    # analyze and optimize, load runs on none_failed (no @task.branch: apache/airflow#67265)
    assert dag.task_dict["score_vbr_host.sufficient"].downstream_task_ids == {"score_vbr_host.analyze"}
    assert not any(type(task).__name__.startswith("_Branch") for task in dag.tasks)
    assert dag.task_dict["score_vbr_host.load"].trigger_rule == "none_failed"
    # the anomaly verdicts go from analyze to load; optimize hands on the costed scorecards only
    assert dag.task_dict["score_vbr_host.analyze"].downstream_task_ids == {
        "score_vbr_host.optimize",
        "score_vbr_host.load",
    }
    assert dag.task_dict["score_vbr_host.optimize"].downstream_task_ids == {"score_vbr_host.load"}
    assert dag.task_dict["score_vbr_host.load"].downstream_task_ids == {"alert_degraded_jobs", "announce_loaded"}


def test_one_task_announces_the_loads_and_collections_run_in_the_pool(dag):
    """Asset events from one task after the hosts (concurrent loads race on a new asset); collect in the pool."""
    from veeam_efficiency.airflow.assets import OUTLETS

    announce = dag.task_dict["announce_loaded"]
    assert announce.outlets == OUTLETS and announce.is_teardown  # runs whatever happened; the run is the hosts'
    assert not dag.task_dict["score_vbr_host.load"].outlets
    assert dag.task_dict["score_vbr_host.collect"].pool == "vbr_collectors"
    assert {task.pool for task in dag.tasks if task.task_id != "score_vbr_host.collect"} == {"default_pool"}
    # beside the collections once they may be scheduled; waiting, it holds no executor slot
    watch = dag.task_dict["watch_collector_pool"]
    assert watch.upstream_task_ids == {"ensure_results_schema", "list_vbr_hosts"} and watch.mode == "reschedule"


def test_io_tasks_retry_and_deterministic_tasks_do_not(dag):
    # validate and analyze read the window's stored sessions from the results database
    io_tasks = ("collect", "validate", "analyze", "load")
    for task_id in ("ensure_results_schema", *(f"score_vbr_host.{name}" for name in io_tasks)):
        task = dag.task_dict[task_id]
        assert task.retries == 3 and task.retry_exponential_backoff, task_id
    for task_id in ("score_vbr_host.sufficient", "score_vbr_host.optimize"):
        assert dag.task_dict[task_id].retries == 0, task_id


def test_param_defaults_are_the_spec_and_valid(dag):
    params = dag.params
    params.validate()  # every default satisfies its own schema
    defaults = {name: params[name] for name in params}
    assert defaults["collector"] == "replay"  # tests/conftest.py sets VEEAM_COLLECTOR as a deployment would
    assert defaults["lookback_days"] == 35 and defaults["min_sessions"] == 30
    assert defaults["target_dedup_factor"] == 2.5 and defaults["target_compression_factor"] == 1.8
    assert defaults["price_per_tb_usd"] == 100
    weights = [defaults[f"weight_{n}"] for n in ("dedup", "compression", "trend", "consistency", "anomaly")]
    assert weights == [0.30, 0.25, 0.20, 0.15, 0.10]
    lookback = params.get_param("lookback_days")
    assert lookback.schema["minimum"] == 1 and lookback.schema["maximum"] >= 365 and lookback.description


def test_out_of_bounds_param_is_refused(dag):
    from airflow.sdk.definitions.param import ParamValidationError

    param = dag.params.get_param("lookback_days")
    with pytest.raises(ParamValidationError):
        param.resolve(0)


def test_stock_cli_loads_the_dag_from_anywhere(tmp_path):
    """Only DAGS_FOLDER and PLUGINS_FOLDER, run from an unrelated directory, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH"}}
    env.update(
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'airflow.db'}",
    )
    code = (
        "from airflow.dag_processing.dagbag import DagBag; import os; "
        "bag = DagBag(os.environ['AIRFLOW__CORE__DAGS_FOLDER']); "
        "print(sorted(bag.dags), bag.import_errors)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"['{CONSUMER_ID}', '{DAG_ID}', '{CHECK_ID}'] {{}}" in result.stdout, result.stdout + result.stderr[-2000:]


@pytest.mark.parametrize(
    "dag_file", ["veeam_storage_efficiency.py", "example_risk_analysis_consumer.py", "veeam_vbr_check.py"]
)
def test_dag_file_imports_no_heavy_modules(dag_file):
    """The dag-processor parses the file often: pandas, scipy and numpy load only in tasks."""
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "print(sorted(m for m in ('pandas', 'scipy', 'numpy', 'paramiko') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}
    result = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "dags" / dag_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_vbr_check_is_manual_and_never_retried():
    """First contact: triggered by hand, one attempt, a report per host."""
    from airflow.dag_processing.dagbag import DagBag

    check = DagBag(dag_folder=str(REPO / "dags")).dags[CHECK_ID]
    assert type(check.timetable).__name__ == "NullTimetable" and check.catchup is False
    assert "veeam" in check.tags and check.doc_md and "first contact" in check.doc_md.lower()
    assert set(check.task_dict) == {"list_vbr_hosts", "diagnose", "watch_collector_pool"}
    # the check's own work runs once; only the pool watch retries, past a scheduler race
    assert {task.task_id for task in check.tasks if task.retries} == {"watch_collector_pool"}
    assert check.task_dict["diagnose"].pool == "vbr_collectors"  # the same cap on collections as the daily runs
    check.params.validate()
    assert check.params["check_days"] == 1 and check.params["allow_full_session_scan"] is False


def test_pool_and_retry_delay_come_from_the_environment_at_parse_time(monkeypatch):
    from datetime import timedelta

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("VEEAM_COLLECTOR_POOL", "vbr_collectors_eu")
    monkeypatch.setenv("VEEAM_RETRY_DELAY_SECONDS", "3")
    monkeypatch.setenv("VEEAM_POOL_GRACE_SECONDS", "40")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    dag, check = bag.dags[DAG_ID], bag.dags[CHECK_ID]
    assert dag.task_dict["score_vbr_host.collect"].pool == check.task_dict["diagnose"].pool == "vbr_collectors_eu"
    assert dag.task_dict["score_vbr_host.load"].retry_delay == timedelta(seconds=3)
    for watch in (dag.task_dict["watch_collector_pool"], check.task_dict["watch_collector_pool"]):
        assert (watch.poke_interval, watch.timeout) == (10, 80)  # the grace is the watch's; its timeout a backstop
        # retried past the scheduler's reschedule race (apache/airflow#71172); a missing pool fails at once
        assert (watch.retries, watch.retry_delay) == (2, timedelta(seconds=10))
