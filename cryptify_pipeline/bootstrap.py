"""Fill the recent weeks, candles through leaderboard, so a first ``make dev`` shows it all.

    python -m cryptify_pipeline.bootstrap [--history-days N] [--forecast-days 14]
        [--dagster-port 3000] [--api-port 8000]

Runs on the instance ``dagster dev`` uses (``$DAGSTER_HOME``, else this folder's
``dagster.yaml``) through the jobs the schedules run (collect_job, train_job, predict_job,
evaluate_job), with their tags and as runs of the code location ``workspace.yaml`` names: they
appear in the UI as the schedules' runs will, and "Re-execute" works on them. collect_job's runs
evaluate the asset checks of what they collect. Only partitions not yet materialised are
requested, each contiguous run of them as one single-run backfill (one partition as a run of
it), so running it again is cheap.

The terminal shows the stages, a progress bar on each run, each stage's time and the two URLs
to open (the ports ``make dev`` serves on). The runs' events are in the UI (their console copy
in ``bootstrap.log`` in the instance's folder), the embedded server's output in its log files.
Warnings and errors are printed.

The arguments are checked before anything runs: the first model day needs enough history
before it (``warm_up_hours``: enough for every horizon's interval to be calibrated); by
default the history is the fewest days that gives it that. A run that fails anyway stops the
bootstrap with the failing step's own error.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    HourlyPartitionsDefinition,
    TimeWindowPartitionsDefinition,
)
from dagster._core.definitions.partitions.utils import TimeWindow
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.definitions.repository_definition.valid_definitions import (
    SINGLETON_REPOSITORY_NAME,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.api import execute_run
from dagster._core.execution.job_execution_result import JobExecutionResult
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.workspace.load import location_origins_from_yaml_paths
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from cryptify_pipeline.cli.step_errors import own_error, serializable_chain
from cryptify_pipeline.hours import DAY, HOUR, consecutive_runs, day_key, last_closed_hour
from cryptify_pipeline.market.context import COLLECTED_TABLES
from cryptify_pipeline.ml.features import LOOKBACK_HOURS
from cryptify_pipeline.ml.targets import HORIZONS
from cryptify_pipeline.ml.training import VALIDATION_FRACTION, min_known_rows
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.run_tags import PARTITION_NAME_TAG, TRIGGER_TAG, range_tags
from cryptify_pipeline.settings import DEFAULT_INTERVAL_LEVEL, get_settings, project_root
from cryptify_pipeline.storage.embedded import setup_log

# collect_job's assets: the tables it collects, then their features
COLLECTED = [*COLLECTED_TABLES, "features"]
DEFINITIONS_MODULE = "cryptify_pipeline.definitions"
# a run's warnings shown under its line; the rest are in the UI
SHOWN_WARNINGS = 5


def training_rows(interval_level: float) -> int:
    """Rows whose longest-horizon target has closed that leave MIN_FIT_ROWS to fit after the
    hold-out's purge, and enough held out to calibrate ``interval_level`` at every horizon
    (training.min_known_rows): so the first ``make dev`` draws every horizon's band."""
    return min_known_rows(max(HORIZONS), interval_level)


def warm_up_hours(interval_level: float) -> int:
    """Hours of candles the first model day needs before its cut-off: LOOKBACK_HOURS of candles
    before the first complete feature row, then ``training_rows``. One hour more than the
    features' windows strictly need: a margin, not a guess."""
    return LOOKBACK_HOURS + training_rows(interval_level) + max(HORIZONS) - 1


TRAINING_ROWS = training_rows(DEFAULT_INTERVAL_LEVEL)
WARM_UP_HOURS = warm_up_hours(DEFAULT_INTERVAL_LEVEL)


def default_history_days(forecast_days: int, interval_level: float) -> int:
    """The fewest days of history that give the first model day its warm-up, whatever the hour:
    its cut-off is at least (history - forecast days + 1) days - 23 h after the first hour."""
    return math.ceil((warm_up_hours(interval_level) + 23) / 24) + forecast_days - 1


class BootstrapArgumentError(ValueError):
    """Arguments that cannot work; the message says which would."""


