"""The production layout run for real, as the README's walk-through does it: a Docker engine, the
project image built from docker/Dockerfile, the stack brought up from docker/docker-compose.yml
and docker/.env.example's variables, and runs launched through GraphQL, each in its own container
by DockerRunLauncher.

What differs from a production host, and why: the engine is private to the test
(``docker_engine.py``); base images are stand-ins built here, since no registry is reachable
(``standins/``); every container uses the host network through ``compose.host-network.yml``,
since this machine may send traffic only to loopback; the exchange is the local fake Binance.

Root only, about five minutes and a few GB of disk, so it runs under ``make test-deploy``, not
``make test`` (docs/testing.md).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from cryptify_pipeline.cli.client import ClientError, CryptifyClient, Run
from cryptify_pipeline_tests.deployment.docker_engine import (
    Engine,
    build_debian_base,
    build_postgres_standin,
    build_project_image,
    build_python_standin,
    compose_stack,
    default_parent,
    docker_engine,
    free_port,
    git_tag,
    prerequisites,
)
from cryptify_pipeline_tests.support.fake_binance import FakeBinance
from cryptify_pipeline_tests.support.fake_bybit import FakeBybit
from cryptify_pipeline_tests.support.live_deployment import ROOT

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(
        os.environ.get("CRYPTIFY_DEPLOY_TEST") != "1",
        reason="the Docker engine test runs under make test-deploy (root, ~5 min, GBs of disk)",
    ),
]

DOCKER = ROOT / "docker"
OVERRIDE = Path(__file__).parent / "compose.host-network.yml"
PROJECT = "cryptify"  # docker compose -p cryptify, as the README says
SERVICES = ("postgres", "code-server", "webserver", "daemon", "api")
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
START = datetime(2025, 1, 1, tzinfo=UTC)
COLLECTED, CANCELLED = "2025-01-02-03:00", "2025-01-02-04:00"
# @ / : # % $ are what broke the password pasted into DATABASE_URL; it must reach Postgres intact
PASSWORD = "p@ss/w:rd#1%$x"
# not the defaults (7 and 0.2): seen in the runs, they prove the variables reach the containers
GAP_REPAIR_DAYS, PRICE_JUMP_BOUND = 3, 0.35
FREE_DISK_BYTES = 12 * 10**9  # overlay2 peaked at 6.5 GB; vfs takes about 18 GB


@dataclass
class Stack:
    engine: Engine
    client: CryptifyClient
    exchange: FakeBinance
    perpetuals: FakeBybit
    image: str
    debian: str
    env: dict[str, str]

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(self.engine.docker("inspect", container))[0]

    def service(self, name: str) -> dict[str, Any]:
        """``docker inspect`` of a compose service's container."""
        found = self.engine.docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}",
            "--filter", f"label=com.docker.compose.service={name}",
        ).split()  # fmt: skip
        assert len(found) == 1, f"{name}: containers {found}"
        return self.inspect(found[0])

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """A query on the stack's Postgres, as its services connect: by parts, no URL."""
        connection = psycopg2.connect(
            host="127.0.0.1", port=int(self.env["CRYPTIFY_TEST_POSTGRES_PORT"]),
            user=self.env["POSTGRES_USER"], password=PASSWORD, dbname=self.env["POSTGRES_DB"],
        )  # fmt: skip
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def wait_for_run(self, run_id: str, until: Callable[[Run], bool], timeout: float) -> Run:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.client.run(run_id)
            if until(run):
                return run
            time.sleep(1)
        log = "\n".join(f"{e.event_type}: {e.message[:300]}" for e in self.client.logs(run_id))
        raise AssertionError(f"run {run_id} is {self.client.run(run_id).status}:\n{log}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    missing = prerequisites()
    if missing:
        pytest.fail("make test-deploy needs " + "; ".join(missing))
    free = shutil.disk_usage(default_parent()).free
    if free < FREE_DISK_BYTES:
        pytest.fail(f"{default_parent()} has {free / 1e9:.0f} GB free; the engine needs 12")
    folder = tmp_path_factory.mktemp("deploy")
    started = time.monotonic()
    until = START + timedelta(days=3)
    with (
        docker_engine() as engine,
        FakeBinance(SYMBOLS, START, until) as exchange,
        FakeBybit(SYMBOLS, START, until) as perpetuals,
    ):
        debian = build_debian_base(engine)
        python = build_python_standin(engine, debian)
        postgres = build_postgres_standin(engine, debian)
        image = build_project_image(engine, python, f"cryptify-pipeline:{git_tag()}")
        env = {
            "POSTGRES_PASSWORD": PASSWORD,
            "CRYPTIFY_IMAGE": image,
            "DOCKER_SOCKET": str(engine.socket),
            "DOCKER_GID": str(engine.socket.stat().st_gid),
            "CRYPTIFY_SYMBOLS": ",".join(SYMBOLS),
            "CRYPTIFY_START": f"{START:%Y-%m-%d}",
            "CRYPTIFY_SOURCE": "binance",
            "CRYPTIFY_EXCHANGE_API_URL": exchange.api_url,
            "CRYPTIFY_CONTEXT_SOURCE": "bybit",
            "CRYPTIFY_CONTEXT_API_URL": perpetuals.api_url,
            "CRYPTIFY_EQUITY_INDEX_SOURCE": "none",  # yfinance has no URL setting to point here
            "CRYPTIFY_AUTOMATION": "off",
            "CRYPTIFY_GAP_REPAIR_DAYS": str(GAP_REPAIR_DAYS),
            "CRYPTIFY_PRICE_JUMP_BOUND": str(PRICE_JUMP_BOUND),
            "CRYPTIFY_MODEL_SIGNING_KEY": secrets.token_hex(32),
            "CRYPTIFY_TEST_POSTGRES_IMAGE": postgres,
            "CRYPTIFY_TEST_POSTGRES_PORT": str(free_port()),
            "CRYPTIFY_TEST_CODE_SERVER_PORT": str(free_port()),
            "CRYPTIFY_TEST_WEBSERVER_PORT": str(free_port()),
            "CRYPTIFY_TEST_API_PORT": str(free_port()),
        }
        env_file = folder / "docker.env"
        env = write_env_file(env_file, env)
        files = [DOCKER / "docker-compose.yml", OVERRIDE]
        with compose_stack(engine, files, env_file, PROJECT, folder / "compose.log"):
            client = CryptifyClient("127.0.0.1", int(env["CRYPTIFY_TEST_WEBSERVER_PORT"]))
            yield Stack(engine, client, exchange, perpetuals, image, debian, env)
            print(f"[deploy] engine root at its fullest: {engine.disk_use()}", flush=True)
        print(f"[deploy] {engine.storage_driver}; logs in {folder}", flush=True)
    print(f"[deploy] total, teardown included: {time.monotonic() - started:.0f} s", flush=True)


def write_env_file(path: Path, values: dict[str, str]) -> dict[str, str]:
    """docker/.env.example with ``values`` filled in, as an operator writes docker/.env; returns
    every variable of the file."""
    lines, written = [], {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        if key is None:
            lines.append(line)
            continue
        value = values.get(key, line.split("=", 1)[1].strip("'"))
        lines.append(f"{key}={_quoted(value)}")
        written[key] = value
    for key, value in values.items():
        if key not in written:
            lines.append(f"{key}={_quoted(value)}")
            written[key] = value
    path.write_text("\n".join(lines) + "\n")
    return written


def _quoted(value: str) -> str:
    # single quotes: read literally by docker-compose 1.x and Compose v2 alike
    assert "'" not in value
    return f"'{value}'" if re.search(r"[^\w./:,-]", value) else value


def test_every_service_turns_healthy(stack):
    started = time.monotonic()
    deadline = started + 600
    pending = set(SERVICES)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            if stack.service(name)["State"].get("Health", {}).get("Status") == "healthy":
                pending.discard(name)
        time.sleep(2)
    assert not pending, {name: stack.service(name)["State"] for name in pending}
    stack.engine.timed("all services healthy", time.monotonic() - started)
    # the webserver and the daemon run as uid 10001 in the socket's group, not as root
    gid = stack.env["DOCKER_GID"]
    for name in ("webserver", "daemon"):
        container = stack.service(name)
        assert container["Config"]["User"] == "cryptify"
        assert gid in container["HostConfig"]["GroupAdd"]
    assert _wait(lambda: _loaded(stack.client), 300), "the webserver never loaded the code"
    assert stack.client.repository() == ("cryptify_pipeline", "__repository__")


def test_collect_job_runs_in_its_own_container(stack):
    started = time.monotonic()
    requests_before = len(stack.exchange.kline_requests())
    run_id = stack.client.launch_run("collect_job", partition=COLLECTED)
    run = stack.wait_for_run(run_id, lambda run: run.finished, timeout=600)
    assert run.status == "SUCCESS", [e.message for e in stack.client.logs(run_id)][-10:]
    stack.engine.timed("collect_job in its container", time.monotonic() - started)

    container_id = run.tags["docker/container_id"]
    # the run worker reports success just before its process (the container) ends
    assert _wait(lambda: not stack.inspect(container_id)["State"]["Running"], 120)
    container = stack.inspect(container_id)
    assert container["Config"]["Image"] == stack.image == run.tags["dagster/image"]
    assert container["Config"]["Labels"]["dagster/run_id"] == run_id
    assert container["HostConfig"]["NetworkMode"] == "host"
    # no health check inherited from the code server's image, and kept after it exited
    assert container["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert "Health" not in container["State"]
    assert (container["State"]["Status"], container["State"]["ExitCode"]) == ("exited", 0)
    assert not container["HostConfig"]["AutoRemove"]
    env = dict(variable.split("=", 1) for variable in container["Config"]["Env"])
    assert env["CRYPTIFY_DEPLOYMENT"] == "production"
    assert env["DB_PASSWORD"] == PASSWORD and "DATABASE_URL" not in env
    mounts = {mount["Destination"]: mount.get("Name") for mount in container["Mounts"]}
    assert mounts["/opt/dagster/home/storage"] == "cryptify-dagster-storage"

    # the run container reached the exchange and wrote the hour's rows, as the services read them
    assert len(stack.exchange.kline_requests()) > requests_before
    hour = datetime.strptime(COLLECTED, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    rows = stack.sql("SELECT symbol FROM cryptify.candles WHERE ts = %s ORDER BY symbol", (hour,))
    assert rows == [(symbol,) for symbol in SYMBOLS]
    assert stack.sql("SELECT count(*) FROM cryptify.features WHERE ts = %s", (hour,)) == [(2,)]
    # and the context, from the perpetuals exchange through ccxt
    oi = stack.sql("SELECT symbol FROM cryptify.open_interest WHERE ts = %s ORDER BY 1", (hour,))
    assert oi == [(symbol,) for symbol in SYMBOLS]

    # its settings are the stack's: the checks ran with the configured bound and window
    checks = _check_metadata(stack.client, run_id)
    assert checks["candles_price_jumps"]["bound"] == pytest.approx(PRICE_JUMP_BOUND)
    window = re.findall(
        r"\d{4}-\d\d-\d\d \d\d:\d\d", checks["candles_complete"]["last_days_window"]
    )
    span = datetime.fromisoformat(window[1]) - datetime.fromisoformat(window[0])
    assert span == timedelta(days=GAP_REPAIR_DAYS)

    # its step output, written by the run container to the shared volume, is in the UI
    stderr = _captured_stderr(stack.client, run_id)
    assert run_id in stderr and 'Finished execution of step "candles"' in stderr, stderr[-2000:]


def test_a_terminated_run_stops_its_container(stack):
    stack.exchange.delay_seconds = 900  # the exchange hangs: the run is stuck in its step
    try:
        requests_before = len(stack.exchange.kline_requests())
        run_id = stack.client.launch_run("collect_job", partition=CANCELLED)
        stack.wait_for_run(
            run_id,
            lambda run: (
                run.status == "STARTED" and len(stack.exchange.kline_requests()) > requests_before
            ),
            timeout=600,
        )
        container_id = stack.client.run(run_id).tags["docker/container_id"]
        assert stack.inspect(container_id)["State"]["Running"]

        started = time.monotonic()
        stack.client.cancel(run_id)
        run = stack.wait_for_run(run_id, lambda run: run.finished, timeout=300)
        stack.engine.timed("terminate to CANCELED", time.monotonic() - started)
        assert run.status == "CANCELED"
        state = stack.inspect(container_id)["State"]
        assert not state["Running"] and state["Status"] == "exited"
        # the stopped container is kept, with its log
        assert 'Started execution of step "candles"' in stack.engine.logs(container_id)
        hour = datetime.strptime(CANCELLED, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
        assert stack.sql("SELECT count(*) FROM cryptify.candles WHERE ts = %s", (hour,)) == [(0,)]
    finally:
        stack.exchange.delay_seconds = 0.0


def test_the_build_context_holds_only_what_the_image_needs(stack, tmp_path):
    """.dockerignore, applied by the engine itself to a checkout with secrets and local state
    planted where they end up on laptops and servers."""
    checkout = tmp_path / "checkout"
    listed = stack.engine.run_local(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"]
    )
    for name in listed.splitlines():
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    planted = [
        ".env", "docker/.env", "docker/.env.production", "cryptify_pipeline/.env",
        "cryptify_pipeline/storage/prod.env", "docker/registry.pem", ".cryptify/pg/PG_VERSION",
        ".venv/bin/python", "cryptify_pipeline/__pycache__/settings.cpython-311.pyc",
        ".pytest_cache/v/cache/lastfailed", ".ruff_cache/0.6/x", "data/BTCUSDT-1h-2024-01.zip",
        "cryptify_pipeline/market/BTC-USDT.csv", "dump.sql", ".tmp_dagster_home_x/dagster.yaml",
    ]  # fmt: skip
    for name in planted:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text("secret or local\n")
    image = "cryptify-test/context:latest"
    stack.engine.docker(
        "build", "--quiet", "-f", "-", "-t", image, str(checkout),
        stdin_text=f"FROM {stack.debian}\nCOPY . /context\n",
    )  # fmt: skip
    found = stack.engine.docker(
        "run", "--rm", "--network", "none", image, "find", "/context", "-type", "f"
    ).split()
    sent = {name.removeprefix("/context/") for name in found}
    assert not sent & set(planted), sorted(sent & set(planted))
    outside = {name for name in sent if not name.startswith(("docker/", "cryptify_pipeline/"))}
    assert outside <= {"pyproject.toml", "README.md"}, sorted(outside)
    for needed in ("docker/requirements.lock", "docker/dagster.yaml", "pyproject.toml",
                   "README.md", "cryptify_pipeline/definitions.py"):  # fmt: skip
        assert needed in sent, needed


# -- GraphQL, as the UI reads it ---------------------------------------------------------------


def _loaded(client: CryptifyClient) -> bool:
    try:
        return bool(client.jobs())
    except ClientError:
        return False


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(1)
    return False


def _check_metadata(client: CryptifyClient, run_id: str) -> dict[str, dict[str, Any]]:
    events = client.query(
        """query Checks($id: ID!) { logsForRun(runId: $id, limit: 1000) {
             ... on EventConnection { events { __typename
               ... on AssetCheckEvaluationEvent { evaluation { checkName metadataEntries {
                 label ... on FloatMetadataEntry { floatValue }
                 ... on TextMetadataEntry { text } } } } } } } }""",
        {"id": run_id},
    )["logsForRun"]["events"]
    return {
        event["evaluation"]["checkName"]: {
            entry["label"]: entry.get("floatValue", entry.get("text"))
            for entry in event["evaluation"]["metadataEntries"]
        }
        for event in events
        if event["__typename"] == "AssetCheckEvaluationEvent"
    }


def _captured_stderr(client: CryptifyClient, run_id: str) -> str:
    events = client.query(
        """query Captured($id: ID!) { logsForRun(runId: $id, limit: 1000) {
             ... on EventConnection { events { __typename
               ... on LogsCapturedEvent { fileKey } } } } }""",
        {"id": run_id},
    )["logsForRun"]["events"]
    keys = [event["fileKey"] for event in events if event["__typename"] == "LogsCapturedEvent"]
    assert keys, "no captured logs for the run"
    return "".join(
        client.query(
            "query Logs($key: [String!]!) { capturedLogs(logKey: $key) { stderr } }",
            {"key": [run_id, "compute_logs", key]},
        )["capturedLogs"]["stderr"]
        or ""
        for key in keys
    )
