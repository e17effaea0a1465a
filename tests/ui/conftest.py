"""Fixtures of the view's tests: a seeded results database and Airflow's API app with this plugin."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

# not tests.conftest: a second import of it resets the environment
from tests.operations.airflow_stack import create_database, drop_database
from tests.ui.seed import seed


@pytest.fixture(scope="module")
def seeded_db() -> Iterator[dict[str, Any]]:
    """A results database scored by the DAG's steps (tests/ui/seed.py): its DSN and the jobs scored."""
    name = f"veeam_test_ui_{secrets.token_hex(4)}"
    dsn = create_database(name)
    try:
        yield {"dsn": dsn, "scored": seed(dsn)}
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def api_app(airflow_db: dict[str, str], seeded_db: dict[str, Any]) -> Iterator[Any]:
    """Airflow's own API app (simple auth manager, this repo's plugins), reading the seeded database."""
    env = {
        "AIRFLOW_CONN_POSTGRES_DEFAULT": seeded_db["dsn"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    try:
        yield create_app(apps="core")
    finally:
        purge_cached_app()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def token(role: str | None, username: str = "someone") -> str:
    """A JWT the running auth manager signs, for a simple-auth-manager user of ``role`` (None: no role)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return str(get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role)))
