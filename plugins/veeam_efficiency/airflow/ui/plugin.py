"""The Airflow plugin: the FastAPI app mounted at ``/veeam-efficiency`` and its "Storage efficiency" nav entry."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/veeam-efficiency"


class AppOnFirstRequest:
    """The view's FastAPI app, built on its first request (an ASGI app the api-server mounts).

    Every task runner loads every plugin (for its macros); building the app at import would
    make each task import FastAPI and the view for nothing.
    """

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            from veeam_efficiency.airflow.ui.app import create_app

            self.app = create_app()
        await self.app(scope, receive, send)


class StorageEfficiencyViewPlugin(AirflowPlugin):
    """Served by the api-server itself: no extra service, nothing loaded from the internet."""

    name = "veeam_storage_efficiency_view"
    # class attributes, as AirflowPlugin declares them (the plugin manager reads them off the class)
    fastapi_apps = [  # noqa: RUF012
        {"app": AppOnFirstRequest(), "url_prefix": URL_PREFIX, "name": "Storage efficiency"}
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
