"""Receipts and payloads between tasks (veeam_efficiency.airflow.handoff), without Airflow: the XComs as a dict.

The Airflow side (``hand_on``/``taken`` in the real DAG's tasks, their rendered arguments
being receipts) is checked end to end by tests/operations/test_xcom_object_storage.py.
"""

from __future__ import annotations

import pytest

from veeam_efficiency.airflow.handoff import PAYLOAD, RECEIPT, payload_of, receipt

EXPIRED = "file:///opt/airflow/xcom/veeam_storage_efficiency/run/score_vbr_host.validate/0b1c.zst"
XCOMS = {
    ("score_vbr_host.validate", PAYLOAD, 2): {"sessions": "[...]"},
    ("score_vbr_host.validate", "sufficiency", 2): {},
    ("score_vbr_host.validate", PAYLOAD, 4): EXPIRED,  # what the object-storage backend gives when the file is gone
}


def pull(task_id: str, key: str, map_index: int) -> object:
    return XCOMS.get((task_id, key, map_index))


def test_a_receipt_carries_the_summary_and_finds_each_payload_of_its_task_and_map_index() -> None:
    handed = receipt("score_vbr_host.validate", 2, {PAYLOAD: {}, "sufficiency": {}}, {"vbr_host": "vbr01"})

    assert handed == {
        "vbr_host": "vbr01",
        RECEIPT: {"task_id": "score_vbr_host.validate", "map_index": 2, "keys": [PAYLOAD, "sufficiency"]},
    }
    assert payload_of(handed, PAYLOAD, pull) == {"sessions": "[...]"}
    assert payload_of(handed, "sufficiency", pull) == {}  # empty is a payload, not a missing one


def test_a_key_not_handed_on_and_a_payload_that_is_gone_say_so() -> None:
    handed = receipt("score_vbr_host.validate", 2, {PAYLOAD: {}}, {})
    with pytest.raises(KeyError, match=r"score_vbr_host.validate handed on \['payload'\], not 'scorecards'"):
        payload_of(handed, "scorecards", pull)

    other_host = receipt("score_vbr_host.validate", 3, {PAYLOAD: {}}, {})
    with pytest.raises(LookupError, match=r"'payload' score_vbr_host.validate\[3\] handed on is gone: clear that task"):
        payload_of(other_host, PAYLOAD, pull)
    expired = receipt("score_vbr_host.validate", 4, {PAYLOAD: {}}, {})
    with pytest.raises(LookupError, match=r"handed on is gone \(the XCom backend found nothing at 'file:///opt/"):
        payload_of(expired, PAYLOAD, pull)


def test_a_payload_is_a_json_object_so_a_missing_one_cannot_pass_for_it() -> None:
    with pytest.raises(TypeError, match=r"collect: the payload 'payload' is a str, not a JSON object"):
        receipt("collect", 0, {PAYLOAD: "{...}"}, {})


def test_a_steps_summary_is_its_host_day_and_counts_not_its_tables() -> None:
    from veeam_efficiency.pipeline import summary

    validated = {
        "vbr_host": "vbr01", "analysis_date": "2026-11-26", "sessions_in_window": 3, "excluded": {"failed": 1},
        "qualifying_job_ids": ["a", "b"], "insufficient_jobs": [{"job_id": "c"}],
        "sessions": {"session_id": "[...]"}, "job_settings": [], "collection_log": [],
    }  # fmt: skip

    assert summary(validated) == {
        "vbr_host": "vbr01", "analysis_date": "2026-11-26", "sessions_in_window": 3, "excluded": {"failed": 1},
        "qualifying_jobs": 2, "insufficient_jobs": 1,
    }  # fmt: skip
    collected = {
        "collection_target": "vbr01",
        "asked": [["2026-11-24", "2026-11-27"]],
        "logged": True,
        "documents": ["{}"],
    }
    assert summary(collected) == {"collection_target": "vbr01", "asked": [["2026-11-24", "2026-11-27"]], "logged": True}
    assert summary({"vbr_host": "vbr01", "analysis_date": "2026-11-26", "scorecards": "[...]"}) == {
        "vbr_host": "vbr01", "analysis_date": "2026-11-26",
    }  # fmt: skip
