"""Moved to :mod:`veeam_efficiency.airflow.notifiers` (the Airflow layer); this name still works.

Resolved on first attribute access, so importing this module imports no Airflow; the old
dotted paths (``veeam_efficiency.notifications.TaskFailureAlert``, and the
``RunDeadlineMissed`` callback path that Deadline Alerts already stored in the metadata
database) keep resolving.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    from veeam_efficiency.airflow import notifiers

    return getattr(notifiers, name)
