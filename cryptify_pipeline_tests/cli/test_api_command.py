"""``cryptify api`` where it cannot listen: a port outside 1-65535, a host that is no address
of this machine, a port another process holds. Each is one error line and exit status 1, run
as the console script (uvicorn's own logging would say it in several lines, or listen on
another port than it printed)."""

from __future__ import annotations

import socket
import subprocess

import pytest

from cryptify_pipeline_tests.support.database import subprocess_env
from cryptify_pipeline_tests.support.live_deployment import BIN


def cryptify_api(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "cryptify"), "api", *args],
        env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def assert_one_error_line(result: subprocess.CompletedProcess, line: str) -> None:
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.splitlines() == [line]


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1"])
def test_a_port_outside_1_to_65535_is_refused(port):
    assert_one_error_line(
        cryptify_api("--port", port),
        f"cryptify api: argument --port: port {port} is not a TCP port (1-65535) "
        "(see cryptify api --help)",
    )


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("no-such-host.invalid", "not a name or address this machine resolves"),
        ("local host", "not a name or address this machine resolves"),
        ("192.0.2.1", "not an address of this machine"),  # TEST-NET-1: nobody's
    ],
)
def test_a_host_it_cannot_listen_on_is_named(host, why):
    assert_one_error_line(
        cryptify_api("--host", host, "--port", "8000"),
        f"cryptify api: cannot listen on {host}:8000: {host!r} is {why}",
    )


def test_a_port_in_use_is_named():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = cryptify_api("--host", "127.0.0.1", "--port", str(port))
    assert_one_error_line(
        result,
        f"cryptify api: cannot listen on 127.0.0.1:{port}: the port is in use by another process",
    )