@dataclass(frozen=True)
class Span:
    """What the bootstrap fills: candles and features from ``first_hour`` to ``last_hour``,
    models from ``first_model_day`` to the day before ``today``, forecasts after them."""

    first_hour: datetime
    last_hour: datetime
    first_model_day: datetime
    today: datetime


def plan(
    history_days: int, forecast_days: int, start: datetime, now: datetime,
    interval_level: float = DEFAULT_INTERVAL_LEVEL,
) -> Span:  # fmt: skip
    """The span to fill, refused unless the first model day has ``warm_up_hours`` of history."""
    if history_days < 1 or forecast_days < 1:
        raise BootstrapArgumentError(
            f"--history-days ({history_days}) and --forecast-days ({forecast_days}) must be at "
            "least 1"
        )
    last_hour = last_closed_hour(now)
    today = last_hour.replace(hour=0)
    span = Span(
        first_hour=max(last_hour - timedelta(days=history_days), start),
        last_hour=last_hour,
        first_model_day=today - timedelta(days=forecast_days),
        today=today,
    )
    cutoff = span.first_model_day + DAY  # the first models are trained through its end
    history = (cutoff - span.first_hour) / HOUR
    warm_up = warm_up_hours(interval_level)
    if history >= warm_up:
        return span
    need = (
        f"training needs {warm_up} (the features' {LOOKBACK_HOURS}-hour windows, then "
        f"{training_rows(interval_level)} rows whose {max(HORIZONS)} h target is known, the "
        f"last {VALIDATION_FRACTION:.0%} enough to calibrate {interval_level:.0%} intervals)"
    )
    most_forecast_days = math.floor((today + DAY - span.first_hour) / DAY - warm_up / 24)
    fewer = f"--forecast-days {most_forecast_days} or fewer" if most_forecast_days >= 1 else None
    first_day = (
        f"the first model day ({day_key(span.first_model_day)}, --forecast-days {forecast_days})"
    )
    if last_hour - timedelta(days=history_days) < start:  # the history begins at the start
        raise BootstrapArgumentError(
            f"CRYPTIFY_START ({day_key(start)}) leaves {first_day} {max(history, 0):.0f} hours "
            f"of candles before its cut-off; {need}: use {fewer or 'an earlier CRYPTIFY_START'}"
        )
    fewest_history_days = math.ceil((warm_up * HOUR - (cutoff - last_hour)) / DAY)
    more = f"--history-days {fewest_history_days} or more"
    raise BootstrapArgumentError(
        f"--history-days {history_days} leaves {first_day} {history:.0f} hours of candles before "
        f"its cut-off; {need}: use {more}{f', or {fewer}' if fewer else ''}"
    )


def missing_ranges(
    wanted: Iterable[datetime], done: set[str], key_format: str, step: timedelta
) -> list[tuple[str, str]]:
    """Runs of the partitions starting at ``wanted`` (ascending, ``step`` apart) whose keys are
    not in ``done``, as (first key, last key)."""
    missing = (moment for moment in wanted if moment.strftime(key_format) not in done)
    return [
        (first.strftime(key_format), last.strftime(key_format))
        for first, last in consecutive_runs(missing, step)
    ]


