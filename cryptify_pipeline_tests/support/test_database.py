"""With no database configured, a pytest session of the suite runs on an embedded server, and
stops it at the end if the session started it (a server that ran before is left running)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cryptify_pipeline.settings import project_root
from cryptify_pipeline.storage.embedded import start_embedded_server, stop_embedded_server
from cryptify_pipeline_tests.support.database import (
    DATABASE_VARIABLES,
    SERVER_DIR_VARIABLE,
    embedded_server_running,
    run_sql,
)

ROOT = project_root()


@pytest.mark.integration
def test_a_query_reaches_the_test_database():
    assert run_sql("SELECT 1") == [(1,)]


def run_a_session(data_dir: Path, *options: str) -> subprocess.CompletedProcess:
    """A pytest session of the test above, with no database configured: its server is the
    embedded one in ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if k not in DATABASE_VARIABLES}
    env[SERVER_DIR_VARIABLE] = str(data_dir)
    test = f"{Path(__file__).relative_to(ROOT)}::test_a_query_reaches_the_test_database"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, test],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.fixture
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite_server") / "pg"
    yield path
    stop_embedded_server(path)


@pytest.mark.integration
@pytest.mark.live  # starts Postgres servers and two pytest sessions
def test_a_session_stops_the_embedded_server_it_started_and_no_other(data_dir):
    # with xdist the workers start the server and the controller stops it
    session = run_a_session(data_dir, "-n", "1")
    assert session.returncode == 0, session.stdout + session.stderr
    assert (data_dir / "PG_VERSION").exists()  # the session did start a server there
    assert not embedded_server_running(data_dir)

    # a server that ran before the session is someone else's: left running
    start_embedded_server(data_dir, "cryptify_test")
    session = run_a_session(data_dir, "-p", "no:xdist")
    assert session.returncode == 0, session.stdout + session.stderr
    assert embedded_server_running(data_dir)
