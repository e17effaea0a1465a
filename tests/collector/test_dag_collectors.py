"""The real DAG end to end (``dag.test()``) with the ssh and local collectors, two VBR hosts each.

The stand-in pwsh (fake_pwsh.py) replays one document per call; a small wrapper in front of
it picks the document of the host it runs on, so each map instance gets its own host's
document and both hosts' scorecards must land in PostgreSQL. Over SSH the host is the address
the client reached (``SSH_CONNECTION``), so a retried collect gets its own host's document
again, as from a real VBR server; a call counter once stood in for it, and a retry under load
shifted every later host onto the wrong document. The local collector runs the same command
for every host label, so there the documents are served in turn.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))

from dag_runner import fetch, run_dag

from tools.synthetic import generate_document

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]

WINDOW_START = datetime(2026, 9, 1, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 27, tzinfo=UTC)
RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)  # manual run: the window ends here

# Stdlib only (it also runs under the test sshd): pick the host's document (by the address the
# SSH client reached; in turn without SSH), then hand over to the stand-in, which checks the
# arguments and replays its control file's "fixture".
WRAPPER = """
import json, os, sys
from pathlib import Path
plan = json.loads(Path(PLAN).read_text())
calls = Path(plan["calls"])
number = len(calls.read_text().splitlines()) if calls.exists() else 0
reached = os.environ.get("SSH_CONNECTION", "").split()[2:3]
if reached:
    document = plan["by_address"][reached[0]]
else:
    document = plan["documents"][number % len(plan["documents"])]
control_path = Path(plan["fake"] + ".control.json")
control = json.loads(control_path.read_text())
control["fixture"] = document
control_path.write_text(json.dumps(control))
with calls.open("a") as log:
    log.write(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[1:], "document": document, "reached": reached}) + "\\n")
os.execv(plan["fake"], [plan["fake"], *sys.argv[1:]])
"""


def install_round_robin_pwsh(fake_pwsh, tmp_path: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A pwsh serving each host's synthetic document in turn; (its path, its call log)."""
    fake = fake_pwsh("replay")
    documents = []
    for seed, host in enumerate(hosts, start=1):
        document = generate_document(
            vbr_host=host, jobs=4, sessions=400, window_start=WINDOW_START, window_end=WINDOW_END, seed=seed
        )
        path = tmp_path / f"document-{seed}.json"
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        documents.append(str(path))
    calls = fake.path.parent / "calls.jsonl"
    plan = fake.path.parent / "plan.json"
    by_address = dict(zip(hosts, documents, strict=True))
    plan.write_text(
        json.dumps({"fake": str(fake.path), "documents": documents, "by_address": by_address, "calls": str(calls)})
    )
    wrapper = fake.path.parent / "pwsh-round-robin"
    wrapper.write_text(f"#!{sys.executable}\nPLAN = {str(plan)!r}\n{WRAPPER}")
    wrapper.chmod(0o755)
    return wrapper, calls


def calls_of(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def assert_both_hosts_scored(states: dict[str, str], dsn: str, hosts: list[str]) -> None:
    assert set(states.values()) == {"success"}, states
    for task in ("collect", "load"):
        assert {key for key in states if key.startswith(f"score_vbr_host.{task}[")} == {
            f"score_vbr_host.{task}[0]",
            f"score_vbr_host.{task}[1]",
        }, states
    scored = fetch(
        dsn,
        "SELECT vbr_host, count(*) FILTER (WHERE scope = 'job') FROM feature3.metrics_storage_efficiency "
        "GROUP BY vbr_host ORDER BY vbr_host",
    )
    assert [row[0] for row in scored] == sorted(hosts)
    assert all(jobs >= 1 for _, jobs in scored), scored


@pytest.mark.ssh
def test_ssh_collector_two_hosts(monkeypatch, results_db, fake_pwsh, sshd, tmp_path):
    hosts = ["127.0.0.1", "127.0.0.2"]  # two loopback addresses of the one sshd; the DAG swaps them in as the host
    pwsh, calls = install_round_robin_pwsh(fake_pwsh, tmp_path, hosts)
    connection = {
        "conn_type": "ssh",
        "host": "vbr.invalid",  # replaced by each vbr_hosts entry
        "port": sshd.port,
        "login": sshd.login,
        # host_key is registered under whichever host the hook connects to: valid for both names
        "extra": {"key_file": str(sshd.client_key), "look_for_keys": "false", "host_key": sshd.host_public_key},
    }
    monkeypatch.setenv("AIRFLOW_CONN_VBR_SSH", json.dumps(connection))

    states = run_dag(
        monkeypatch,
        results_dsn=results_db,
        replay_dir=tmp_path / "unused",
        logical_date=RUN_DATE,
        conf={"collector": "ssh", "vbr_hosts": hosts, "pwsh_path": str(pwsh)},
    )

    assert_both_hosts_scored(states, results_db, hosts)
    made = calls_of(calls)
    # each host got its own document (a retried collect would get it again, not the next host's)
    assert {call["reached"][0] for call in made} == set(hosts)
    assert all(call["document"].endswith(f"document-{hosts.index(call['reached'][0]) + 1}.json") for call in made)
    for call in made:
        assert call["cwd"] == str(sshd.home)  # run in the login directory...
        name = call["argv"][3]
        assert name.startswith("veeam_efficiency_") and name.endswith(".ps1")
        assert not (sshd.home / name).exists()  # ...and the temp script removed again
    assert made[0]["argv"][3] != made[1]["argv"][3]


def test_local_collector_two_hosts(monkeypatch, results_db, fake_pwsh, tmp_path):
    hosts = ["vbr-a", "vbr-b"]
    pwsh, calls = install_round_robin_pwsh(fake_pwsh, tmp_path, hosts)

    states = run_dag(
        monkeypatch,
        results_dsn=results_db,
        replay_dir=tmp_path / "unused",
        logical_date=RUN_DATE,
        conf={"collector": "local", "vbr_hosts": hosts, "pwsh_path": str(pwsh)},
    )

    assert_both_hosts_scored(states, results_db, hosts)
    made = calls_of(calls)
    assert len(made) == 2
    assert all(call["argv"][4:8] == ["-From", "2026-10-28T00:00:00Z", "-To", "2026-11-27T00:00:00Z"] for call in made)
