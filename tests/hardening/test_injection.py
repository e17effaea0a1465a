"""Nothing a user or a VBR server controls reaches a shell, PowerShell or SQL text.

Three doors, each tried with shell, PowerShell and SQL payloads that would leave a canary file
(or drop a table) if anything interpreted them:

* Params that name things for other programs (``vbr_hosts``, ``pwsh_path``, the connection ids)
  are refused by the trigger form's JSON schema and by the settings every task validates;
* ``job_names`` are free text: they travel to PowerShell only base64-encoded (a real sshd runs
  the command through the login shell), never raw on a command line;
* what the VBR server sends (job names, its host name, the free-text fields) is stored verbatim
  through bound parameters and COPY, and the tables stay intact. (Enumerated fields such as
  ``algorithm`` never get that far: the contract refuses any other value.)
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from tests.collector.test_dag_collectors import calls_of, install_round_robin_pwsh
from tools.synthetic import generate_document
from veeam_efficiency.settings import CollectionSettings, param_specs

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
from dag_runner import fetch, run_dag, tables_exist, write_document

RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)
CANARY = Path("/tmp/veeam_efficiency_pwned")


def payloads(canary: Path = CANARY) -> list[str]:
    return [
        f"$(touch {canary})",
        f"`touch {canary}`",
        f"x; touch {canary}; #",
        f"x' ; touch {canary} ; echo '",
        f'x" & touch {canary} & "',
        f"x\ntouch {canary}",
        f'"; New-Item -Path {canary}; "',
        f"$(New-Item -Path {canary})",
        f"x | Out-File {canary}",
        "x'; DROP TABLE feature3.storage_efficiency_history; --",
        'x"); DROP TABLE feature3.metrics_storage_efficiency; --',
    ]


@pytest.fixture(autouse=True)
def no_canary():
    CANARY.unlink(missing_ok=True)
    yield
    assert not CANARY.exists(), "an injected command ran"


# --------------------------------------------------------------------------- Params

HOSTILE_PARAMS = [
    *(("vbr_hosts", [payload]) for payload in payloads()),
    ("vbr_hosts", ["-oProxyCommand=touch /tmp/veeam_efficiency_pwned"]),
    ("vbr_hosts", ["vbr01.example.local", "vbr02 vbr03"]),
    *(("pwsh_path", payload) for payload in payloads()),
    ("pwsh_path", "-Command"),
    ("ssh_conn_id", "vbr_ssh; touch /tmp/veeam_efficiency_pwned"),
    ("ssh_conn_id", "../../etc/passwd"),
    ("postgres_conn_id", "x' OR '1'='1"),
    ("postgres_conn_id", "postgres_default\n"),
]


@pytest.mark.parametrize(("name", "value"), HOSTILE_PARAMS)
def test_hostile_params_are_refused_by_the_form_and_the_tasks(name, value):
    spec = param_specs(CollectionSettings)[name]
    schema = {key: item for key, item in spec.items() if key != "default"}
    values = value if isinstance(value, list) else [value]
    if not any(item.endswith("\n") for item in values):  # JSON schema's "$" also matches before a final newline
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)
    with pytest.raises(ValidationError, match=name):
        CollectionSettings.model_validate({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("vbr_hosts", ["vbr01.example.local", "10.0.0.5", "fe80::1", "VBR_02"]),
        ("pwsh_path", r"C:\Program Files\PowerShell\7\pwsh.exe"),
        ("pwsh_path", "/opt/microsoft/powershell/7/pwsh"),
        ("ssh_conn_id", "vbr-ssh.site_2"),
    ],
)
def test_ordinary_values_still_pass(name, value):
    """Control: the rules refuse metacharacters, not real host names, paths or ids."""
    schema = {key: item for key, item in param_specs(CollectionSettings)[name].items() if key != "default"}
    jsonschema.validate(value, schema)
    assert getattr(CollectionSettings.model_validate({name: value}), name) == value


@pytest.mark.airflow
@pytest.mark.postgres
@pytest.mark.usefixtures("airflow_db")
def test_a_hostile_host_is_refused_when_the_run_is_triggered(monkeypatch, results_db, fake_pwsh, tmp_path):
    from airflow.sdk.definitions.param import ParamValidationError

    pwsh, calls = install_round_robin_pwsh(fake_pwsh, tmp_path, ["vbr01"])
    conf = {"collector": "local", "vbr_hosts": [f"vbr01; touch {CANARY}"], "pwsh_path": str(pwsh)}
    with pytest.raises(ParamValidationError, match="vbr_hosts"):
        run_dag(monkeypatch, results_dsn=results_db, replay_dir=tmp_path, logical_date=RUN_DATE, conf=conf)
    assert not calls.exists()
    assert not tables_exist(results_db)


@pytest.mark.airflow
@pytest.mark.postgres
@pytest.mark.usefixtures("airflow_db")
def test_what_slips_past_the_form_is_refused_by_the_first_task(monkeypatch, results_db, fake_pwsh, tmp_path):
    """JSON schema's "$" matches before a final newline; the settings every task validates do not."""
    pwsh, calls = install_round_robin_pwsh(fake_pwsh, tmp_path, ["vbr01"])
    conf = {"collector": "local", "vbr_hosts": ["vbr01\n"], "pwsh_path": str(pwsh)}
    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=tmp_path, logical_date=RUN_DATE, conf=conf)
    assert states["ensure_results_schema"] == "failed", states
    assert not [key for key, state in states.items() if "collect" in key and state == "success"], states
    assert not calls.exists()
    assert not tables_exist(results_db)


