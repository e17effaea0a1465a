"""The docker-compose deployment: rendered offline by ``docker-compose config``, then checked.

Needs the ``docker-compose`` command (Debian package ``docker-compose``, 1.29) or the Compose v2
plugin (``docker compose``); no Docker engine is used. The file is rendered with a copy of
``.env.example`` as its only environment, so what is checked is what a new deployment gets.
The checks on the raw files (no literal password, .env.example complete, init script) need
no Compose at all; the init script is also run against a throw-away PostgreSQL cluster when
the PostgreSQL server binaries are installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
INITDB_DIR = ROOT / "include" / "compose" / "postgres-initdb"
INIT_SCRIPT = INITDB_DIR / "10-veeam-results-db.sh"
SQL_DIR = ROOT / "include" / "sql"

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)
REQUIRED_SERVICES = ("postgres", "redis", *AIRFLOW_SERVICES)
LONG_RUNNING = ("postgres", "redis", *(s for s in AIRFLOW_SERVICES if s != "airflow-init"))
CODE_MOUNTS = ("/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include")
XCOM_BACKEND = "airflow.providers.common.io.xcom.backend.XComObjectStorageBackend"
CONNECTION_VARS = ("AIRFLOW_CONN_POSTGRES_DEFAULT", "AIRFLOW_CONN_VBR_SSH", "AIRFLOW_CONN_SMTP_DEFAULT")
DAG_VARS = (
    "VEEAM_COLLECTOR",
    "VEEAM_VBR_HOSTS",
    "VEEAM_REPLAY_DIR",
    "VEEAM_ALERT_RECIPIENTS",
    "VEEAM_RUN_DEADLINE_MINUTES",
)
PROFILES = ("debug", "flower")  # so that Compose v2 renders the optional services too


# --------------------------------------------------------------------------- helpers


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def _render(env_file: Path) -> subprocess.CompletedProcess[str]:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker-compose` (apt-get install docker-compose) nor `docker compose` is on PATH")
    profiles = [arg for profile in PROFILES for arg in ("--profile", profile)]
    # Only the env file feeds interpolation: no POSTGRES_PASSWORD etc. leaking from the caller's shell.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}
    return subprocess.run(
        [
            *command,
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            *profiles,
            "config",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def _env_assignments(text: str) -> dict[str, str]:
    """KEY=value lines of a dotenv file, with surrounding single or double quotes removed."""
    values = {}
    for line in text.splitlines():
        match = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match:
            value = match.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[match.group(1)] = value
    return values


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _compose_variables(text: str) -> set[str]:
    """Names of the variables Compose interpolates: ${NAME...} and $NAME, but not the escaped $$."""
    text = _without_comments(text).replace("$$", "")
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)) | set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))


def _mounts(service: dict) -> dict[str, str]:
    """Container target -> source, for the short ("src:dst[:mode]") and long volume syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts[target] = source
    return mounts


def _environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):  # KEY=value list form
        environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def _airflow_services(config: dict) -> list[str]:
    extra = [name for name in config["services"] if name.startswith("airflow-") or name == "flower"]
    return sorted(set(AIRFLOW_SERVICES) | set(extra))


# A value that holds no secret itself: ${VAR}, ${VAR:?message}, ${VAR?message} or ${VAR:-} (empty default).
_SAFE_SECRET = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*|:?-)?\}$")
_SECRET_KEY = re.compile(r"(?i)(pass(word|wd)?|secret|fernet|token|private_key|api_key|jwt)")
_URL_USERINFO = re.compile(r"[a-z0-9+.-]+://[^\s/@:]*:([^\s/@]*)@", re.IGNORECASE)
_JSON_PASSWORD = re.compile(r'"(?:password|passwd|secret|private_key)"\s*:\s*"([^"]*)"', re.IGNORECASE)


