"""The client and the ``cryptify`` command against servers that are not a working Dagster
webserver: one that answers HTML, one that answers ``{"data": null}``, one that never answers,
none at all, and hosts, ports and config files that are wrong. Each is one error line and exit
status 1, after one request, and nothing reaches a server that would launch anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cryptify_pipeline.cli.client import (
    BACKFILL_TITLE_LIMIT,
    ClientError,
    CryptifyClient,
    backfill_title,
)
from cryptify_pipeline.cli.main import main
from cryptify_pipeline_tests.support.live_deployment import free_port

CRYPTIFY = str(Path(sys.executable).with_name("cryptify"))


class NotDagster:
    """A local HTTP server answering every POST the way ``mode`` says: ``html`` (a proxy's
    or another app's page), ``null`` (``{"data": null}``), ``silent`` (never answers)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.requests: list[bytes] = []
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                owner.requests.append(self.rfile.read(int(self.headers["Content-Length"])))
                if owner.mode == "silent":
                    owner.release.wait(60)
                    return
                if owner.mode == "html":
                    status, kind, body = 200, "text/html", b"<html><body>Sign in</body></html>"
                else:
                    status, kind, body = 200, "application/json", b'{"data": null}'
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def __enter__(self) -> NotDagster:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["html", "null", "silent"])
def not_dagster(request) -> Iterator[NotDagster]:
    with NotDagster(request.param) as server:
        yield server


def cryptify(capsys, *args: str) -> tuple[int, str, str]:
    """``main`` as the console script runs it: (exit status, stdout, stderr)."""
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


EXPECTED = {
    "html": "answered HTTP 200 with text/html, not GraphQL JSON: is it the Dagster webserver",
    "null": "answered HTTP 200 without data: is it the Dagster webserver?",
    "silent": "did not answer within 1 s: is it the Dagster webserver?",
}


def test_a_server_that_is_not_dagster_is_one_error_line(not_dagster, capsys):
    for asked, command in enumerate(
        (["jobs"], ["runs"], ["status", "some-run"], ["logs", "some-run"]), start=1
    ):
        port = ["--host", "127.0.0.1", "--port", str(not_dagster.port), "--request-timeout", "1"]
        status, out, err = cryptify(capsys, *command, *port)
        assert len(not_dagster.requests) == asked  # one request, not retried
        assert (status, out) == (1, "")
        assert len(err.splitlines()) == 1, err
        assert err.startswith(f"cryptify {command[0]}: http://127.0.0.1:{not_dagster.port}/graphql")
        assert EXPECTED[not_dagster.mode] in err


def test_nothing_is_launched_through_a_server_that_is_not_dagster(not_dagster, capsys):
    port = ["--port", str(not_dagster.port), "--request-timeout", "1"]
    status, _, err = cryptify(
        capsys, "run", "collect_job", "--partition", "2025-01-05-10:00", *port
    )
    assert status == 1 and EXPECTED[not_dagster.mode] in err
    status, _, err = cryptify(
        capsys, "backfill", "candles", "--from", "2025-01-05-10:00", "--to", "2025-01-05-12:00",
        *port,
    )  # fmt: skip
    assert status == 1 and EXPECTED[not_dagster.mode] in err
    # the first question (which code location?) fails; no launch is ever sent
    assert not [body for body in not_dagster.requests if b"mutation" in body]


def test_the_read_timeout_is_bounded_by_default():
    with NotDagster("silent") as server:
        client = CryptifyClient("127.0.0.1", server.port)
        assert client.timeout <= 20
        client = CryptifyClient("127.0.0.1", server.port, timeout=0.5)
        with pytest.raises(ClientError, match=r"did not answer within 0\.5 s"):
            client.jobs()
        assert len(server.requests) == 1  # given up at the timeout, not retried


