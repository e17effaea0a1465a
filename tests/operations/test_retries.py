"""Retries and failures of the real DAG (``dag.test``): what is retried, what is not, and how.

A transient collector outage is retried and then succeeds; a document that breaks the
contract fails at once; PostgreSQL going away in the middle of the load rolls the whole
write back, and the retry after it is back writes everything exactly once. Retry delays
are shortened on the loaded DAG's tasks, so a retry takes seconds, not minutes.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.dag_runner import load_dag, write_document
from tests.support.documents import newest_session
from tools.synthetic import generate_document
from veeam_efficiency import pipeline, storage
from veeam_efficiency.payload import column
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.window import analysis_window

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.usefixtures("airflow_db")]

REPO = Path(__file__).resolve().parents[2]
RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)
HOST = "vbr01.example.local"


def sample(seed: int) -> dict[str, Any]:
    return generate_document(
        vbr_host=HOST, jobs=4, sessions=500, seed=seed,
        window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=RUN_DATE,
    )  # fmt: skip


def run(dag: Any, monkeypatch: pytest.MonkeyPatch, results_dsn: str, conf: dict[str, Any]) -> dict[str, Any]:
    """One ``dag.test``; ``{task_id: (state, try_number)}`` plus ``"history"``: the earlier tries."""
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", results_dsn)
    dag_run = dag.test(logical_date=RUN_DATE, run_conf=conf)
    with create_session() as session:
        current = {ti.task_id: (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances(session=session)}
        earlier = session.execute(
            select(TaskInstanceHistory.task_id, TaskInstanceHistory.try_number, TaskInstanceHistory.state).where(
                TaskInstanceHistory.dag_id == dag.dag_id, TaskInstanceHistory.run_id == dag_run.run_id
            )
        ).all()
    return {**current, "history": sorted((task_id, number, str(state)) for task_id, number, state in earlier)}


def shorten_retries(dag: Any, seconds: float = 1) -> None:
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=seconds)


def counts(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM feature3.storage_efficiency_history), "
            "(SELECT count(*) FROM feature3.metrics_storage_efficiency)"
        ).fetchone()  # type: ignore[return-value]


def install_pwsh(directory: Path, mode: str, document: Path, **options: Any) -> Path:
    """The collector tests' stand-in pwsh (tests/collector/fake_pwsh.py), replaying ``document``."""
    directory.mkdir(parents=True)
    path = directory / "pwsh"
    path.write_text(f"#!{sys.executable}\n" + (REPO / "tests" / "collector" / "fake_pwsh.py").read_text())
    path.chmod(0o755)
    control = {"mode": mode, "fixture": str(document), "record": str(directory / "argv.json"), **options}
    Path(f"{path}.control.json").write_text(json.dumps(control))
    return path


