"""CRYPTIFY_EXECUTOR=celery: a run's steps execute in a Celery worker, on the local Redis and on
the local RabbitMQ (the broker is configuration).

The worker is started the way docker-compose starts one (``dagster-celery worker start`` with
``docker/celery.yaml``); the run is a ``collect_job`` run whose four steps after ``candles``
(features and three checks) are independent of each other.
"""

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from dagster import DagsterInstance

from cryptify_pipeline.market.context import CONTEXT_TABLE_NAMES
from cryptify_pipeline_tests.support.database import run_sql, subprocess_env
from cryptify_pipeline_tests.support.live_deployment import ROOT, write_instance_yaml

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.live

BROKERS = {
    # broker, result backend
    "redis": ("redis://127.0.0.1:6379/14", "redis://127.0.0.1:6379/15"),
    "rabbitmq": ("pyamqp://guest@127.0.0.1:5672//", "rpc://"),
}
PARTITION = "2025-01-03-05:00"


def ancestors(pid: int) -> set[int]:
    chain = set()
    while pid > 1:
        chain.add(pid)
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return chain


@pytest.fixture(params=sorted(BROKERS))
def celery_env(request, tmp_path):
    broker, backend = BROKERS[request.param]
    if request.param == "redis":
        try:
            redis.Redis.from_url(broker).ping()
        except redis.ConnectionError:
            pytest.fail("Redis is not running on 127.0.0.1:6379 (see the env notes to start it)")
    else:
        try:
            socket.create_connection(("127.0.0.1", 5672), timeout=5).close()
        except OSError:
            pytest.fail("RabbitMQ is not running on 127.0.0.1:5672 (see the env notes)")
    schema = f"celery_{uuid.uuid4().hex[:8]}"
    home = tmp_path / "dagster_home"
    write_instance_yaml(home, f"{schema}_dagster")
    env = {
        **subprocess_env(),
        "DAGSTER_HOME": str(home),
        "CRYPTIFY_SCHEMA": schema,
        "CRYPTIFY_EXECUTOR": "celery",
        "CRYPTIFY_CELERY_BROKER": broker,
        "CRYPTIFY_CELERY_BACKEND": backend,
        "CRYPTIFY_AUTOMATION": "off",
        # dagster-celery starts the `celery` program from PATH
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    yield env, schema
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')


def test_steps_run_in_the_celery_worker_and_land_in_postgres(celery_env, tmp_path):
    env, schema = celery_env
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
         "-n", f"test-{schema}", "-y", str(ROOT / "docker" / "celery.yaml")],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        result = subprocess.run(
            [str(BIN / "dagster"), "job", "execute", "-m", "cryptify_pipeline.definitions",
             "-j", "collect_job", "--tags", f'{{"dagster/partition": "{PARTITION}"}}'],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            [run] = instance.get_runs()
            starts = {
                record.step_key: record.dagster_event.pid
                for record in instance.all_logs(run.run_id)
                if record.dagster_event is not None
                and record.dagster_event.event_type_value == "STEP_START"
            }
        assert run.status.value == "SUCCESS"
        assert set(starts) == {
            "candles", "features", "candles_candles_complete", "candles_candles_fresh",
            "candles_candles_price_jumps",
            # collect_job collects the market context with the candles
            *CONTEXT_TABLE_NAMES, *(f"{name}_{name}_complete" for name in CONTEXT_TABLE_NAMES),
        }  # fmt: skip
        for step, pid in starts.items():
            assert worker.pid in ancestors(pid), f"{step} ran outside the worker (pid {pid})"
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
        log.close()
    assert "execute_plan" in (tmp_path / "worker.log").read_text()  # celery's task log
    rows = run_sql(f'SELECT count(*) FROM "{schema}".candles')
    features = run_sql(f'SELECT count(*) FROM "{schema}".features')
    assert rows == features == [(2,)]  # the default two symbols, one hour