@dataclass(frozen=True)
class Stage:
    """A job, the assets whose materialised partitions say what is done, the partitions that
    start in [start, end), and the job's unpartitioned assets, ``refreshed`` with every run."""

    job: str
    assets: list[str]
    partitions_def: TimeWindowPartitionsDefinition
    start: datetime
    end: datetime
    refreshed: list[str] = field(default_factory=list)

    @property
    def step(self) -> timedelta:
        return HOUR if isinstance(self.partitions_def, HourlyPartitionsDefinition) else DAY


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--history-days", type=int, default=None,
        help="candles and features (default: the fewest that calibrate every horizon's interval)",
    )  # fmt: skip
    parser.add_argument("--forecast-days", type=int, default=14, help="models and forecasts")
    parser.add_argument("--dagster-port", type=int, default=3000, help="the UI's, to show")
    parser.add_argument("--api-port", type=int, default=8000, help="the data API's, to show")
    args = parser.parse_args(argv)
    # soft_wrap: a line is one line, however narrow the terminal (or a pipe's 80 columns)
    console = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    _show_warnings_and_errors(console)

    settings = get_settings()
    history_days = args.history_days
    if history_days is None:
        history_days = default_history_days(args.forecast_days, settings.interval_level)
    try:
        span = plan(
            history_days, args.forecast_days, settings.start, datetime.now(UTC),
            settings.interval_level,
        )  # fmt: skip
    except BootstrapArgumentError as error:
        parser.error(str(error))

    started = time.perf_counter()
    console.print(
        f"Filling candles from {span.first_hour:%Y-%m-%d %H:%M} UTC, models and forecasts from "
        f"{day_key(span.first_model_day)} (--history-days {history_days}, "
        f"--forecast-days {args.forecast_days})"
    )
    with _step(console, "loading the definitions"):
        # imported here: loading the code location reads the settings, which tests of this
        # module's helpers need not have
        from cryptify_pipeline.definitions import defs  # noqa: F401
    where = (
        f"embedded Postgres in {settings.database.embedded_dir}"
        if settings.database.is_embedded
        else "the configured Postgres"
    )
    with _step(console, f"database ({where}) and Dagster instance"):
        instance = _instance()
        instance.get_runs(limit=1)  # connects, creating the storage's tables on a fresh clone

    partitions = Partitions.starting(settings.start)
    first_model_day, today = span.first_model_day, span.today
    hourly, daily = partitions.hourly, partitions.daily
    stages = [
        Stage("collect_job", COLLECTED, hourly, span.first_hour, span.last_hour + HOUR),
        Stage("train_job", ["models"], daily, first_model_day, today),
        Stage("predict_job", ["predictions"], hourly, first_model_day + DAY, span.last_hour + HOUR),
        # a day's forecasts are scored once the next day has closed
        Stage("evaluate_job", ["forecast_metrics", "backtest"], daily, first_model_day + DAY,
              today - DAY, refreshed=["leaderboard", "backtest_summary"]),
    ]  # fmt: skip
    with instance:
        jobs = NamedJobs(instance, console, Path(instance.root_directory) / "bootstrap.log")
        for stage in stages:
            ranges = _missing(instance, stage)
            for first, last in ranges:
                jobs.run(stage.job, [*stage.assets, *stage.refreshed], first, last)
            if ranges:
                continue
            if stage.refreshed and _any_materialized(instance, stage.assets):
                jobs.run(stage.job, stage.refreshed, None, None)  # as after every run
            elif stage.refreshed:
                _line(console, stage.job, "+".join(stage.assets), "nothing scored yet (a day "
                      "is scored once the next has closed)")  # fmt: skip
            else:
                _line(console, stage.job, "+".join(stage.assets), "nothing missing")
    logs = f"the runs' events are in the UI, their console copy in {jobs.log_path}"
    if settings.database.is_embedded:
        data_dir = settings.database.embedded_dir.expanduser().resolve()
        logs += f"; the embedded server logs to {data_dir / 'log'} and {setup_log(data_dir)}"
    console.print(logs)
    console.print(
        f"bootstrap done in {time.perf_counter() - started:.1f} s; once `make dev` has started "
        "the servers (a few seconds), open:"
    )
    console.print(f"  Dagster UI               http://127.0.0.1:{args.dagster_port}")
    console.print(f"  data API and dashboard   http://127.0.0.1:{args.api_port}")


