"""Large payloads between a host's tasks: each pushed under an XCom key of its own, handed on as a small receipt.

What a task receives as an argument is one of its rendered template fields: before the task
runs, Airflow turns each into text, scans every string in it for secrets (a regex over the
whole value) and truncates it for the UI's Rendered Template view; ``airflow dags test``
serialises it once more when the task ends. For a large server's session table (a
1M-session document is about 570 MB of JSON) that took longer than parsing it, and kept
extra copies in memory, in every task that took one. Airflow has no switch to leave an
argument out of rendering, so the payload goes through the XCom backend under its own key
(:data:`PAYLOAD` and the like) and the argument is a receipt: a few figures a person can
read in the UI (host, day, counts) and where the payload is. :func:`taken` pulls it, once,
inside the task that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PAYLOAD = "payload"
RECEIPT = "handed_on"  # the receipt's entry saying where its payloads are

# (task_id, key, map_index) -> the XCom value, None when there is none
Pull = Callable[[str, str, int], Any]


def hand_on(payloads: dict[str, Any], **summary: Any) -> dict[str, Any]:
    """Push each of ``payloads`` (XCom key -> value) from the running task; return the receipt to
    return from it: ``summary`` (small, JSON) and where the payloads are."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    handed = receipt(ti.task_id, -1 if ti.map_index is None else ti.map_index, payloads, summary)  # checks them first
    for key, value in payloads.items():
        ti.xcom_push(key, value)
    return handed


def taken(handed: dict[str, Any] | None, key: str = PAYLOAD) -> Any:
    """The payload ``handed`` (a receipt of :func:`hand_on`) says was pushed under ``key``, pulled in
    the running task; None for no receipt (the task that would have written it was skipped)."""
    if handed is None:
        return None
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    return payload_of(
        handed, key, lambda task_id, name, index: ti.xcom_pull(task_ids=task_id, key=name, map_indexes=index)
    )


def receipt(task_id: str, map_index: int, payloads: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` and where the ``payloads`` a task pushed are. Payloads are JSON objects, so that
    one that is gone cannot pass for one (:func:`payload_of`)."""
    for key, value in payloads.items():
        if not isinstance(value, dict):
            raise TypeError(f"{task_id}: the payload {key!r} is a {type(value).__name__}, not a JSON object")
    return {**summary, RECEIPT: {"task_id": task_id, "map_index": map_index, "keys": sorted(payloads)}}


def payload_of(handed: dict[str, Any], key: str, pull: Pull) -> Any:
    """The payload under ``key`` of the receipt ``handed``, by ``pull``; says what to do when it is not there."""
    where = handed[RECEIPT]
    if key not in where["keys"]:
        raise KeyError(f"{where['task_id']} handed on {where['keys']}, not {key!r}")
    value = pull(where["task_id"], key, where["map_index"])
    # None: its XCom row was deleted; a string: the object-storage backend hands back the object's
    # address when its file is gone (expired, say), instead of failing
    if not isinstance(value, dict):
        gone = "" if value is None else f" (the XCom backend found nothing at {str(value)[:200]!r})"
        raise LookupError(
            f"the {key!r} {where['task_id']}[{where['map_index']}] handed on is gone{gone}: "
            "clear that task too, so it runs again and hands it on"
        )
    return value
