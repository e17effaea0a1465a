"""Collectors without Airflow: the local pwsh run, the replay files, and the errors every collector raises.

``run_local_script`` runs the PowerShell collector with a local pwsh; the SSH transport needs
an Airflow ``SSHHook`` and so lives in :mod:`veeam_efficiency.airflow.ssh_collector`. All
raise :class:`CollectorError` for failures a retry may fix and :class:`CollectorConfigError`
for a set-up that must change; validating the document against the contract is the caller's job.
"""

from veeam_efficiency.collectors.errors import CollectorConfigError, CollectorError
from veeam_efficiency.collectors.local import run_local_script

__all__ = ["CollectorConfigError", "CollectorError", "run_local_script"]