def _show_warnings_and_errors(console: Console) -> None:
    """Warnings and errors of any library (Python's warnings too) on ``console``; their INFO
    and DEBUG lines (alembic's, the embedded server's commands) are not for the terminal."""

    class ConsoleHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            style = "red" if record.levelno >= logging.ERROR else "yellow"
            console.print(Text(self.format(record), style=style))

    handler = ConsoleHandler(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.captureWarnings(True)


@contextlib.contextmanager
def _step(console: Console, what: str) -> Iterator[None]:
    """A spinner while ``what`` runs, then its time."""
    started = time.perf_counter()
    with console.status(what):
        yield
    console.print(f"{what}: ready in {time.perf_counter() - started:.1f} s")


def _line(console: Console, job: str, what: str, outcome: str | Text) -> None:
    console.print(Text.assemble((f"{job:<13}", "bold"), f"{what}: ", outcome))


def _missing(instance: DagsterInstance, stage: Stage) -> list[tuple[str, str]]:
    """The stage's ranges of partitions that some of its assets lack."""
    # a partition is done once every asset of the stage has it (the context assets came later
    # than candles and features: an older install gets them filled)
    done = set.intersection(
        *(set(instance.get_materialized_partitions(AssetKey(name))) for name in stage.assets)
    )
    wanted = _starts(stage.partitions_def, stage.start, stage.end)
    return missing_ranges(wanted, done, stage.partitions_def.fmt, stage.step)


def _any_materialized(instance: DagsterInstance, assets: list[str]) -> bool:
    return any(instance.get_materialized_partitions(AssetKey(name)) for name in assets)


def _instance() -> DagsterInstance:
    """The instance dagster dev would use: $DAGSTER_HOME's, else this folder's dagster.yaml,
    with its local files (compute logs) under .cryptify/ rather than in the checkout."""
    if home := os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.from_config(home)
    local = project_root() / ".cryptify" / "dagster"
    local.mkdir(parents=True, exist_ok=True)
    return DagsterInstance.from_ref(
        InstanceRef.from_dir(str(local), config_dir=str(project_root()))
    )


def _starts(partitions_def, start: datetime, end: datetime) -> list[datetime]:
    """Start times of the partitions that start in [start, end)."""
    if start >= end:
        return []
    keys = partitions_def.get_partition_keys_in_time_window(TimeWindow(start, end))
    return [datetime.strptime(key, partitions_def.fmt).replace(tzinfo=UTC) for key in keys]


def remote_job_origin(job_name: str) -> RemoteJobOrigin:
    """``job_name`` in the code location ``dagster dev`` loads from ``workspace.yaml``: a run
    with this origin is the UI's to re-execute, and the sensors' to see."""
    [location] = location_origins_from_yaml_paths([str(project_root() / "workspace.yaml")])
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME), job_name)


@dataclass
class RunProgress:
    """What the terminal shows of a run while it runs: steps done, the latest message; what it
    shows after: the checks' outcomes and the warnings."""

    progress: Progress
    task: int
    checks: dict[str, bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __call__(self, entry: EventLogEntry) -> None:
        event = entry.dagster_event
        if event is None:  # a step's own log message
            message = f"{entry.step_key}: {entry.user_message}" if entry.step_key else None
            if message and entry.level >= logging.WARNING:
                self.warnings.append(message)
            elif message:
                self.progress.update(self.task, message=message)
        elif event.event_type == DagsterEventType.STEP_START:
            self.progress.update(self.task, message=f"{event.step_key}")
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
                                  DagsterEventType.STEP_SKIPPED):  # fmt: skip
            self.progress.advance(self.task)
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            self.checks[evaluation.check_name] = evaluation.passed

    def describe_checks(self) -> str:
        """``, 5 of 6 checks passed (candles_fresh failed)``; empty without checks."""
        if not self.checks:
            return ""
        failed = sorted(name for name, passed in self.checks.items() if not passed)
        described = f", {len(self.checks) - len(failed)} of {len(self.checks)} checks passed"
        return described + (f" ({', '.join(failed)} failed)" if failed else "")


