"""The data API as a deployment runs it: ``cryptify api`` on a free local port, in a process of
its own, reading the asset tables of a test schema; stopped with Ctrl-C's signal."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptify_pipeline_tests.support.database import subprocess_env
from cryptify_pipeline_tests.support.live_deployment import BIN, free_port

STARTUP_SECONDS = 60


def get_json(url: str) -> tuple[int, dict]:
    """Status and JSON body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@dataclass(frozen=True)
class LiveApi:
    url: str  # the base URL, http://127.0.0.1:PORT
    pid: int


@contextmanager
def live_api(schema: str, log: Path, **env: str) -> Iterator[LiveApi]:
    """``cryptify api`` serving ``schema``'s tables (and ``env``'s settings), once ``/health``
    answers; on exit it is interrupted as Ctrl-C would."""
    port = free_port()
    with log.open("w") as output:  # the child writes to its own copy of the descriptor
        process = subprocess.Popen(
            [str(BIN / "cryptify"), "api", "--host", "127.0.0.1", "--port", str(port)],
            env=subprocess_env(CRYPTIFY_SCHEMA=schema, **env),
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"cryptify api exited with {process.returncode}: see {log}")
            try:
                get_json(f"{base}/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cryptify api not ready after {STARTUP_SECONDS}s") from None
                time.sleep(0.2)
        yield LiveApi(base, process.pid)
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> int:
    """Interrupt the server (SIGINT, as Ctrl-C); its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode
