"""Session tables travel between tasks as files in object storage, not through the metadata DB.

A real ``airflow dags test`` with the object-storage XCom backend configured by environment
(bench/xcom_payload.py, which also runs the 200,000-session case). Kept at 10,000 sessions
here so the suite stays fast; the figures of the large run are in the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.xcom_payload import run_payload

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.postgres]


def test_large_xcoms_go_to_object_storage_and_the_metadata_db_keeps_references(tmp_path: Path):
    figures = run_payload(10_000, 100, tmp_path)

    assert figures["dags_test_returncode"] == 0, figures["dags_test_tail"]
    assert set(figures["task_states"].values()) == {"success"}, figures["task_states"]
    assert figures["history_rows"] > 9_500  # every in-window session loaded (a few duplicates dropped)
    # the raw document, the validated sessions, the anomaly verdicts and the scorecards (analyze), the costed
    # scorecards (optimize) are objects under the path, each written once: no task also pushes its dict key by key
    written = sorted(Path(name).parent.name for name in figures["objects"])
    assert written == [f"score_vbr_host.{task}" for task in ("analyze", "analyze", "collect", "optimize", "validate")]
    # receipts as return values, payloads under keys of their own, and the small part `sufficient` reads
    # instead of a whole payload (pipeline.part): no dict pushed key by key, no @task.branch's skipmixin_key
    assert {key.split()[-1] for key in figures["xcom_keys"]} == {"return_value", "payload", "scorecards", "sufficiency"}
    # a task's arguments are receipts, not payloads: Airflow renders them whole (nothing to truncate),
    # instead of scanning megabytes of JSON for secrets before each task (handoff)
    rendered = figures["rendered_fields"]
    assert {"score_vbr_host.validate[0]", "score_vbr_host.load[0]"} <= set(rendered), rendered.keys()
    assert not [task for task, text in rendered.items() if "Truncated" in text or len(text) > 4_000], rendered
    assert figures["payload_bytes"] > figures["document_bytes"] > 2_000_000
    references = [value for value in figures["xcom_references"] if figures["xcom_root"] in value]
    assert len(references) == len(figures["objects"])
    # nor is any of it echoed into the task logs (printed by `airflow dags test`)
    assert figures["dags_test_output_bytes"] < figures["document_bytes"] / 10, figures["dags_test_output_bytes"]
    # the metadata database grows by kilobytes of references, not by the megabytes of payload
    xcom_growth = figures["after"]["xcom_values_bytes"] - figures["before"]["xcom_values_bytes"]
    database_growth = figures["after"]["database_bytes"] - figures["before"]["database_bytes"]
    assert xcom_growth < 64_000 < figures["payload_bytes"] / 100, figures
    assert database_growth < figures["payload_bytes"] / 10, figures