def test_no_server_bad_hosts_and_bad_ports_are_one_error_line(capsys):
    closed = free_port()  # nothing listens there
    status, _, err = cryptify(capsys, "jobs", "--port", str(closed))
    assert status == 1
    assert err.strip() == (
        f"cryptify jobs: cannot reach the Dagster webserver at http://localhost:{closed}/graphql: "
        "is it running (make dev, or dagster-webserver), and are --host/--port right?"
    )
    for host in ("http://localhost:3000", "localhost/graphql", "local host", ""):
        status, _, err = cryptify(capsys, "jobs", "--host", host)
        assert status == 1 and len(err.splitlines()) == 1
        assert f"host {host!r} is not a host name or an IP address" in err
    status, _, err = cryptify(capsys, "jobs", "--port", "70000")
    assert (status, err.strip()) == (1, "cryptify jobs: port 70000 is not a TCP port (1-65535)")
    for bad in (["--port", "web"], ["--request-timeout", "0"], ["--request-timeout", "soon"]):
        with pytest.raises(SystemExit) as exited:
            main(["jobs", *bad])
        assert exited.value.code == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "see cryptify jobs --help" in err


@pytest.mark.parametrize("timeout", ["1e10", "3601", "inf", "nan"])
def test_a_request_timeout_beyond_an_hour_is_one_error_line(timeout):
    # the socket layer cannot wait 1e10 s: it raised an OverflowError mid-request
    with NotDagster("html") as server:
        result = subprocess.run(
            [CRYPTIFY, "jobs", "--port", str(server.port), "--request-timeout", timeout],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert server.requests == []
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "cryptify jobs: argument --request-timeout: expected a number of seconds above 0 and "
        f"at most 3600, not {timeout!r} (see cryptify jobs --help)"
    ]


def test_an_ipv6_address_is_a_host():
    assert CryptifyClient("::1", 3000).url == "http://[::1]:3000/graphql"
    assert CryptifyClient("dagster_webserver", 3000).url == "http://dagster_webserver:3000/graphql"


def test_a_config_file_that_is_not_text_is_refused_before_any_request(tmp_path, capsys):
    binary = tmp_path / "train.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with NotDagster("html") as server:
        status, out, err = cryptify(
            capsys, "run", "train_job", "--partition", "2025-01-05", "--config", str(binary),
            "--port", str(server.port),
        )  # fmt: skip
        assert server.requests == []
    assert (status, out) == (1, "")
    assert err.strip() == (
        f"cryptify run: run config {binary} is not a text file: byte 0x89 at offset 0 is not "
        "UTF-8 (give a YAML or JSON file)"
    )
    for text, problem in [("ops: [1, 2", "is not valid YAML or JSON"), ("- 1\n", "a mapping")]:
        binary.write_text(text)
        status, _, err = cryptify(capsys, "run", "train_job", "--config", str(binary))
        assert status == 1 and len(err.splitlines()) == 1 and problem in err
    status, _, err = cryptify(capsys, "run", "train_job", "--config", str(tmp_path))
    assert status == 1 and "cannot read run config" in err


def test_the_console_script_prints_one_line_and_exits_1():
    with NotDagster("html") as server:
        result = subprocess.run(
            [CRYPTIFY, "runs", "--json", "--port", str(server.port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert len(result.stderr.splitlines()) == 1
    assert "not GraphQL JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_graphql_errors_are_the_error_line():
    body = json.dumps({"errors": [{"message": "Cannot query field 'x'"}], "data": None}).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ClientError, match=r"^Cannot query field 'x'$"):
            CryptifyClient("127.0.0.1", server.server_address[1]).jobs()
    finally:
        server.shutdown()
        server.server_close()


def test_a_backfill_title_of_many_targets_stays_within_dagsters_limit():
    first, last = "2026-11-01-00:00", "2026-11-27-23:00"
    assert backfill_title(["collect_job"], first, last) == f"collect_job {first}...{last}"
    names = ["candles", "open_interest", "funding_rates", "equity_index", "features", "predictions"]
    title = backfill_title(names, first, last)
    assert len(" ".join(names)) + len(first) + len(last) > BACKFILL_TITLE_LIMIT
    assert len(title) <= BACKFILL_TITLE_LIMIT
    assert title == f"candles and 5 more {first}...{last}"
