"""The production layout in docker/, run here without Docker: the code server with the exact
command its container runs, the webserver and daemon loading it over gRPC through
docker/workspace.yaml's layout, and static checks of the compose file, the Dockerfile, the
instance config, the Helm values and .dockerignore. The containers themselves run in
test_production_stack.py (make test-deploy)."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from cryptify_pipeline_tests.support.database import run_sql, subprocess_env
from cryptify_pipeline_tests.support.live_deployment import ROOT, free_port, live_deployment

DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DAGSTER_SERVICES = ("code-server", "webserver", "daemon", "celery-worker")
IMAGE_SERVICES = (*DAGSTER_SERVICES, "api")
INSTANCE = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
LAUNCHER = INSTANCE["run_launcher"]["config"]
HELM = yaml.safe_load((DOCKER / "helm-values.yaml").read_text())
STORAGE = "/opt/dagster/home/storage"  # the compute logs: DAGSTER_HOME's storage
KEY = "ab" * 32  # a model signing key of the accepted form
# the variables of the services themselves; every other one is a setting that runs need too
SERVICE_ONLY = {
    "DAGSTER_HOME", "CRYPTIFY_IMAGE", "CRYPTIFY_CODE_SERVER_HOST", "CRYPTIFY_CODE_SERVER_PORT",
    "CRYPTIFY_RUN_NETWORK",
}  # fmt: skip


def env_names_in_instance() -> set[str]:
    """Every environment variable docker/dagster.yaml reads, directly or for run containers."""
    text = (DOCKER / "dagster.yaml").read_text()
    config = yaml.safe_load(text)
    names = set(re.findall(r"env:\s*(\w+)", text))
    names |= set(config["run_launcher"]["config"]["env_vars"])
    return names


def env_example() -> dict[str, str]:
    return {
        key: value.strip("'")
        for key, _, value in (
            line.partition("=")
            for line in (DOCKER / ".env.example").read_text().splitlines()
            if line and not line.startswith("#")
        )
    }


def interpolated(environment: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution, from ``values``."""

    def substitute(match: re.Match) -> str:
        name, operator, rest = match[1], match[2], match[3]
        if values.get(name):
            return values[name]
        assert operator != ":?", f"{name} is required: {rest}"
        return rest if operator == ":-" else ""

    pattern = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")
    return {key: pattern.sub(substitute, str(value)) for key, value in environment.items()}


def test_compose_has_the_services_and_they_share_the_image():
    assert {"postgres", "code-server", "webserver", "daemon", "api"} <= set(SERVICES)
    images = {SERVICES[name]["image"] for name in IMAGE_SERVICES}
    assert images == {"${CRYPTIFY_IMAGE:-cryptify-pipeline:0.1.0}"}
    assert SERVICES["code-server"]["build"]["dockerfile"] == "docker/Dockerfile"


def test_every_image_tag_is_pinned():
    for name, service in SERVICES.items():
        image = service["image"].split(":-", 1)[-1].rstrip("}")
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {service['image']}"
        if name in ("postgres", "redis"):
            assert re.match(r"^\d+\.\d+(\.\d+)?-", tag), f"{name}: pin a full version, not {tag}"
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)[1]  # the official image
    assert re.match(r"^python:3\.11\.\d+-slim", base), base