def test_collect_backs_off_exponentially_from_two_minutes_capped_at_thirty():
    """The real DAG's schedule of collect retries, as the scheduler computes it."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(load_dag()))
    for task_id in ("score_vbr_host.collect", "score_vbr_host.load"):
        task = dag.task_dict[task_id]
        assert task.retries == 3
        ti = TaskInstance(task, run_id="backoff", map_index=0, dag_version_id=uuid.uuid4())
        ti.end_date = RUN_DATE
        delays = []
        for try_number in (1, 2, 3, 4, 5):
            ti.try_number = try_number
            delays.append((ti.next_retry_datetime() - RUN_DATE).total_seconds() / 60)
        for try_number, minutes in enumerate(delays[:3], start=1):  # 2, 4, 8 minutes (+ up to 100% jitter)
            assert 2 * 2 ** (try_number - 1) <= minutes < 2 * 2**try_number, (task_id, delays)
        assert delays[-1] == 30, (task_id, delays)  # capped by max_retry_delay


def test_transient_collector_failure_succeeds_on_retry(monkeypatch, results_db, tmp_path):
    document = write_document(tmp_path, "vbr01", sample(seed=21))
    pwsh = install_pwsh(tmp_path / "bin", "fail_first", document, failures=1)
    dag = load_dag()
    shorten_retries(dag)

    result = run(dag, monkeypatch, results_db, {"collector": "local", "pwsh_path": str(pwsh), "vbr_hosts": [HOST]})

    assert result["score_vbr_host.collect"] == ("success", 2), result
    assert result["history"] == [("score_vbr_host.collect", 1, "failed")]
    assert result["score_vbr_host.load"] == ("success", 1), result
    assert (pwsh.parent / "pwsh.calls").read_text() == "2"  # one failed call, one that worked
    history, scorecards = counts(results_db)
    assert history > 0 and scorecards > 0


def test_contract_error_fails_at_once_without_retry(monkeypatch, results_db, tmp_path):
    broken = sample(seed=22)
    del newest_session(broken)["job_id"]  # valid JSON, broken contract
    document = write_document(tmp_path, "vbr01", broken)
    pwsh = install_pwsh(tmp_path / "bin", "replay", document)
    dag = load_dag()
    shorten_retries(dag)
    assert dag.task_dict["score_vbr_host.validate"].retries == 3  # it is AirflowFailException that stops it

    result = run(dag, monkeypatch, results_db, {"collector": "local", "pwsh_path": str(pwsh), "vbr_hosts": [HOST]})

    assert result["score_vbr_host.collect"] == ("success", 1), result
    assert result["score_vbr_host.validate"] == ("failed", 1), result
    assert not [row for row in result["history"] if row[0] == "score_vbr_host.validate"], result["history"]
    assert result["score_vbr_host.load"][0] == "upstream_failed"
    assert counts(results_db) == (0, 0)


@pytest.mark.slow
def test_postgres_stopped_during_load_rolls_back_and_retry_writes_once(monkeypatch, private_pg, tmp_path):
    """The server stops while the scorecards are being copied, after the history was merged."""
    results_dsn = private_pg.dsn()
    raw = sample(seed=23)
    write_document(tmp_path / "replay", "vbr01", raw)
    monkeypatch.setenv("VEEAM_REPLAY_DIR", str(tmp_path / "replay"))
    original = storage.binary_copy
    seen: dict[str, Any] = {"stops": 0}

    def restart_and_look() -> None:
        private_pg.start()
        seen["after_restart"] = counts(results_dsn)

    def stopping_copy(frame: Any, pg_types: dict[str, str], rows: int = 50_000) -> tuple[list[str], Any]:
        if set(pg_types) == set(storage.SCORECARD_COLUMNS) and seen["stops"] == 0:
            seen["stops"] += 1
            private_pg.stop()  # fast shutdown: the open transaction is rolled back
            seen["restart"] = threading.Thread(target=restart_and_look)
            seen["restart"].start()
        return original(frame, pg_types, rows)

    monkeypatch.setattr(storage, "binary_copy", stopping_copy)
    dag = load_dag()
    shorten_retries(dag)
    dag.task_dict["score_vbr_host.load"].retry_delay = timedelta(seconds=5)  # the server is back by then

    result = run(dag, monkeypatch, results_dsn, {})
    seen["restart"].join(timeout=60)

    assert seen["stops"] == 1
    assert seen["after_restart"] == (0, 0)  # nothing half-written: not even the history merged before
    assert result["score_vbr_host.load"] == ("success", 2), result
    assert result["history"] == [("score_vbr_host.load", 1, "failed")]
    validated = pipeline.validate(
        json.dumps(raw), analysis_window(RUN_DATE, AnalysisSettings().lookback_days), AnalysisSettings()
    )
    sessions = set(column(validated["sessions"], "session_id"))
    with psycopg.connect(results_dsn) as conn:
        stored = [row[0] for row in conn.execute("SELECT session_id FROM feature3.storage_efficiency_history")]
        jobs = conn.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM feature3.metrics_storage_efficiency WHERE scope = 'job'"
        ).fetchone()
    assert len(stored) == len(set(stored)) == len(sessions) and set(stored) == sessions  # each session once
    assert jobs == (len(validated["qualifying_job_ids"]),) * 2 and jobs[0] > 0
