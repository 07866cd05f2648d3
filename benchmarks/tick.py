"""Where the hourly tick's time goes: from ``collect_job``'s run being created (as the schedule
creates it at HH:02) to that hour's forecasts in Postgres, split by the runs' own event log.

Through a live webserver and daemon with the project's ``dagster.yaml`` (3 symbols of the
sample market, four cheap models trained beforehand and not timed), ``TICKS`` hours are
collected one after the other; the ``forecast_after_collect`` sensor starts each ``predict_job``.
Each phase is the time between two events Dagster records (run created, dequeued, process
started, each step's start and end, run finished), averaged over the ticks; the totals are
also given each, best and median, with the load average after each tick (the machine is
shared, and the totals move with it).

    TICKS=5 python -m benchmarks.tick
"""

import os
import statistics
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from dagster import DagsterInstance, RunsFilter, materialize

from benchmarks._common import bench_definitions, report, sql
from benchmarks.operations import wait_for_predictions
from cryptify_pipeline.run_tags import range_tags
from cryptify_pipeline_tests.support.live_deployment import live_deployment
from cryptify_pipeline_tests.support.pipeline import MODEL_SIGNING_KEY

warnings.filterwarnings("ignore")
NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)
LAST_HOUR = NOW.replace(minute=0, second=0, microsecond=0) - HOUR
# features need 320 hours of candles first, and models 14 days of features
START = (LAST_HOUR - timedelta(days=32)).replace(hour=0)
SCHEMA = "bench_tick"
SETTINGS = {
    "CRYPTIFY_START": START.strftime("%Y-%m-%dT%H:00Z"),
    "CRYPTIFY_SCHEMA": SCHEMA,
    "CRYPTIFY_SYMBOLS": "BTC/USDT,ETH/USDT,SOL/USDT",
    "CRYPTIFY_SOURCE": "sample",
    "CRYPTIFY_AUTOMATION": "off",  # only the forecast sensor is started, below
    # the key the models are signed with here (the tests' key): the deployment must share it
    "CRYPTIFY_MODEL_SIGNING_KEY": MODEL_SIGNING_KEY.hex(),
}
PIPELINE = bench_definitions(SCHEMA, **SETTINGS)
KEY = "%Y-%m-%d-%H:%M"
TICKS = int(os.environ.get("TICKS", "5"))
CHEAP_MODELS = {"models": ["zero_return", "drift", "linear", "ridge"], "training_days": 14}


def prepare(instance: DagsterInstance) -> None:
    resources = PIPELINE.resources
    collected = ["candles", "open_interest", "funding_rates", "equity_index", "features"]
    assets = [PIPELINE.get_assets_def(name) for name in (*collected, "models")]
    first_tick = LAST_HOUR - (TICKS - 1) * HOUR
    hours = range_tags(START.strftime(KEY), (first_tick - HOUR).strftime(KEY))
    assert materialize(
        assets, instance=instance, resources=resources, tags=hours, selection=collected
    ).success
    today = LAST_HOUR.replace(hour=0)
    days = range_tags(f"{today - timedelta(days=2):%Y-%m-%d}", f"{today - HOUR:%Y-%m-%d}")
    config = {"ops": {"models": {"config": CHEAP_MODELS}}}
    assert materialize(
        assets, instance=instance, resources=resources, run_config=config,
        selection=["models"], tags=days,
    ).success  # fmt: skip


def phases(instance: DagsterInstance, run_id: str, prefix: str) -> tuple[dict, float, float]:
    """The run's phases (seconds), its creation and its end (timestamps)."""
    created = instance.get_run_record_by_id(run_id).create_timestamp.timestamp()
    first: dict[str, float] = {}
    steps: dict[str, dict[str, float]] = defaultdict(dict)
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type.name  # RUN_START, not its stored value PIPELINE_START
        if entry.step_key and kind in ("STEP_START", "STEP_SUCCESS"):
            steps[entry.step_key][kind] = entry.timestamp
        first.setdefault(kind, entry.timestamp)
    # the queue records no dequeue event: RUN_STARTING is the launch, as it is dequeued
    launched, started = first["RUN_STARTING"], first["RUN_START"]
    found = {
        f"{prefix} queued (created -> RUN_STARTING)": launched - created,
        f"{prefix} process start (RUN_STARTING -> RUN_START)": started - launched,
    }
    last_step = first["RUN_START"]
    for step, times in sorted(steps.items(), key=lambda item: item[1]["STEP_START"]):
        found[f"{prefix} step {step}"] = times["STEP_SUCCESS"] - times["STEP_START"]
        last_step = max(last_step, times["STEP_SUCCESS"])
    steps_wall = last_step - first["RUN_START"]
    found[f"{prefix} steps wall (RUN_START -> last step)"] = steps_wall
    found[f"{prefix} finish (last step -> RUN_SUCCESS)"] = first["RUN_SUCCESS"] - last_step
    return found, created, first["RUN_SUCCESS"]


