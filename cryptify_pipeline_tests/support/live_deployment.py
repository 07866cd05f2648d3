"""A live deployment for tests and benchmarks: ``dagster-webserver`` and ``dagster-daemon`` on a
free local port, on a Postgres-backed instance in a temporary ``DAGSTER_HOME``.

The instance is the project's own ``dagster.yaml`` (run queue, pools, run monitoring, run
retries) with only its storage schema changed, so the tests exercise the shipped settings.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from dagster import DagsterInstance

from cryptify_pipeline.cli.client import ClientError, CryptifyClient, Run
from cryptify_pipeline.settings import project_root
from cryptify_pipeline_tests.support.database import subprocess_env, suite_database_url

ROOT = project_root()
BIN = Path(sys.executable).parent
STARTUP_SECONDS = 120


@dataclass
class Deployment:
    port: int
    home: Path
    env: dict[str, str]
    client: CryptifyClient
    schema: str = ""  # where the asset tables are

    def instance(self) -> DagsterInstance:
        """The deployment's instance, opened from this process (for what GraphQL lacks)."""
        return DagsterInstance.from_config(str(self.home))

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the ``cryptify`` console script against this deployment."""
        port = [] if "--port" in args else ["--port", str(self.port)]
        return subprocess.run(
            [str(BIN / "cryptify"), *args, *port],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def wait_for_run(self, run_id: str, timeout: float = 120, until=None) -> Run:
        """Poll until the run is finished (or ``until(run)`` holds)."""
        done = until or (lambda run: run.finished)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.client.run(run_id)
            if done(run):
                return run
            time.sleep(0.25)
        raise AssertionError(
            f"run {run_id} still {self.client.run(run_id).status} after {timeout}s"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_instance_yaml(
    home: Path, storage_schema: str, source: Path = ROOT / "dagster.yaml", without: tuple = ()
) -> None:
    """``source`` on the test database with its storage schema replaced and the ``without``
    sections left out."""
    config = yaml.safe_load(source.read_text())
    config["storage"]["custom"]["config"].update(
        schema=storage_schema, url=suite_database_url().libpq
    )
    for section in without:
        config.pop(section)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@contextmanager
def live_deployment(
    home: Path,
    storage_schema: str,
    env: Mapping[str, str],
    workspace_file: Path = ROOT / "workspace.yaml",
    instance_file: Path = ROOT / "dagster.yaml",
    instance_without: tuple = (),
) -> Iterator[Deployment]:
    """Start a webserver and a daemon; stop both (and their code servers) on exit."""
    write_instance_yaml(home, storage_schema, instance_file, instance_without)
    port = free_port()
    full_env = {**subprocess_env(), **env, "DAGSTER_HOME": str(home)}
    workspace = str(workspace_file)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    processes = [
        _start(
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace],
            full_env, logs / "webserver.log",
        ),
        _start(
            [str(BIN / "dagster-daemon"), "run", "-w", workspace], full_env, logs / "daemon.log"
        ),
    ]  # fmt: skip
    try:
        client = CryptifyClient("127.0.0.1", port)
        _wait_until_ready(client, processes, logs)
        yield Deployment(port=port, home=home, env=full_env, client=client)
    finally:
        for process in processes:
            _stop(process)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # a process group per server, so stopping it also stops the code server it spawned
    with log.open("w") as output:  # the child writes to its own copy of the descriptor
        return subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_until_ready(
    client: CryptifyClient, processes: list[subprocess.Popen], logs: Path
) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} exited: see {logs}")
        try:
            if client.jobs() and _daemon_healthy(client):
                return
        except ClientError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"deployment not ready after {STARTUP_SECONDS}s: see {logs}")


def _daemon_healthy(client: CryptifyClient) -> bool:
    data = client.query(
        "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
    )
    statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    return all(status["healthy"] for status in statuses if status["required"])


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
