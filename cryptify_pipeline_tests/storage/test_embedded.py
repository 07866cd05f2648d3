"""With no database configured, the project runs on an embedded Postgres it starts itself."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from dagster_graphql import DagsterGraphQLClient

from cryptify_pipeline.settings import project_root
from cryptify_pipeline.storage.embedded import start_embedded_server, stop_embedded_server
from cryptify_pipeline_tests.support.database import DATABASE_VARIABLES
from cryptify_pipeline_tests.support.live_deployment import free_port

ROOT = project_root()


@pytest.fixture
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("embedded") / "pg"
    yield path
    stop_embedded_server(path)


def test_embedded_server_starts_and_is_reused(data_dir):
    url = start_embedded_server(data_dir, "cryptify")
    pid = (data_dir / "postmaster.pid").read_text().split()[0]
    again = start_embedded_server(data_dir, "cryptify")
    assert again.libpq == url.libpq
    assert (data_dir / "postmaster.pid").read_text().split()[0] == pid  # same server, not a new one
    connection = psycopg2.connect(url.libpq)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        assert cursor.fetchone() == ("cryptify",)
    connection.close()
    assert stop_embedded_server(data_dir)
    assert not stop_embedded_server(data_dir)


@pytest.mark.live
def test_dagster_dev_with_no_database_configured_runs_a_job(data_dir):
    env = {k: v for k, v in os.environ.items() if k not in DATABASE_VARIABLES}
    env["CRYPTIFY_EMBEDDED_PG_DIR"] = str(data_dir)  # keep a developer's own .cryptify/pg apart
    env.pop("DAGSTER_HOME", None)
    port = free_port()
    dev = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id = None
        deadline = time.monotonic() + 180
        while run_id is None:
            assert dev.poll() is None, "dagster dev exited"
            assert time.monotonic() < deadline, "code location did not load within 180 s"
            try:
                run_id = client.submit_job_execution(
                    "collect_job", tags={"dagster/partition": "2025-01-01-00:00"}
                )
            except Exception:  # webserver or code location still starting
                time.sleep(1)
        status = None
        while status not in {"SUCCESS", "FAILURE", "CANCELED"}:
            assert time.monotonic() < deadline, f"run {run_id} stuck in {status}"
            time.sleep(1)
            status = client.get_run_status(run_id).value
        assert status == "SUCCESS"

        url = start_embedded_server(data_dir, "cryptify")  # the server dagster dev started
        connection = psycopg2.connect(url.libpq)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), min(source) FROM cryptify.candles WHERE ts = '2025-01-01 00:00Z'"
            )
            assert cursor.fetchone() == (2, "sample")  # the default source, offline
            cursor.execute("SELECT status FROM dagster.runs WHERE run_id = %s", (run_id,))
            assert cursor.fetchone() == ("SUCCESS",)
        connection.close()
    finally:
        os.killpg(dev.pid, 15)
        try:
            dev.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, 9)
