"""A run whose process is killed mid-step (``dagster asset materialize``, no run worker for the
daemon to watch) is marked failed by the fail_stale_runs sensor and gives back its pool slot,
so the next candles step runs; a live run, and a run of another machine, are left alone."""

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunsFilter,
    build_sensor_context,
)

from cryptify_pipeline.storage.run_process import RUN_PROCESS_TAG, RunProcess
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql, subprocess_env
from cryptify_pipeline_tests.support.fake_binance import FakeBinance
from cryptify_pipeline_tests.support.live_deployment import write_instance_yaml

BIN = Path(sys.executable).parent
SLOW = 300.0  # seconds per exchange request: a step that only ends when its process does


@dataclass
class Home:
    """A DAGSTER_HOME with the project's dagster.yaml (pools of one slot per table) on the test
    database, and the env of the pipeline on an asset schema of its own."""

    path: Path
    schema: str
    env: dict[str, str]
    exchange: FakeBinance

    def instance(self) -> DagsterInstance:
        return DagsterInstance.from_config(str(self.path))

    def materialize(self, partition: str) -> subprocess.Popen:
        """``dagster asset materialize`` of candles, in a process of its own."""
        return subprocess.Popen(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "cryptify_pipeline.definitions",
             "--select", "candles", "--partition", partition],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def start_slow_run(self, partition: str) -> tuple[subprocess.Popen, str]:
        """A candles run that is inside its step, holding the pool's slot; (process, run id)."""
        self.exchange.delay_seconds = SLOW
        before = len(self.exchange.kline_requests())
        process = self.materialize(partition)
        deadline = time.monotonic() + 120
        while len(self.exchange.kline_requests()) <= before:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the run never asked the exchange for candles"
            time.sleep(0.2)
        with self.instance() as instance:
            [run] = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        return process, run.run_id


@pytest.fixture
def home(tmp_path) -> Iterator[Home]:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    symbols = ["BTC/USDT"]
    exchange = FakeBinance(
        symbols, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC)
    )
    write_instance_yaml(tmp_path / "home", f"{schema}_dagster")
    env = subprocess_env(
        DAGSTER_HOME=str(tmp_path / "home"), CRYPTIFY_SCHEMA=schema, CRYPTIFY_SOURCE="binance",
        CRYPTIFY_EXCHANGE_API_URL=exchange.api_url, CRYPTIFY_SYMBOLS=",".join(symbols),
        CRYPTIFY_AUTOMATION="off", CRYPTIFY_CONTEXT_SOURCE="none",
        CRYPTIFY_EQUITY_INDEX_SOURCE="none",
    )  # fmt: skip
    try:
        with exchange:
            yield Home(tmp_path / "home", schema, env, exchange)
            exchange.delay_seconds = 0.0
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')


def tick(instance: DagsterInstance, schema: str) -> str:
    """One evaluation of fail_stale_runs; its skip message."""
    sensor = pipeline.definitions(schema).resolve_sensor_def("fail_stale_runs")
    result = sensor.evaluate_tick(build_sensor_context(instance=instance))
    assert not result.run_requests
    return result.skip_message or ""


def slot_holders(instance: DagsterInstance, pool: str = "candles") -> set[str]:
    return {
        slot.run_id for slot in instance.event_log_storage.get_concurrency_info(pool).claimed_slots
    }


def test_a_killed_runs_slot_is_freed_and_the_run_failed(home):
    process, run_id = home.start_slow_run("2025-01-02-10:00")
    with home.instance() as instance:
        assert slot_holders(instance) == {run_id}
        recorded = RunProcess.from_tag(instance.get_run_by_id(run_id).tags.get(RUN_PROCESS_TAG))
        assert recorded is not None and recorded.pid == process.pid and recorded.is_local
        # alive: left alone
        assert tick(instance, home.schema).startswith("0 run(s)")
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

        process.kill()  # SIGKILL: no failure event, no slot given back
        process.wait()
        home.exchange.delay_seconds = 0.0
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED
        assert slot_holders(instance) == {run_id}

        assert tick(instance, home.schema).startswith("1 run(s) whose process is gone")
        run = instance.get_run_by_id(run_id)
        assert run.status == DagsterRunStatus.FAILURE
        [failure] = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
        assert f"pid {process.pid}" in failure.message and "is gone" in failure.message
        assert slot_holders(instance) == set()
        assert tick(instance, home.schema).startswith("0 run(s)")  # once

    # the next candles step gets the slot (before, it waited for ever)
    second = home.materialize("2025-01-02-11:00")
    output, _ = second.communicate(timeout=180)
    assert second.returncode == 0, output
    assert "Step blocked by limit for pool candles" not in output


def test_a_started_run_of_another_machine_or_without_a_process_is_left_alone(home):
    with home.instance() as instance:
        here = RunProcess.current()
        elsewhere = RunProcess(999_999, here.started, "another-host", here.space)
        runs = {
            "elsewhere": {RUN_PROCESS_TAG: elsewhere.tag_value()},
            "untagged": {},
            "garbled": {RUN_PROCESS_TAG: "pid 12"},
        }
        for name, tags in runs.items():
            instance.add_run(
                DagsterRun(
                    job_name=name,
                    run_id=str(uuid.uuid4()),
                    tags=tags,
                    status=DagsterRunStatus.STARTED,
                )  # fmt: skip
            )
        assert tick(instance, home.schema).startswith("0 run(s)")
        started = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        assert sorted(run.job_name for run in started) == sorted(runs)
