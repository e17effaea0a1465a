"""The DAG settings an operator puts in .env reach the DAG's Params in the compose stack.

Needs no Compose: ``docker-compose.yaml`` is read with YAML merge keys and its ``${VAR...}``
references are filled from a copy of ``.env.example`` as Compose would, then the DAG is parsed
with the environment the dag-processor and the workers get.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from dag_runner import load_dag

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.airflow]

RECIPIENTS = "backup-oncall@example.com, storage-team@example.com"
PARSING_SERVICES = ("airflow-dag-processor", "airflow-worker", "airflow-scheduler")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*)|(:?\?)[^}]*)?\}")


def _dotenv(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if match := re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip()):
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[match.group(1)] = value
    return values


def _interpolate(value: str, env: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name, default_op, default = match.group(1), match.group(2), match.group(3) or ""
        if default_op == ":-":
            return env.get(name) or default
        if default_op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return _REFERENCE.sub(fill, value)


def service_environment(service: str, env: dict[str, str]) -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    environment = compose["services"][service]["environment"]
    return {key: _interpolate(str(value), env) for key, value in environment.items()}


@pytest.fixture
def dot_env() -> dict[str, str]:
    env = _dotenv((ROOT / ".env.example").read_text())
    env["VEEAM_ALERT_RECIPIENTS"] = RECIPIENTS  # what the operator sets in .env
    return env


@pytest.mark.parametrize("service", PARSING_SERVICES)
def test_alert_recipients_in_env_reach_the_dag_params(monkeypatch, dot_env, service):
    environment = service_environment(service, dot_env)
    for key in [key for key in environment if key.startswith("VEEAM_")]:
        monkeypatch.setenv(key, environment[key])

    params = load_dag().params

    assert params["alert_recipients"] == ["backup-oncall@example.com", "storage-team@example.com"]
    assert params["collector"] == "ssh"  # a deployed stack collects from its VBR server, never the samples


def test_env_example_uses_the_names_the_code_reads() -> None:
    names = set(_dotenv((ROOT / ".env.example").read_text()))
    assert {"VEEAM_ALERT_RECIPIENTS", "VEEAM_COLLECTOR", "VEEAM_VBR_HOSTS", "VEEAM_RUN_DEADLINE_MINUTES"} <= names
    assert "VEEAM_ALERT_EMAILS" not in names | set(service_environment("airflow-worker", {}))
