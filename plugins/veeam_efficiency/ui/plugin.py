"""The Airflow plugin: the FastAPI app mounted at ``/veeam-efficiency`` and its "Storage efficiency" nav entry."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from veeam_efficiency.ui.app import create_app

URL_PREFIX = "/veeam-efficiency"


class StorageEfficiencyViewPlugin(AirflowPlugin):
    """Served by the api-server itself: no extra service, nothing loaded from the internet."""

    name = "veeam_storage_efficiency_view"
    # class attributes, as AirflowPlugin declares them (the plugin manager reads them off the class)
    fastapi_apps = [  # noqa: RUF012
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Storage efficiency"}
    ]
    # href without a leading slash: relative to Airflow's base URL, so a reverse-proxy prefix is kept
    external_views = [  # noqa: RUF012
        {
            "name": "Storage efficiency",
            "href": "veeam-efficiency/",
            "icon": "veeam-efficiency/static/icon.svg",
            "destination": "nav",
            "url_route": "storage-efficiency",
        }
    ]
