"""Contract v2 ``jobs`` as rows of ``feature3.job_settings``: one flat record per job.

The columns and the repository fields' column names come from the registry
(``tables.JOB_RECORD``, ``tables.REPOSITORY_RECORD``, ``tables.REPOSITORY_COLUMNS``).
"""

from __future__ import annotations

from typing import Any

from veeam_efficiency.tables import JOB_RECORD, REPOSITORY_COLUMNS, REPOSITORY_RECORD

# contract repository field -> job_settings column
_REPOSITORY = {name: REPOSITORY_COLUMNS.get(name, name) for name in REPOSITORY_RECORD.names}


def job_settings_records(document: Any) -> list[dict[str, Any]] | None:
    """Each job's settings with its repository flattened; ``None`` when the document has no ``jobs`` (v1).

    A job without a known repository gets nulls in every repository column.
    """
    if "jobs" not in document:
        return None
    records = []
    for job in document["jobs"]:  # one per job, a few hundred at most
        repository = job["repository"] or {}
        record = {name: job[name] for name in JOB_RECORD.names}
        record |= {column: repository.get(field) for field, column in _REPOSITORY.items()}
        records.append(record)
    return records
