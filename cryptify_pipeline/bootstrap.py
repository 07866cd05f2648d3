"""Fill the recent weeks, candles through leaderboard, so a first ``make dev`` shows it all.

    python -m cryptify_pipeline.bootstrap [--history-days 60] [--forecast-days 14]

Runs on the instance ``dagster dev`` uses (``$DAGSTER_HOME``, else this folder's
``dagster.yaml``), so its runs appear in the UI. Only partitions not yet materialised are
requested, each contiguous run of them as one single-run backfill, so running it again is cheap.

The arguments are checked before anything runs: the first model day needs enough history
before it (``WARM_UP_HOURS``). A run that fails anyway stops the bootstrap with the failing
step's own error.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import AssetKey, DagsterInstance, materialize
from dagster._core.definitions.partitions.utils import TimeWindow
from dagster._core.instance.ref import InstanceRef

from cryptify_pipeline.cli.step_errors import own_error, serializable_chain
from cryptify_pipeline.hours import DAY, HOUR, consecutive_runs, day_key, last_closed_hour
from cryptify_pipeline.market.context import COLLECTED_TABLES
from cryptify_pipeline.ml.features import LOOKBACK_HOURS
from cryptify_pipeline.ml.targets import HORIZONS
from cryptify_pipeline.ml.training import min_known_rows
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.run_tags import TRIGGER_TAG, range_tags
from cryptify_pipeline.settings import get_settings, project_root

# collect_job's assets: the tables it collects, then their features
COLLECTED = [*COLLECTED_TABLES, "features"]

log = logging.getLogger("cryptify.bootstrap")

# Hours of candles the first model day needs before its cut-off: LOOKBACK_HOURS of candles
# before the first complete feature row, then the rows whose longest-horizon target has closed
# that leave MIN_FIT_ROWS to fit and MIN_VALIDATION_ROWS held out after the hold-out's purge
# (training.split_rows). One hour more than the features' windows strictly need: a margin, not
# a guess.
TRAINING_ROWS = min_known_rows(max(HORIZONS))
WARM_UP_HOURS = LOOKBACK_HOURS + TRAINING_ROWS + max(HORIZONS) - 1


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


def plan(history_days: int, forecast_days: int, start: datetime, now: datetime) -> Span:
    """The span to fill, refused unless the first model day has ``WARM_UP_HOURS`` of history."""
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
    if history >= WARM_UP_HOURS:
        return span
    need = (
        f"training needs {WARM_UP_HOURS} (the features' {LOOKBACK_HOURS}-hour windows, then "
        f"{TRAINING_ROWS} rows whose {max(HORIZONS)} h target is known)"
    )
    most_forecast_days = math.floor((today + DAY - span.first_hour) / DAY - WARM_UP_HOURS / 24)
    fewer = f"--forecast-days {most_forecast_days} or fewer" if most_forecast_days >= 1 else None
    first_day = (
        f"the first model day ({day_key(span.first_model_day)}, --forecast-days {forecast_days})"
    )
    if last_hour - timedelta(days=history_days) < start:  # the history begins at the start
        raise BootstrapArgumentError(
            f"CRYPTIFY_START ({day_key(start)}) leaves {first_day} {max(history, 0):.0f} hours "
            f"of candles before its cut-off; {need}: use {fewer or 'an earlier CRYPTIFY_START'}"
        )
    fewest_history_days = math.ceil((WARM_UP_HOURS * HOUR - (cutoff - last_hour)) / DAY)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history-days", type=int, default=60, help="candles and features")
    parser.add_argument("--forecast-days", type=int, default=14, help="models and forecasts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    settings = get_settings()
    try:
        span = plan(args.history_days, args.forecast_days, settings.start, datetime.now(UTC))
    except BootstrapArgumentError as error:
        parser.error(str(error))

    # imported here: loading the code location reads the settings, which tests of this
    # module's helpers need not have
    from cryptify_pipeline.definitions import defs

    partitions = Partitions.starting(settings.start)
    first_model_day, today = span.first_model_day, span.today
    hourly, daily = partitions.hourly, partitions.daily
    stages = [
        (COLLECTED, hourly, span.first_hour, span.last_hour + HOUR),
        (["models"], daily, first_model_day, today),
        (["predictions"], hourly, first_model_day + DAY, span.last_hour + HOUR),
        # a day's forecasts are scored once the next day has closed
        (["forecast_metrics", "backtest"], daily, first_model_day + DAY, today - DAY),
    ]
    assets = list(defs.assets or [])
    resources = defs.resources
    with _instance() as instance:
        for selection, partitions_def, start, end in stages:
            # a partition is done once every asset of the stage has it (the context assets
            # came later than candles and features: an older install gets them filled)
            done = set.intersection(
                *(set(instance.get_materialized_partitions(AssetKey(name))) for name in selection)
            )
            wanted = _starts(partitions_def, start, end)
            step = HOUR if partitions_def is hourly else DAY
            for first, last in missing_ranges(wanted, done, partitions_def.fmt, step):
                _run(instance, assets, resources, selection, first, last)
        if instance.get_materialized_partitions(AssetKey("forecast_metrics")):
            _run(instance, assets, resources, ["leaderboard", "backtest_summary"], None, None)
        else:
            log.info("leaderboard: nothing scored yet (a day is scored once the next has closed)")
    log.info("bootstrap done: open the UI with `dagster dev` (make dev does both)")


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


def _run(instance, assets, resources, selection, first, last) -> None:
    started = time.perf_counter()
    tags = range_tags(first, last) if first else {}
    result = materialize(
        assets, selection=selection, instance=instance, resources=resources,
        tags={**tags, TRIGGER_TAG: "bootstrap"}, raise_on_error=False,
    )  # fmt: skip
    what = f"{'+'.join(selection)}{f' {first} .. {last}' if first else ''}"
    took = f"in {time.perf_counter() - started:.1f} s"
    if result.success:
        log.info(f"{what}: done {took}")
        return
    log.error(f"{what}: FAILED {took} (run {result.run_id} in the UI):\n{failure_reason(result)}")
    raise SystemExit(1)


def failure_reason(result) -> str:
    """Each failed step's own error, one per line; else the run's failure message."""
    reasons = [
        f"{event.step_key}: {own_error(serializable_chain(event.event_specific_data.error))}"
        for event in result.get_step_failure_events()
        if event.event_specific_data is not None and event.event_specific_data.error is not None
    ]
    return "\n".join(reasons) or result.get_run_failure_event().message or "the run failed"


if __name__ == "__main__":
    main()
