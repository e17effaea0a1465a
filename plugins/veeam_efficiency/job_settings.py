"""Contract v2 ``jobs`` as rows of ``feature3.job_settings``: one flat record per job."""

from __future__ import annotations

from typing import Any

REPOSITORY_COLUMNS = {  # contract repository field -> job_settings column
    "repository_id": "repository_id", "name": "repository_name", "type": "repository_type",
    "dedup_appliance": "dedup_appliance", "decompress_before_storing": "decompress_before_storing",
    "align_blocks": "align_blocks", "fast_clone": "fast_clone", "object_storage": "object_storage",
    "scale_out": "scale_out",
}  # fmt: skip
JOB_COLUMNS = ("job_id", "job_name", "job_type", "compression_level", "block_size_kb", "inline_dedup", "encryption")


def job_settings_records(document: Any) -> list[dict[str, Any]] | None:
    """Each job's settings with its repository flattened; ``None`` when the document has no ``jobs`` (v1).

    A job without a known repository gets nulls in every repository column.
    """
    if "jobs" not in document:
        return None
    records = []
    for job in document["jobs"]:  # one per job, a few hundred at most
        repository = job["repository"] or {}
        record = {name: job[name] for name in JOB_COLUMNS}
        record |= {column: repository.get(field) for field, column in REPOSITORY_COLUMNS.items()}
        records.append(record)
    return records
