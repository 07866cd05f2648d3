"""``cryptify db``: the database URL, and the embedded server's start and stop."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2

from cryptify_pipeline_tests.support.database import (
    DATABASE_VARIABLES,
    subprocess_env,
    suite_database_url,
)

CRYPTIFY = str(Path(sys.executable).with_name("cryptify"))


def cryptify(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([CRYPTIFY, *args], env=env, capture_output=True, text=True, timeout=120)


def test_db_url_is_the_configured_server_which_it_will_not_stop():
    env = subprocess_env()
    url = cryptify("db", "url", env=env)
    assert url.returncode == 0, url.stderr
    assert url.stdout.strip() == suite_database_url().libpq
    stop = cryptify("db", "stop", env=env)
    assert stop.returncode == 1
    assert stop.stderr.count("\n") == 1
    assert "configured server" in stop.stderr


def test_db_start_url_stop_on_the_embedded_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in DATABASE_VARIABLES}
    env["CRYPTIFY_EMBEDDED_PG_DIR"] = str(tmp_path / "pg")
    try:
        started = cryptify("db", "start", "--json", env=env)
        assert started.returncode == 0, started.stderr
        url = json.loads(started.stdout)["url"]
        connection = psycopg2.connect(url)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone() == ("cryptify",)
        connection.close()
        assert cryptify("db", "url", env=env).stdout.strip() == url
    finally:
        stopped = cryptify("db", "stop", "--json", env=env)
    assert json.loads(stopped.stdout)["stopped"] is True
    assert json.loads(cryptify("db", "stop", "--json", env=env).stdout)["stopped"] is False


def test_db_stop_refuses_a_stale_pid_file_and_says_why(tmp_path):
    bystander = subprocess.Popen(["sleep", "600"])  # what the stale pid now belongs to
    try:
        data_dir = tmp_path / "pg"
        data_dir.mkdir()
        (data_dir / "postmaster.pid").write_text(f"{bystander.pid}\n{data_dir}\n1764300000\n")
        env = {k: v for k, v in os.environ.items() if k not in DATABASE_VARIABLES}
        env["CRYPTIFY_EMBEDDED_PG_DIR"] = str(data_dir)
        stop = cryptify("db", "stop", env=env)
        assert (stop.returncode, stop.stdout) == (1, "")
        assert stop.stderr == (
            f"cryptify db: {data_dir}/postmaster.pid names pid {bystander.pid}, which is not the "
            f"postgres of {data_dir} (it is 'sleep 600'): not signalling it. If no postgres runs "
            "on that directory, the file is stale: delete it\n"
        )
        assert bystander.poll() is None  # alive: never signalled
    finally:
        bystander.kill()
        bystander.wait()