def test_ports_volumes_and_network_are_declared():
    assert SERVICES["webserver"]["ports"] == [
        "${CRYPTIFY_WEBSERVER_BIND:-127.0.0.1}:${CRYPTIFY_WEBSERVER_PORT:-3000}:3000"
    ]
    assert "-p" in SERVICES["code-server"]["command"]
    used = {
        volume.split(":")[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if not volume.startswith(("/", "$", "./"))  # bind mounts of host paths
    }
    assert used <= set(COMPOSE["volumes"])
    run_volumes = {v.split(":")[0] for v in LAUNCHER["container_kwargs"]["volumes"]}
    assert run_volumes <= {(COMPOSE["volumes"][v] or {}).get("name", v) for v in COMPOSE["volumes"]}
    # run containers join the services' network, by its fixed name
    assert LAUNCHER["network"] == {"env": "CRYPTIFY_RUN_NETWORK"}
    network = COMPOSE["networks"]["default"]["name"]
    assert SERVICES["daemon"]["environment"]["CRYPTIFY_RUN_NETWORK"] == network
    assert SERVICES["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql"]
    assert "healthcheck" in SERVICES["postgres"]
    # docker-compose 1.x refuses a top-level name: the project is named with -p cryptify
    assert "name" not in COMPOSE
    assert "-p cryptify" in (DOCKER / "docker-compose.yml").read_text()


def test_every_process_that_writes_compute_logs_mounts_the_shared_volume():
    """Runs, sensors (code server) and Celery steps write compute logs; the webserver reads
    them. A process without the volume writes logs the UI never shows."""
    volume = COMPOSE["volumes"]["cryptify-dagster-storage"]["name"]
    for name in DAGSTER_SERVICES:
        assert f"cryptify-dagster-storage:{STORAGE}" in SERVICES[name]["volumes"], name
    assert f"{volume}:{STORAGE}" in LAUNCHER["container_kwargs"]["volumes"]


def test_run_containers_skip_the_image_health_check_and_keep_their_logs():
    kwargs = LAUNCHER["container_kwargs"]
    # the image's HEALTHCHECK is the code server's gRPC probe: a run would report unhealthy
    assert kwargs["healthcheck"] == {"test": ["NONE"]}
    assert "HEALTHCHECK" in (DOCKER / "Dockerfile").read_text()
    # auto_remove deletes a container that dies at start, with its logs
    assert not kwargs.get("auto_remove")


def test_only_the_webserver_and_daemon_reach_the_docker_socket_through_its_group():
    for name, service in SERVICES.items():
        sockets = [v for v in service.get("volumes", []) if v.endswith(":/var/run/docker.sock")]
        if name in ("webserver", "daemon"):
            assert sockets == ["${DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock"]
            # uid 10001 and a root:docker 660 socket: the socket's group, not root
            assert service["group_add"] == ["${DOCKER_GID:?set in docker/.env to the group of "
                                            "the Docker socket}"]  # fmt: skip
        else:
            assert not sockets and "group_add" not in service, name
    with pytest.raises(AssertionError, match="DOCKER_GID is required"):
        interpolated({"g": SERVICES["daemon"]["group_add"][0]}, {**env_example(), "DOCKER_GID": ""})


def test_the_database_reaches_the_services_as_parts_whatever_the_password():
    """A password pasted into a URL broke at '@' and leaked its tail; as DB_* parts the
    settings get it intact."""
    from cryptify_pipeline.settings import load_settings

    text = (DOCKER / "docker-compose.yml").read_text()
    assert not re.search(r"(?<![A-Z_])DATABASE_URL", text)  # the API's own role may be a URL
    password = "p@ss/w:rd#1%$x?&="
    values = {**env_example(), "POSTGRES_PASSWORD": password, "CRYPTIFY_MODEL_SIGNING_KEY": KEY}
    for name in DAGSTER_SERVICES:
        env = interpolated(SERVICES[name]["environment"], values)
        url = load_settings(env).database.url
        parts = url.parts()
        assert (parts["host"], parts["port"], parts["database"]) == ("postgres", 5432, "cryptify")
        assert parts["password"] == password and env["DB_PASSWORD"] == password
        # and libpq (psycopg2, ADBC) reads it back from the URL the pipeline builds
        assert psycopg2.extensions.parse_dsn(url.libpq)["password"] == password
    assert {"DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME"} <= set(LAUNCHER["env_vars"])


@pytest.mark.integration  # runs on the test database
def test_every_setting_reaches_the_services_and_every_run():
    settings = (ROOT / "cryptify_pipeline" / "settings.py").read_text()
    read = set(re.findall(r'"((?:CRYPTIFY|DB)_[A-Z_]+)"', settings))
    read -= {"CRYPTIFY_EMBEDDED_PG_DIR"}  # a deployment has a database server
    read -= {"CRYPTIFY_API_DATABASE_URL", "CRYPTIFY_API_CORS_ORIGINS"}  # the API service's own
    assert {"CRYPTIFY_GAP_REPAIR_DAYS", "CRYPTIFY_PRICE_JUMP_BOUND", "DB_PASSWORD"} <= read
    for name in DAGSTER_SERVICES:
        environment = set(SERVICES[name]["environment"])
        assert read <= environment, f"{name} lacks {sorted(read - environment)}"
        assert environment - SERVICE_ONLY - {"OMP_NUM_THREADS"} <= set(LAUNCHER["env_vars"])


def test_a_deployment_never_falls_back_to_an_embedded_database():
    """CRYPTIFY_DEPLOYMENT=production makes an unset database an error at load: compose, the
    run containers and Helm set it, and the README says so."""
    for name in DAGSTER_SERVICES:
        assert SERVICES[name]["environment"]["CRYPTIFY_DEPLOYMENT"] == "production", name
    assert "CRYPTIFY_DEPLOYMENT" in LAUNCHER["env_vars"]
    (deployment,) = HELM["dagster-user-deployments"]["deployments"]
    assert deployment["env"]["CRYPTIFY_DEPLOYMENT"] == "production"
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    launcher = HELM["runLauncher"]["config"]["k8sRunLauncher"]
    assert "CRYPTIFY_DEPLOYMENT=production" in launcher["envVars"]
    assert "CRYPTIFY_DEPLOYMENT=production" in (ROOT / "README.md").read_text()


def test_helm_has_the_same_limits_secrets_and_fresh_images():
    limits = HELM["concurrency"]
    assert limits["enabled"]
    assert limits["pools"] == {
        "defaultLimit": INSTANCE["concurrency"]["pools"]["default_limit"],
        "granularity": INSTANCE["concurrency"]["pools"]["granularity"],
    }
    runs = INSTANCE["concurrency"]["runs"]
    assert limits["runs"]["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert [
        {"key": limit["key"], "value": limit["value"], "limit": limit["limit"]}
        for limit in limits["runs"]["tagConcurrencyLimits"]
    ] == [
        {"key": limit["key"], "value": {"applyLimitPerUniqueValue": True}, "limit": limit["limit"]}
        for limit in runs["tag_concurrency_limits"]
    ]
    # the chart refuses run limits in both places
    assert "maxConcurrentRuns" not in str(HELM["dagsterDaemon"]["runCoordinator"])
    text = (DOCKER / "helm-values.yaml").read_text()
    # generatePostgresqlPasswordSecret: false means the operator creates the chart's secret
    assert HELM["generatePostgresqlPasswordSecret"] is False
    assert "kubectl create secret generic dagster-postgresql-secret" in text
    assert "postgresql-password" in text
    assert "kubectl create secret generic cryptify-env" in text
    # a fixed tag with IfNotPresent serves whatever a node cached: a tag per build, pulled
    (deployment,) = HELM["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["pullPolicy"] == "Always"
    assert not re.match(r"^\d+(\.\d+)*$", str(deployment["image"]["tag"]))
    assert "image.tag=$(git rev-parse --short HEAD)" in text
    # the secret's documented variables give the settings a database
    from cryptify_pipeline.settings import load_settings

    k8s = {
        key: value
        for key, _, value in (
            line.partition("=")
            for line in (DOCKER / "k8s.env.example").read_text().splitlines()
            if line and not line.startswith("#")
        )
    }
    k8s["CRYPTIFY_MODEL_SIGNING_KEY"] = KEY  # left for the operator to generate
    assert load_settings({**k8s, "CRYPTIFY_DEPLOYMENT": "production"}).database.url is not None


def test_the_build_context_leaves_out_secrets_and_local_state():
    """Static: the patterns are there (test_production_stack.py builds a context for real)."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # nothing enters unless let back in
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"docker/", "pyproject.toml", "README.md", "cryptify_pipeline/"}
    copied = re.findall(r"^COPY (.+) \S+$", (DOCKER / "Dockerfile").read_text(), re.M)
    for source in " ".join(copied).split():
        assert any(source.startswith(path.rstrip("/")) for path in allowed), source
    # after the allow-list (later lines win): never these, at any depth
    last_allow = max(i for i, line in enumerate(lines) if line.startswith("!"))
    denied = set(lines[last_allow + 1 :])
    for pattern in ("**/.env", "**/.env.*", "**/.cryptify", "**/.venv", "**/__pycache__",
                    "**/.pytest_cache", "**/*.zip", "**/*.csv"):  # fmt: skip
        assert pattern in denied, pattern


def test_every_variable_the_instance_reads_is_set_for_the_dagster_services():
    needed = env_names_in_instance()
    assert {"CRYPTIFY_IMAGE", "CRYPTIFY_RUN_NETWORK", "DB_PASSWORD", "CRYPTIFY_SCHEMA"} <= needed
    workspace = (DOCKER / "workspace.yaml").read_text()
    needed |= set(re.findall(r"env:\s*(\w+)", workspace))
    assert {"CRYPTIFY_CODE_SERVER_HOST", "CRYPTIFY_CODE_SERVER_PORT"} <= needed
    for name in DAGSTER_SERVICES:
        missing = needed - set(SERVICES[name]["environment"])
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_the_api_service_serves_the_tables_with_a_health_check():
    api = SERVICES["api"]
    assert api["command"] == ["cryptify", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert api["ports"] == ["${CRYPTIFY_API_BIND:-127.0.0.1}:${CRYPTIFY_API_PORT:-8000}:8000"]
    assert "http://127.0.0.1:8000/health" in " ".join(api["healthcheck"]["test"])
    assert api["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    environment = api["environment"]
    assert {"DB_HOST", "DB_PASSWORD", "CRYPTIFY_SCHEMA", "CRYPTIFY_SYMBOLS"} <= set(environment)
    assert {"CRYPTIFY_API_DATABASE_URL", "CRYPTIFY_API_CORS_ORIGINS"} <= set(environment)
    assert (
        environment["CRYPTIFY_SCHEMA"] == SERVICES["code-server"]["environment"]["CRYPTIFY_SCHEMA"]
    )


def test_every_compose_variable_is_in_the_env_example():
    text = (DOCKER / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{(\w+)", text))
    example = {
        line.split("=", 1)[0]
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert referenced <= example, sorted(referenced - example)
    assert "change-me" in (DOCKER / ".env.example").read_text()  # no real password in git
    assert "docker/.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_dockerfile_runs_as_a_user_and_checks_the_code_server():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("CMD", 1)[1]
    assert "dagster api grpc-health-check" in healthcheck
    assert "ENV" in dockerfile and "CRYPTIFY_CODE_SERVER_PORT=4000" in dockerfile
    assert "-r docker/requirements.lock" in dockerfile  # the pinned install
    lock = (DOCKER / "requirements.lock").read_text()
    assert "dagster==1.13.27" in lock and "dagster-docker==0.29.27" in lock


def test_instance_config_is_valid_for_dagster(tmp_path):
    (tmp_path / "dagster.yaml").write_text((DOCKER / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "DockerRunLauncher"
    from dagster_docker import DockerRunLauncher  # installed with the [docker] extra

    assert DockerRunLauncher.config_type() is not None
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    shared = ("concurrency", "run_retries")
    docker = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    assert {key: docker[key] for key in shared} == {key: local[key] for key in shared}


@pytest.fixture
def code_server(tmp_path):
    """The code-server service's own command, on a free local port."""
    port = free_port()
    command = list(SERVICES["code-server"]["command"])
    command[command.index("-h") + 1] = "127.0.0.1"
    command[command.index("-p") + 1] = str(port)
    env = {
        **subprocess_env(),
        "CRYPTIFY_AUTOMATION": "off",
        "CRYPTIFY_SCHEMA": f"ds_{uuid.uuid4().hex[:8]}",
    }
    log = (tmp_path / "code-server.log").open("w")
    process = subprocess.Popen(
        [str(BIN / command[0]), *command[1:]], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    healthcheck = (DOCKER / "Dockerfile").read_text().split("HEALTHCHECK", 1)[1]
    probe = shlex.split(re.search(r"CMD (dagster api grpc-health-check[^|]*)", healthcheck)[1])
    probe = [str(BIN / "dagster"), *probe[1:-1], str(port)]  # the port from the environment
    deadline = time.monotonic() + 120
    while subprocess.run(probe, capture_output=True).returncode != 0:
        assert process.poll() is None, (tmp_path / "code-server.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "the code server did not answer its health check"
        time.sleep(0.5)
    yield port, env
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:  # a loaded machine; the test itself has its answer
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    log.close()


@pytest.mark.live
def test_the_api_service_command_passes_its_health_check(tmp_path):
    """The api service's own command on a free local port, probed by its own health check."""
    port = free_port()
    command = list(SERVICES["api"]["command"])
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    env = subprocess_env(CRYPTIFY_SCHEMA=f"ds_{uuid.uuid4().hex[:8]}")  # empty: still healthy
    probe = list(SERVICES["api"]["healthcheck"]["test"][1:])
    probe = [sys.executable, *probe[1:-1], probe[-1].replace(":8000/", f":{port}/")]
    with (tmp_path / "api.log").open("w") as log:
        process = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(probe, capture_output=True).returncode != 0:
            assert process.poll() is None, (tmp_path / "api.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the api did not answer its health check"
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(30)


@pytest.mark.live
def test_webserver_and_daemon_run_a_job_through_the_code_server(code_server, tmp_path):
    port, env = code_server
    schema = env["CRYPTIFY_SCHEMA"]
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    environment = SERVICES["webserver"]["environment"]
    address = [environment[server[key]["env"]] for key in ("host", "port")]
    assert address == ["code-server", "4000"]
    assert (
        SERVICES["code-server"]["command"][SERVICES["code-server"]["command"].index("-p") + 1]
        == "4000"
    )
    server.update(host="127.0.0.1", port=port)
    workspace_file = tmp_path / "workspace.yaml"
    workspace_file.write_text(yaml.safe_dump(workspace))
    try:
        with live_deployment(
            tmp_path / "home", f"{schema}_dagster", env, workspace_file=workspace_file,
            instance_file=DOCKER / "dagster.yaml", instance_without=("run_launcher",),
        ) as live:  # fmt: skip
            assert live.client.repository() == ("cryptify_pipeline", "__repository__")
            run_id = live.client.launch_run("collect_job", partition="2025-01-02-03:00")
            assert live.wait_for_run(run_id).status == "SUCCESS"
        assert run_sql(f'SELECT count(*) FROM "{schema}".candles') == [(2,)]
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')
