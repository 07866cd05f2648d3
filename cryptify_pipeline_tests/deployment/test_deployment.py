"""The production layout in docker/, run here without Docker: the code server with the exact
command its container runs, the webserver and daemon loading it over gRPC through
docker/workspace.yaml's layout, and a static check of the compose file, the Dockerfile and the
instance config they share. Only the container runtime itself is not exercised."""

import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

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


def env_names_in_instance() -> set[str]:
    """Every environment variable docker/dagster.yaml reads, directly or for run containers."""
    text = (DOCKER / "dagster.yaml").read_text()
    config = yaml.safe_load(text)
    names = set(re.findall(r"env:\s*(\w+)", text))
    names |= set(config["run_launcher"]["config"]["env_vars"])
    return names


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
    base = re.search(r"^FROM (\S+)", (DOCKER / "Dockerfile").read_text(), re.M)[1]
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
        if not volume.startswith("/")
    }
    assert used <= set(COMPOSE["volumes"])
    launcher = yaml.safe_load((DOCKER / "dagster.yaml").read_text())["run_launcher"]["config"]
    run_volumes = {v.split(":")[0] for v in launcher["container_kwargs"]["volumes"]}
    assert run_volumes <= {(COMPOSE["volumes"][v] or {}).get("name", v) for v in COMPOSE["volumes"]}
    assert COMPOSE["networks"]["cryptify"]["name"] == launcher["network"]
    assert SERVICES["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql"]
    assert "healthcheck" in SERVICES["postgres"]


def test_every_variable_the_instance_reads_is_set_for_the_dagster_services():
    needed = env_names_in_instance()
    assert {"CRYPTIFY_IMAGE", "DATABASE_URL", "CRYPTIFY_SCHEMA"} <= needed
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
    assert {"DATABASE_URL", "CRYPTIFY_SCHEMA", "CRYPTIFY_SYMBOLS"} <= set(environment)
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
    process.wait(30)
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
    assert (server["host"], server["port"]) == ("code-server", 4000)
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
