"""Transports that run the PowerShell collector and return its stdout (one JSON document).

``run_local_script`` runs it with a local pwsh; ``run_remote_script`` runs it on the VBR
server over an Airflow SSHHook. Both raise :class:`CollectorError` for failures a retry
may fix; validating the document against the contract is the caller's job.
"""

from veeam_efficiency.collectors.errors import CollectorError
from veeam_efficiency.collectors.local import run_local_script
from veeam_efficiency.collectors.ssh import run_remote_script

__all__ = ["CollectorError", "run_local_script", "run_remote_script"]