# --------------------------------------------------------------------------- job names to PowerShell


@pytest.mark.airflow
@pytest.mark.postgres
@pytest.mark.parametrize("collector", ["local", pytest.param("ssh", marks=pytest.mark.ssh)])
@pytest.mark.usefixtures("airflow_db")
def test_job_names_reach_powershell_only_base64_encoded(monkeypatch, results_db, fake_pwsh, sshd, tmp_path, collector):
    names = payloads()
    host = "127.0.0.1"
    pwsh, calls = install_round_robin_pwsh(fake_pwsh, tmp_path, [host])
    if collector == "ssh":  # the sshd runs the command line through the account's login shell
        connection = {
            "conn_type": "ssh", "host": host, "port": sshd.port, "login": sshd.login,
            "extra": {"key_file": str(sshd.client_key), "look_for_keys": "false", "host_key": sshd.host_public_key},
        }  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_VBR_SSH", json.dumps(connection))

    states = run_dag(
        monkeypatch, results_dsn=results_db, replay_dir=tmp_path / "unused", logical_date=RUN_DATE,
        conf={"collector": collector, "vbr_hosts": [host], "pwsh_path": str(pwsh), "job_names": names},
    )  # fmt: skip

    assert set(states.values()) == {"success"}, states
    (call,) = calls_of(calls)
    argv = call["argv"]
    assert argv[-2] == "-JobNameBase64"
    assert json.loads(base64.b64decode(argv[-1], validate=True)) == names  # intact, in order
    for word in ("touch", "New-Item", "DROP", "Out-File", "$(", "`", ";", "'", '"'):
        assert not [arg for arg in argv if word in arg], f"{word!r} reached the command line raw: {argv}"
    assert fetch(results_db, "SELECT count(*) > 0 FROM feature3.metrics_storage_efficiency") == [(True,)]


# --------------------------------------------------------------------------- what the VBR server sends


@pytest.mark.airflow
@pytest.mark.postgres
@pytest.mark.usefixtures("airflow_db")
def test_hostile_values_from_the_vbr_server_are_stored_verbatim(monkeypatch, results_db, tmp_path):
    evil = payloads()
    host = "vbr01'; DROP TABLE feature3.metrics_storage_efficiency; --"
    document = generate_document(
        vbr_host=host, jobs=len(evil), sessions=len(evil) * 60, seed=41,
        window_start=datetime(2026, 9, 1, tzinfo=UTC), window_end=RUN_DATE,
    )  # fmt: skip
    job_ids = sorted({session["job_id"] for session in document["sessions"]})
    names = dict(zip(job_ids, evil, strict=True))
    for session in document["sessions"]:
        session["job_name"] = names[session["job_id"]]
        session["job_type"] = "Backup'); DELETE FROM feature3.storage_efficiency_history; --"
    document["vbr_version"] = "12.3'||pg_sleep(5)||'"
    write_document(tmp_path / "replay", "vbr01", document)

    states = run_dag(monkeypatch, results_dsn=results_db, replay_dir=tmp_path / "replay", logical_date=RUN_DATE)

    assert set(states.values()) == {"success"}, states
    assert fetch(results_db, "SELECT DISTINCT vbr_host FROM feature3.storage_efficiency_history") == [(host,)]
    assert fetch(results_db, "SELECT DISTINCT vbr_version FROM feature3.storage_efficiency_history") == [
        ("12.3'||pg_sleep(5)||'",)
    ]
    stored = {row[0] for row in fetch(results_db, "SELECT DISTINCT job_name FROM feature3.storage_efficiency_history")}
    assert stored == set(evil)
    assert fetch(results_db, "SELECT DISTINCT job_type FROM feature3.storage_efficiency_history") == [
        ("Backup'); DELETE FROM feature3.storage_efficiency_history; --",)
    ]
    in_window = fetch(results_db, "SELECT count(*) FROM feature3.storage_efficiency_history WHERE vbr_host = %s", host)[
        0
    ][0]
    assert in_window > 0
    scored = fetch(results_db, "SELECT DISTINCT vbr_host FROM feature3.metrics_storage_efficiency")
    assert scored == [(host,)]  # the table the host name tried to drop is there, with its rows
