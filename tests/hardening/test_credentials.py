"""Credentials live only in Airflow connections: a run leaves them in no log, XCom or metadata row.

The results database is the private cluster of ``loader_db``, where the DAG's role must log in
with its password (scram-sha-256), and the VBR server is the test sshd reached through an SSH
connection that carries a password too. After a real ``dag.test()`` run with the ssh collector,
every task log file, everything the run printed, every XCom of the run and a ``pg_dump`` of
the whole Airflow metadata database are searched for both passwords, raw and URL-encoded.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.collector.test_dag_collectors import RUN_DATE, install_round_robin_pwsh
from tests.support.pg_cluster import PG_BIN

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
from dag_runner import DAG_ID, fetch, run_dag

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.ssh]

SSH_PASSWORD = "Ssh$Canary'9f3e\"x"  # what a VBR service account's password might look like


def metadata_dsn(airflow_env: dict[str, str]) -> str:
    return airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg://", "postgresql://")


def forms(secret: str) -> set[str]:
    """The ways a secret may show up: as is, URL-encoded (in a URI), JSON-escaped."""
    return {secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]}


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [form for secret in secrets for form in forms(secret) if form in text]


def test_the_leak_search_finds_a_leak():
    """Control for the search below: every encoded form of a password is found."""
    for form in forms(SSH_PASSWORD):
        assert leaks(f"log line: connecting with {form} ...", [SSH_PASSWORD])


def test_no_credential_in_logs_xcom_or_metadata(
    monkeypatch, airflow_db, loader_db, fake_pwsh, sshd, tmp_path, capfd, caplog
):
    hosts = ["127.0.0.1"]
    pwsh, _ = install_round_robin_pwsh(fake_pwsh, tmp_path, hosts)
    connection = {
        "conn_type": "ssh",
        "host": "vbr.invalid",
        "port": sshd.port,
        "login": sshd.login,
        "password": SSH_PASSWORD,  # the key authenticates; paramiko holds the password too
        "extra": {"key_file": str(sshd.client_key), "look_for_keys": "false", "host_key": sshd.host_public_key},
    }
    monkeypatch.setenv("AIRFLOW_CONN_VBR_SSH", json.dumps(connection))
    secrets = [loader_db.password, SSH_PASSWORD]
    caplog.set_level(logging.DEBUG)

    states = run_dag(
        monkeypatch,
        results_dsn=loader_db.loader_dsn,
        replay_dir=tmp_path / "unused",
        logical_date=RUN_DATE,
        conf={"collector": "ssh", "vbr_hosts": hosts, "pwsh_path": str(pwsh)},
    )
    printed = capfd.readouterr()

    assert set(states.values()) == {"success"}, states
    assert fetch(loader_db.admin_dsn, "SELECT count(*) > 0 FROM feature3.metrics_storage_efficiency") == [(True,)]

    # everything the tasks logged: the log folder and what the in-process run printed
    log_folder = Path(airflow_db["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    log_texts = {str(path): path.read_text(errors="replace") for path in log_folder.rglob("*") if path.is_file()}
    log_texts["<stdout>"], log_texts["<stderr>"] = printed.out, printed.err
    log_texts["<logging>"] = caplog.text  # where the records go depends on how logging was set up before
    everything = "\n".join(log_texts.values())
    assert "wrote {'history_rows'" in everything, "the task logs were not captured, so the search below proves nothing"
    assert "127.0.0.1" in everything
    assert {name: leaks(text, secrets) for name, text in log_texts.items() if leaks(text, secrets)} == {}

    # every XCom of the run (the documents, the payloads, the load counts)
    with psycopg.connect(metadata_dsn(airflow_db)) as conn:
        run_id = conn.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()[0]
        xcoms = conn.execute(
            "SELECT task_id, map_index, key, value::text FROM xcom WHERE dag_id = %s AND run_id = %s", (DAG_ID, run_id)
        ).fetchall()
    assert {task_id.split(".")[-1] for task_id, *_ in xcoms} >= {"collect", "validate", "analyze", "optimize", "load"}
    assert [(task_id, map_index, key) for task_id, map_index, key, value in xcoms if leaks(value, secrets)] == []

    # and nowhere in the metadata database: no connection row, no rendered field, no audit log
    dump = subprocess.run(
        [str(PG_BIN / "pg_dump"), "--data-only", "-d", metadata_dsn(airflow_db)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert run_id in dump and "vbr.invalid" not in dump  # the dump holds this run; the connection is env-only
    assert leaks(dump, secrets) == []


@pytest.mark.parametrize("broken", ["postgres", "ssh"])
def test_no_credential_in_the_logs_of_a_failed_login(
    monkeypatch, airflow_db, loader_db, fake_pwsh, sshd, tmp_path, capfd, caplog, broken
):
    """A refused login ends in a traceback; neither it nor anything else may show the password."""
    import dag_runner

    pwsh, _ = install_round_robin_pwsh(fake_pwsh, tmp_path, ["127.0.0.1"])
    connection = {
        "conn_type": "ssh", "host": "vbr.invalid", "port": sshd.port, "login": sshd.login, "password": SSH_PASSWORD,
        "extra": {"key_file": str(sshd.stranger_key if broken == "ssh" else sshd.client_key), "look_for_keys": "false",
                  "host_key": sshd.host_public_key},
    }  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_VBR_SSH", json.dumps(connection))
    wrong_db_password = "Pg-Wrong-Canary-8080"
    results_dsn = loader_db.loader_dsn
    if broken == "postgres":
        results_dsn = results_dsn.replace(quote(loader_db.password, safe=""), wrong_db_password)
    load_dag = dag_runner.load_dag
    caplog.set_level(logging.DEBUG)

    def without_retries():  # a retried task would wait minutes in dag.test
        dag = load_dag()
        for task in dag.tasks:
            task.retries = 0
        return dag

    monkeypatch.setattr(dag_runner, "load_dag", without_retries)

    states = run_dag(
        monkeypatch, results_dsn=results_dsn, replay_dir=tmp_path / "unused", logical_date=RUN_DATE,
        conf={"collector": "ssh", "vbr_hosts": ["127.0.0.1"], "pwsh_path": str(pwsh)},
    )  # fmt: skip
    printed = capfd.readouterr()

    failed = "ensure_results_schema" if broken == "postgres" else "score_vbr_host.collect[0]"
    assert states[failed] == "failed", states
    everything = printed.out + printed.err + caplog.text
    expected = "password authentication failed" if broken == "postgres" else "cannot open SSH connection"
    assert expected in everything, "the failure was not logged, so the search below proves nothing"
    assert leaks(everything, [loader_db.password, SSH_PASSWORD, wrong_db_password]) == []


# --------------------------------------------------------------------------- the repository

_PLACEHOLDER = re.compile(r"^(|pass|password|<[^>]*>|\.\.\.|change-me.*|\$\{[^}]*\}|\$[A-Za-z_]+)$")
_SECRET_SHAPES = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:'\"]+:([^\s/@'\"]*)@", re.IGNORECASE),  # scheme://user:secret@
    re.compile(r"\"(?:password|passwd|secret)\"\s*:\s*\"([^\"]*)\"", re.IGNORECASE),  # JSON connection extras
    re.compile(r"^\s*[A-Z_]*(?:PASSWORD|SECRET|TOKEN)[A-Z_]*=['\"]?([^'\"\s]*)", re.MULTILINE),  # env files
)


def secrets_in(text: str) -> list[str]:
    found = []
    for shape in _SECRET_SHAPES:
        for match in shape.finditer(text):
            value = match.group(1) if shape.groups else match.group(0)
            if not _PLACEHOLDER.match(value):
                found.append(match.group(0))
    return found


def test_the_repository_search_finds_planted_secrets():
    planted = [
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "AIRFLOW_CONN_POSTGRES_DEFAULT=postgresql://veeam:S3cr3t@db/veeam",
        '{"conn_type": "ssh", "password": "hunter2"}',
        "VEEAM_RESULTS_DB_PASSWORD=hunter2",
    ]
    assert [bool(secrets_in(line)) for line in planted] == [True] * len(planted)
    assert secrets_in("postgresql://user:pass@host:5432/db ${VEEAM_RESULTS_DB_PASSWORD:?set it}") == []


def test_no_credential_in_the_repository():
    """Every tracked file outside tests/ (whose throwaway clusters use made-up passwords)."""
    root = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    files = [name for name in tracked if not name.startswith("tests/") and (root / name).is_file()]
    assert "docker-compose.yaml" in files and ".env.example" in files
    found = {name: hits for name in files if (hits := secrets_in((root / name).read_text(errors="replace")))}
    assert found == {}