def literal_secrets(text: str) -> list[str]:
    """Lines of a compose file that put a secret value in the file instead of taking it from the env."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        match = re.match(r"^\s*(?:-\s*)?[\"']?([A-Za-z_][A-Za-z0-9_.-]*)[\"']?\s*[:=]\s*(.*?)\s*$", line)
        if match and _SECRET_KEY.search(match.group(1)):
            value = match.group(2).strip("'\"")
            if value and not _SAFE_SECRET.match(value):
                found.append(f"{number}: {line.strip()}")
                continue
        for secret in (*_URL_USERINFO.findall(line), *_JSON_PASSWORD.findall(line)):
            if secret and not _SAFE_SECRET.match(secret):
                found.append(f"{number}: {line.strip()}")
                break
    return found


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return _env_assignments(ENV_EXAMPLE.read_text())


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    result = _render(env_file)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    rendered = yaml.safe_load(result.stdout)
    assert isinstance(rendered, dict) and "services" in rendered, result.stdout[:2000]
    return rendered


# --------------------------------------------------------------------------- the rendered stack


def test_required_services_exist(config: dict) -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in config["services"]]
    assert not missing, f"services missing from docker-compose.yaml: {missing}"


def test_airflow_services_mount_dags_plugins_include(config: dict) -> None:
    problems = []
    for name in _airflow_services(config):
        mounts = _mounts(config["services"][name])
        for target in CODE_MOUNTS:
            source = mounts.get(target)
            expected = ROOT / target.rsplit("/", 1)[1]
            if source is None:
                problems.append(f"{name}: nothing mounted at {target}")
            elif Path(source).resolve() != expected:
                problems.append(f"{name}: {target} mounts {source}, expected {expected}")
    assert not problems, "\n".join(problems)


def test_every_airflow_service_uses_the_celery_executor(config: dict) -> None:
    executors = {
        name: _environment(config["services"][name]).get("AIRFLOW__CORE__EXECUTOR")
        for name in _airflow_services(config)
    }
    wrong = {name: executor for name, executor in executors.items() if executor != "CeleryExecutor"}
    assert not wrong, f"AIRFLOW__CORE__EXECUTOR is not CeleryExecutor on: {wrong}"
    for name in _airflow_services(config):
        assert _environment(config["services"][name]).get("AIRFLOW__CELERY__BROKER_URL", "").startswith("redis://"), (
            f"{name}: no Redis Celery broker"
        )


def test_every_airflow_service_shares_the_settings_the_stack_needs(config: dict) -> None:
    problems = []
    for name in _airflow_services(config):
        env = _environment(config["services"][name])
        if env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL") != "http://airflow-apiserver:8080/execution/":
            problems.append(f"{name}: AIRFLOW__CORE__EXECUTION_API_SERVER_URL")
        if env.get("AIRFLOW__CORE__LOAD_EXAMPLES", "").lower() != "false":
            problems.append(f"{name}: AIRFLOW__CORE__LOAD_EXAMPLES is not 'false'")
        for key in (
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__API__SECRET_KEY",
            "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        ):
            if not env.get(key):
                problems.append(f"{name}: {key} not set")
    assert not problems, "\n".join(problems)


def test_xcom_object_storage_backend_on_every_airflow_service(config: dict) -> None:
    import fsspec.utils

    problems = []
    for name in _airflow_services(config):
        service = config["services"][name]
        env = _environment(service)
        if env.get("AIRFLOW__CORE__XCOM_BACKEND") != XCOM_BACKEND:
            problems.append(f"{name}: AIRFLOW__CORE__XCOM_BACKEND={env.get('AIRFLOW__CORE__XCOM_BACKEND')!r}")
        path = env.get("AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH", "")
        if path != "file:///opt/airflow/xcom":
            problems.append(f"{name}: AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH={path!r}")
        threshold = env.get("AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_THRESHOLD", "")
        if not threshold.isdigit() or int(threshold) <= 0:
            problems.append(f"{name}: XCOM_OBJECTSTORAGE_THRESHOLD={threshold!r} (want a positive byte count)")
        compression = env.get("AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_COMPRESSION", "")
        # the backend looks the codec up among fsspec's codec *names* ("gzip", not the suffix "gz")
        if compression not in fsspec.utils.compressions.values():
            problems.append(f"{name}: XCOM_OBJECTSTORAGE_COMPRESSION={compression!r} is no fsspec codec")
        source = _mounts(service).get("/opt/airflow/xcom")
        if source != "airflow-xcom":
            problems.append(f"{name}: the shared volume airflow-xcom is not mounted at /opt/airflow/xcom ({source})")
    assert not problems, "\n".join(problems)
    assert "airflow-xcom" in (config.get("volumes") or {}), "named volume airflow-xcom is not declared"


def test_connections_and_dag_settings_on_every_airflow_service(config: dict, env_example: dict) -> None:
    problems = []
    for name in _airflow_services(config):
        env = _environment(config["services"][name])
        problems += [f"{name}: {key} not in environment" for key in (*CONNECTION_VARS, *DAG_VARS) if key not in env]
    assert not problems, "\n".join(problems)

    env = _environment(config["services"]["airflow-worker"])
    results = urlsplit(env["AIRFLOW_CONN_POSTGRES_DEFAULT"])
    assert (results.scheme, results.username, results.hostname, results.port, results.path) == (
        "postgresql",
        "veeam_efficiency",
        "postgres",
        5432,
        "/veeam_efficiency",
    ), env["AIRFLOW_CONN_POSTGRES_DEFAULT"]
    assert unquote(results.password or "") == env_example["VEEAM_RESULTS_DB_PASSWORD"]

    ssh = json.loads(env["AIRFLOW_CONN_VBR_SSH"])
    assert ssh["conn_type"] == "ssh" and ssh["host"], ssh
    assert ssh["extra"].get("host_key"), "the VBR SSH connection must pin the host key (extra.host_key)"
    assert str(ssh["extra"].get("no_host_key_check", False)).lower() == "false"

    assert env["VEEAM_REPLAY_DIR"] == "/opt/airflow/include/sample_data"
    assert env["VEEAM_COLLECTOR"] == "ssh"  # a deployed stack collects from its VBR server, never the samples
    assert int(env["VEEAM_RUN_DEADLINE_MINUTES"]) > 0


def test_results_database_init_script_is_mounted(config: dict) -> None:
    postgres = config["services"]["postgres"]
    mounts = _mounts(postgres)
    initdb = mounts.get("/docker-entrypoint-initdb.d")
    assert initdb is not None, "postgres: nothing mounted at /docker-entrypoint-initdb.d"
    assert Path(initdb).resolve() == INITDB_DIR, initdb
    assert sorted(p.name for p in INITDB_DIR.glob("*.sh")), f"no init script in {INITDB_DIR}"
    assert Path(mounts.get("/opt/veeam/sql", "/nonexistent")).resolve() == SQL_DIR, "include/sql not mounted"
    env = _environment(postgres)
    assert env.get("VEEAM_RESULTS_DB_PASSWORD") and env.get("POSTGRES_PASSWORD")


def test_celery_settings_and_pool_are_what_the_scale_out_test_ran(config: dict) -> None:
    """tests/operations/test_celery_scale_out.py: prefetch 1, results in PostgreSQL, the collector pool."""
    problems = []
    for name in _airflow_services(config):
        env = _environment(config["services"][name])
        if env.get("AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER") != "1":
            problems.append(f"{name}: AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER is not 1")
        if not env.get("AIRFLOW__CELERY__RESULT_BACKEND", "").startswith("db+postgresql://"):
            problems.append(f"{name}: the Celery result backend is not the PostgreSQL metadata database")
        if env.get("VEEAM_COLLECTOR_POOL") != "vbr_collectors":
            problems.append(f"{name}: VEEAM_COLLECTOR_POOL={env.get('VEEAM_COLLECTOR_POOL')!r}")
    assert not problems, "\n".join(problems)
    init = config["services"]["airflow-init"]
    command = "\n".join(init["command"]) if isinstance(init["command"], list) else str(init["command"])
    command = command.replace("$$", "$")  # Compose 1.29 renders the escaped $$ as is
    assert 'airflow pools get "${VEEAM_COLLECTOR_POOL}"' in command, command  # created only when missing
    assert 'airflow pools set "${VEEAM_COLLECTOR_POOL}" "${VEEAM_COLLECTOR_POOL_SLOTS}"' in command, command
    assert int(_environment(init)["VEEAM_COLLECTOR_POOL_SLOTS"]) > 0


def test_worker_is_scalable(config: dict) -> None:
    worker = config["services"]["airflow-worker"]
    assert "container_name" not in worker, "a container_name prevents --scale airflow-worker=N"
    assert not worker.get("ports"), f"published ports prevent --scale airflow-worker=N: {worker.get('ports')}"
    command = worker["command"] if isinstance(worker["command"], str) else " ".join(worker["command"])
    assert command == "celery worker"


def test_api_server_and_healthchecks(config: dict) -> None:
    api = config["services"]["airflow-apiserver"]
    command = api["command"] if isinstance(api["command"], str) else " ".join(api["command"])
    assert command == "api-server"
    targets = [int(p["target"]) if isinstance(p, dict) else int(str(p).rsplit(":", 1)[-1]) for p in api["ports"]]
    assert 8080 in targets
    missing = [name for name in LONG_RUNNING if not config["services"][name].get("healthcheck", {}).get("test")]
    assert not missing, f"services without a healthcheck: {missing}"


def test_airflow_services_build_this_repositorys_image(config: dict) -> None:
    problems = []
    for name in _airflow_services(config):
        build = config["services"][name].get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        if context is None or Path(context).resolve() != ROOT:
            problems.append(f"{name}: build context {context!r}")
    assert not problems, "\n".join(problems)
    assert "${AIRFLOW_IMAGE_NAME" in COMPOSE_FILE.read_text(), "image name must come from AIRFLOW_IMAGE_NAME"
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^FROM\s+apache/airflow:3\.3\.2-python3\.11\s*$", dockerfile, re.MULTILINE)
    assert re.search(r"pip install .*-r \S*requirements\.txt", dockerfile)


def test_a_missing_secret_fails_the_render(tmp_path: Path) -> None:
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("POSTGRES_PASSWORD=")]
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(lines) + "\n")
    result = _render(env_file)
    assert result.returncode != 0, "docker-compose config accepted an .env without POSTGRES_PASSWORD"
    assert "POSTGRES_PASSWORD" in result.stderr


# --------------------------------------------------------------------------- raw files (no Compose needed)


def test_no_literal_secret_in_the_compose_file() -> None:
    found = literal_secrets(COMPOSE_FILE.read_text())
    assert not found, "secrets must come from .env (${VAR:?...}), found:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        "      POSTGRES_PASSWORD: airflow",
        "      _AIRFLOW_WWW_USER_PASSWORD: ${_AIRFLOW_WWW_USER_PASSWORD:-airflow}",
        "    AIRFLOW__CORE__FERNET_KEY: 'c2VjcmV0'",
        "    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: postgresql+psycopg2://airflow:airflow@postgres/airflow",
        '    AIRFLOW_CONN_VBR_SSH: \'{"conn_type": "ssh", "password": "hunter2"}\'',
        "      - POSTGRES_PASSWORD=airflow",
    ],
)
def test_the_literal_secret_check_catches(line: str) -> None:
    assert literal_secrets(line), line


@pytest.mark.parametrize(
    "line",
    [
        "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it in .env}",
        "    AIRFLOW__CELERY__BROKER_URL: redis://:@redis:6379/0",
        "    AIRFLOW_CONN_POSTGRES_DEFAULT: postgresql://veeam:${VEEAM_RESULTS_DB_PASSWORD}@postgres:5432/x",
        "    AIRFLOW_CONN_SMTP_DEFAULT: ${AIRFLOW_CONN_SMTP_DEFAULT:-}",
        "    # POSTGRES_PASSWORD: airflow  (a comment)",
    ],
)
def test_the_literal_secret_check_allows(line: str) -> None:
    assert not literal_secrets(line), line


def test_env_example_documents_every_compose_variable(env_example: dict) -> None:
    referenced = _compose_variables(COMPOSE_FILE.read_text())
    assert {"POSTGRES_PASSWORD", "VEEAM_RESULTS_DB_PASSWORD", "AIRFLOW_CONN_VBR_SSH"} <= referenced, referenced
    missing = sorted(referenced - env_example.keys())
    assert not missing, f".env.example lacks variables docker-compose.yaml uses: {missing}"
    unused = sorted(env_example.keys() - referenced)
    assert not unused, f".env.example has variables docker-compose.yaml never uses: {unused}"

    lines = ENV_EXAMPLE.read_text().splitlines()
    undocumented = [
        line.split("=", 1)[0]
        for index, line in enumerate(lines)
        if re.match(r"^[A-Za-z_]\w*=", line) and (index == 0 or not lines[index - 1].lstrip().startswith("#"))
    ]
    assert not undocumented, f"variables in .env.example without a comment line above them: {undocumented}"


def test_env_example_holds_placeholders_only(env_example: dict) -> None:
    problems = []
    for key, value in env_example.items():
        if _SECRET_KEY.search(key) and value and not value.startswith("change-me"):
            problems.append(f"{key}={value}")
    ssh = json.loads(env_example["AIRFLOW_CONN_VBR_SSH"])
    if not str(ssh.get("password", "change-me")).startswith("change-me"):
        problems.append("AIRFLOW_CONN_VBR_SSH password")
    assert not problems, f"real-looking secrets in .env.example: {problems}"
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in [line.strip() for line in gitignore], ".env must be git-ignored"


# --------------------------------------------------------------------------- the results-DB init script


def test_init_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(INIT_SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_init_script_creates_database_and_non_superuser_role() -> None:
    script = INIT_SCRIPT.read_text()
    code = "\n".join(line for line in _without_comments(script).splitlines() if not line.lstrip().startswith("--"))
    assert re.search(r"CREATE DATABASE", code), "no CREATE DATABASE"
    assert re.search(r"^results_db=veeam_efficiency$", code, re.MULTILINE)
    assert re.search(r"^results_role=veeam_efficiency$", code, re.MULTILINE)
    assert re.search(r"^results_owner=veeam_efficiency_owner$", code, re.MULTILINE)
    assert re.search(r"CREATE ROLE", code), "no CREATE ROLE"
    for attribute in ("NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS"):
        assert attribute in code, f"role is not created {attribute}"
    granted = re.findall(r"(?<![A-Z])(SUPERUSER|CREATEDB|CREATEROLE|REPLICATION|BYPASSRLS)\b", code)
    assert not granted, f"the results role must not get {granted}"
    # the schema and its tables belong to a NOLOGIN owner; the DAG's role gets rows only (grants.sql)
    assert re.search(r'-v loader="\$results_role" -v owner="\$results_owner" -f "\$VEEAM_SQL_DIR/grants.sql"', code)
    assert not re.search(r"CREATE SCHEMA|GRANT[^;]*CREATE", code), "the DAG's role must not create schemas"
    assert "VEEAM_RESULTS_DB_PASSWORD" in code and "\\getenv" in code, "password must come from the env"


def _pg_binaries() -> dict[str, str] | None:
    found = {name: shutil.which(name) for name in ("initdb", "pg_ctl", "psql")}
    if not all(found.values()):
        for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if all((candidate / name).exists() for name in found):
                return {name: str(candidate / name) for name in found}
        return None
    return {name: str(path) for name, path in found.items()}


@pytest.mark.slow
def test_init_script_against_a_throwaway_cluster() -> None:
    """Runs the script like the postgres image does, twice, then uses the role as the DAG would."""
    binaries = _pg_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser")
        try:
            import pwd

            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the cluster as")
        as_user = ["runuser", "-u", "postgres", "--"]

    work = Path(tempfile.mkdtemp(prefix="veeam-initdb-"))
    try:
        shutil.copytree(INITDB_DIR, work / "initdb")
        shutil.copytree(SQL_DIR, work / "sql")
        (work / "pw").write_text("boot-secret\n")
        if as_user:
            for path in [work, *work.rglob("*")]:
                os.chown(path, pg_user.pw_uid, pg_user.pw_gid)
        base_env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "PGHOST": str(work), "PGPORT": "54329"}

        def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):
            return subprocess.run(
                [*as_user, "env", *(f"{k}={v}" for k, v in {**base_env, **(env or {})}.items()), *args],
                capture_output=True,
                text=True,
                input=stdin,
                timeout=120,
                check=False,
            )

        init = run(
            binaries["initdb"],
            "-D",
            str(work / "data"),
            "-U",
            "boot",
            "--pwfile",
            str(work / "pw"),
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
        )
        assert init.returncode == 0, init.stderr
        start = run(
            binaries["pg_ctl"],
            "-D",
            str(work / "data"),
            "-l",
            str(work / "log"),
            "-w",
            "-o",
            f"-p 54329 -k {work} -c listen_addresses=''",
            "start",
        )
        assert start.returncode == 0, start.stderr + (work / "log").read_text()
        try:
            role_password = "p@ss w'o\"rd$x"
            script_env = {
                "POSTGRES_USER": "boot",
                "POSTGRES_DB": "postgres",
                "PGPASSWORD": "boot-secret",
                "VEEAM_RESULTS_DB_PASSWORD": role_password,
                "VEEAM_SQL_DIR": str(work / "sql"),
            }
            for attempt in (1, 2):  # idempotent: a second run changes nothing and does not fail
                result = run("bash", str(work / "initdb" / INIT_SCRIPT.name), env=script_env)
                assert result.returncode == 0, f"run {attempt}:\n{result.stdout}\n{result.stderr}"

            def sql(query: str, user: str, password: str, database: str = "veeam_efficiency"):
                return run(
                    binaries["psql"],
                    "-X",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-Atq",
                    "-U",
                    user,
                    "-d",
                    database,
                    env={"PGPASSWORD": password},
                    stdin=query,
                )

            def super_sql(query: str) -> str:
                result = sql(query, "boot", "boot-secret")
                assert result.returncode == 0, result.stderr
                return result.stdout.strip()

            assert (
                super_sql(
                    "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
                    "FROM pg_roles WHERE rolname = 'veeam_efficiency'"
                )
                == "f|f|f|f|f|t"
            )
            assert super_sql("SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'feature3'") == (
                "veeam_efficiency_owner"
            )
            assert super_sql("SELECT has_database_privilege('public', 'veeam_efficiency', 'CONNECT')") == "f"

            # the role logs in with its password and may stage and write rows, as the DAG's load does
            as_role = sql(
                "CREATE TEMP TABLE staged (LIKE feature3.storage_efficiency_history);"
                "DELETE FROM feature3.metrics_storage_efficiency WHERE false;"
                "SELECT count(*) FROM feature3.storage_efficiency_history",
                "veeam_efficiency",
                role_password,
            )
            assert as_role.returncode == 0, as_role.stderr
            assert sql("SELECT 1", "veeam_efficiency", "wrong-password").returncode != 0
            # ... but can do nothing else
            for statement in (
                "CREATE DATABASE other",
                "CREATE ROLE other",
                "CREATE TABLE public.t (x int)",
                "CREATE SCHEMA other",
                "DROP TABLE feature3.storage_efficiency_history",
                "TRUNCATE feature3.metrics_storage_efficiency",
            ):
                denied = sql(statement, "veeam_efficiency", role_password)
                assert denied.returncode != 0, f"veeam_efficiency may {statement}"
            # nor can it open the bootstrap (Airflow metadata) database
            assert sql("SELECT 1", "veeam_efficiency", role_password, database="postgres").returncode != 0
        finally:
            run(binaries["pg_ctl"], "-D", str(work / "data"), "-m", "immediate", "stop")
            time.sleep(0.1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
