"""Registers the "Storage efficiency" view (veeam_efficiency/ui) with Airflow's plugin manager."""

from veeam_efficiency.ui.plugin import StorageEfficiencyViewPlugin

__all__ = ["StorageEfficiencyViewPlugin"]
