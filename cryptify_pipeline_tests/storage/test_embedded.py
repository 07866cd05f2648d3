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
from cryptify_pipeline.storage.embedded import (
    StalePidFile,
    start_embedded_server,
    stop_embedded_server,
)
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


@pytest.fixture
def bystander():
    """A process of this test that a stale postmaster.pid may name."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def write_pid_file(data_dir: Path, pid: int) -> None:
    """A postmaster.pid as Postgres writes it, naming ``pid``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "postmaster.pid").write_text(
        f"{pid}\n{data_dir}\n1764300000\n5432\n{data_dir}\n\n  2148035     32774\nready   \n"
    )


def test_a_stale_pid_file_naming_another_process_is_refused_and_nothing_is_signalled(
    tmp_path, bystander
):
    data_dir = tmp_path / "pg"
    write_pid_file(data_dir, bystander.pid)
    with pytest.raises(StalePidFile) as refused:
        stop_embedded_server(data_dir)
    assert str(refused.value) == (
        f"{data_dir / 'postmaster.pid'} names pid {bystander.pid}, which is not the postgres of "
        f"{data_dir} (it is 'sleep 600'): not signalling it. If no postgres runs on that "
        "directory, the file is stale: delete it"
    )
    # nor is it taken for a running server to connect to
    with pytest.raises(StalePidFile, match=f"names pid {bystander.pid}"):
        start_embedded_server(data_dir, "cryptify")
    time.sleep(0.5)
    assert bystander.poll() is None  # still running: never signalled


def test_the_postgres_of_another_data_directory_is_not_stopped(data_dir, tmp_path):
    url = start_embedded_server(data_dir, "cryptify")
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    elsewhere = tmp_path / "other-pg"
    write_pid_file(elsewhere, pid)
    with pytest.raises(StalePidFile, match="it is the postgres of another data directory"):
        stop_embedded_server(elsewhere)
    psycopg2.connect(url.libpq).close()  # still serving


def test_pid_files_of_dead_processes_or_garbage(tmp_path):
    data_dir = tmp_path / "pg"
    write_pid_file(data_dir, 2**22 + 1)  # above any pid_max: no such process
    assert stop_embedded_server(data_dir) is False
    (data_dir / "postmaster.pid").write_text("not a pid\n")
    with pytest.raises(StalePidFile, match="does not start with a process id"):
        stop_embedded_server(data_dir)


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
