"""Registers the "Storage efficiency" view (veeam_efficiency/airflow/ui) with Airflow's plugin manager."""

from veeam_efficiency.airflow.ui.plugin import StorageEfficiencyViewPlugin

__all__ = ["StorageEfficiencyViewPlugin"]