class NamedJobs:
    """Runs of the code location's jobs, executed in this process and shown on ``console``;
    the console copy of their events goes to ``log_path``."""

    def __init__(self, instance: DagsterInstance, console: Console, log_path: Path) -> None:
        self.instance = instance
        self.console = console
        self.log_path = log_path
        log_path.write_text("")  # this bootstrap's runs only
        # the pointer dagster dev's code server loads: the run can be re-executed in any
        # process (and by any executor) from its origin
        self.repository = ReconstructableRepository.for_module(
            DEFINITIONS_MODULE, "defs", working_directory=str(project_root())
        )

    def run(self, job_name: str, assets: list[str], first: str | None, last: str | None) -> None:
        """One run of ``assets`` (a subset if not all the job's), over ``first``..``last``; a
        run that fails ends the bootstrap with each failed step's own error."""
        started = time.perf_counter()
        job, run = self._new_run(job_name, assets, first, last)
        covered = "" if first is None else f" {first}" if first == last else f" {first} .. {last}"
        what = "+".join(assets) + covered
        plan = self.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        with (
            _progress(self.console) as progress,
            self.log_path.open("a") as log,
            # the runs' console logger writes every event, DEBUG included, to sys.stderr: the
            # events are in the UI, the copy in the log file
            contextlib.redirect_stderr(log),
            contextlib.redirect_stdout(log),
        ):
            steps = len(plan.step_keys_to_execute)
            task = progress.add_task(f"{job_name:<13}{what}", total=steps, message="")
            shown = RunProgress(progress, task)
            self.instance.add_event_listener(run.run_id, shown)
            result = execute_run(job, run, self.instance)
        took = f"in {time.perf_counter() - started:.1f} s"
        what += shown.describe_checks()
        if not result.success:
            outcome = Text(f"FAILED {took} (run {run.run_id} in the UI):", style="bold red")
            _line(self.console, job_name, what, outcome)
            self.console.print(Text(failure_reason(result), style="red"))
            raise SystemExit(1)
        _line(self.console, job_name, what, Text(f"done {took}", style="green"))
        for message in shown.warnings[:SHOWN_WARNINGS]:
            self.console.print(Text(f"  {message}", style="yellow"))
        if len(shown.warnings) > SHOWN_WARNINGS:
            self.console.print(f"  and {len(shown.warnings) - SHOWN_WARNINGS} more in the UI")

    def _new_run(
        self, job_name: str, assets: list[str], first: str | None, last: str | None
    ) -> tuple[ReconstructableJob, DagsterRun]:
        """The run as a schedule's of ``job_name`` would be: the job's own tags (the run
        queue's cryptify/job, the time limit), the range's, and the job's origins."""
        job = self.repository.get_reconstructable_job(job_name)
        load_data = job.repository.get_definition().repository_load_data
        job = job.with_repository_load_data(load_data)
        job_def = job.get_definition()
        subset = {AssetKey(name) for name in assets}
        whole = subset == set(job_def.asset_layer.executable_asset_keys)
        tags = {**partition_tags(first, last), TRIGGER_TAG: "bootstrap"}
        run = self.instance.create_run_for_job(
            job_def=job_def,
            tags={**job_def.run_tags, **tags},
            asset_selection=None if whole else subset,
            job_code_origin=job.get_python_origin(),
            remote_job_origin=remote_job_origin(job_name),
            repository_load_data=load_data,
        )
        return job, run


def partition_tags(first: str | None, last: str | None) -> dict[str, str]:
    """A run of one partition, as the schedules' runs; of a range, as a single-run backfill
    (the sensors' ``partition_request``); of none, unpartitioned."""
    if first is None or last is None:
        return {}
    return {PARTITION_NAME_TAG: first} if first == last else range_tags(first, last)


def _progress(console: Console) -> Progress:
    """A run's bar: steps done, time, the latest step or message (cut to the terminal's width
    rather than wrapped). Only on a terminal: a pipe or a CI log gets the line at the end."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TextColumn(
            "{task.fields[message]}",
            markup=False,
            table_column=Column(no_wrap=True, overflow="ellipsis"),
        ),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        disable=not console.is_terminal,
    )


def failure_reason(result: JobExecutionResult) -> str:
    """Each failed step's own error, one per line; else the run's failure message."""
    reasons = [
        f"{event.step_key}: {own_error(serializable_chain(event.event_specific_data.error))}"
        for event in result.get_step_failure_events()
        if event.event_specific_data is not None and event.event_specific_data.error is not None
    ]
    return "\n".join(reasons) or result.get_run_failure_event().message or "the run failed"


if __name__ == "__main__":
    main()