class RunProcessCpu:
    """Samples, every 0.1 s, the CPU time (user + system) of the run processes under this
    one (the code servers spawn one per run, ``multiprocessing.spawn``): unlike wall time, it
    does not grow with other work on the machine. A process's last sample before it exits
    stands for its total (under 0.1 s short)."""

    def __init__(self) -> None:
        self.cpu: dict[int, tuple[float, float]] = {}  # pid -> (created, cpu seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "RunProcessCpu":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.1):
            for child in me.children(recursive=True):
                try:
                    if "spawn_main" in " ".join(child.cmdline()):
                        times = child.cpu_times()
                        self.cpu[child.pid] = (child.create_time(), times.user + times.system)
                except psutil.Error:  # it exited between the listing and the reading
                    continue

    def since(self, began: float) -> list[float]:
        """CPU seconds of the run processes created after ``began``, oldest first."""
        return [cpu for created, cpu in sorted(self.cpu.values()) if created >= began]


def main() -> None:
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; DROP SCHEMA IF EXISTS {SCHEMA}_dagster CASCADE")
    totals: dict[str, list[float]] = defaultdict(list)
    loads: list[float] = []
    home = Path(tempfile.mkdtemp(prefix="cryptify-tick-"))  # kept: its logs/ explain a failure
    print(f"deployment home: {home}", flush=True)
    with RunProcessCpu() as sampler:
        with live_deployment(home, f"{SCHEMA}_dagster", SETTINGS) as live:
            with live.instance() as instance:
                prepare(instance)
            live.client.start_sensor("forecast_after_collect")
            for hour in [LAST_HOUR - (TICKS - 1 - i) * HOUR for i in range(TICKS)]:
                began = time.time()
                collect_id = live.client.launch_run("collect_job", partition=hour.strftime(KEY))
                wait_for_predictions([hour], 240, SCHEMA)
                time.sleep(2)  # the predict run's last events, its process's exit
                with live.instance() as instance:
                    collect, created, collected = phases(instance, collect_id, "collect_job")
                    [predict_run] = instance.get_runs(
                        RunsFilter(job_name="predict_job",
                                   tags={"dagster/partition": hour.strftime(KEY)})
                    )  # fmt: skip
                    predict, requested, predicted = phases(
                        instance, predict_run.run_id, "predict_job"
                    )
                cpu = sampler.since(began)
                tick = {
                    **collect,
                    **(
                        {"collect_job process CPU s": cpu[0], "predict_job process CPU s": cpu[1]}
                        if len(cpu) == 2
                        else {}
                    ),
                    "sensor (collect RUN_SUCCESS -> predict run created)": requested - collected,
                    **predict,
                    # the forecasts are committed in the predictions step, before RUN_SUCCESS
                    "total (collect created -> predict RUN_SUCCESS)": predicted - created,
                }
                for phase, seconds in tick.items():
                    totals[phase].append(seconds)
                total = tick["total (collect created -> predict RUN_SUCCESS)"]
                loads.append(os.getloadavg()[0])  # the machine is shared: say how busy it was
                print(f"tick {hour:%H:%M}: {total:.1f} s (load {loads[-1]:.1f})", flush=True)
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; DROP SCHEMA IF EXISTS {SCHEMA}_dagster CASCADE")
    means = {phase: round(sum(values) / len(values), 2) for phase, values in totals.items()}
    for phase, seconds in means.items():
        print(f"{seconds:7.2f} s  {phase}")
    each = [round(value, 2) for value in totals["total (collect created -> predict RUN_SUCCESS)"]]
    report(
        "tick",
        {
            **means,
            "total_s_each": each,
            "total_s_best": min(each),
            "total_s_median": round(statistics.median(each), 2),
            "load_average_1m_each": [round(load, 2) for load in loads],
            "cpus": os.cpu_count() or 0,
        },
    )


if __name__ == "__main__":
    main()
