"""Who may see the view: an authenticated Airflow user allowed to read the veeam_storage_efficiency DAG.

Plugin endpoints are not protected by Airflow on their own. This dependency asks Airflow's
own code the two questions its REST API asks: who is this (``get_user``: the bearer token
or the UI's ``_token`` cookie, validated by the configured auth manager) and may they read
this DAG (``requires_access_dag``: the auth manager's ``is_authorized_dag``). So the simple
auth manager, FAB or any other auth manager decides, with its roles, as it does for the DAG
itself. Airflow's modules are imported on the first request, so the scheduler and workers,
which load plugins too, never pay for the API server's code.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

DAG_ID = "veeam_storage_efficiency"
_bearer = HTTPBearer(auto_error=False)


async def dag_reader(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Any:
    """The user, or ``HTTPException`` 401 (no or expired credentials) / 403 (invalid, or may not read the DAG)."""
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

    user = await get_user(request, None, credentials)
    await run_in_threadpool(requires_access_dag("GET", param_dag_id=DAG_ID), request, user)
    return user


def login_url(request: Request) -> str:
    """The auth manager's login page, returning to ``request``'s page afterwards."""
    from airflow.api_fastapi.app import get_auth_manager

    return str(get_auth_manager().get_url_login(next_url=str(request.url)))
