"""Fill the recent weeks, candles through leaderboard, so a first ``make dev`` shows it all.

    python -m cryptify_pipeline.bootstrap [--history-days 60] [--forecast-days 14]

Runs on the instance ``dagster dev`` uses (``$DAGSTER_HOME``, else this folder's
``dagster.yaml``), so its runs appear in the UI. Only partitions not yet materialised are
requested, each contiguous run of them as one single-run backfill, so running it again is cheap.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from dagster import AssetKey, DagsterInstance, materialize
from dagster._core.definitions.partitions.utils import TimeWindow
from dagster._core.instance.ref import InstanceRef

from cryptify_pipeline.automation.run_tags import TRIGGER_TAG, range_tags
from cryptify_pipeline.hours import DAY, HOUR, consecutive_runs, last_closed_hour
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.settings import get_settings, project_root

log = logging.getLogger("cryptify.bootstrap")


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

    # imported here: loading the code location reads the settings, which tests of this
    # module's helpers need not have
    from cryptify_pipeline.definitions import defs

    settings = get_settings()
    partitions = Partitions.starting(settings.start)
    last_hour = last_closed_hour(datetime.now(UTC))
    today = last_hour.replace(hour=0)
    first_hour = max(last_hour - timedelta(days=args.history_days), settings.start)
    first_model_day = today - timedelta(days=args.forecast_days)
    hourly, daily = partitions.hourly, partitions.daily
    stages = [
        (["candles", "features"], hourly, first_hour, last_hour + HOUR),
        (["models"], daily, first_model_day, today),
        (["predictions"], hourly, first_model_day + DAY, last_hour + HOUR),
        # a day's forecasts are scored once the next day has closed
        (["forecast_metrics"], daily, first_model_day + DAY, today - DAY),
    ]
    assets = list(defs.assets or [])
    resources = defs.resources
    with _instance() as instance:
        for selection, partitions_def, start, end in stages:
            done = instance.get_materialized_partitions(AssetKey(selection[-1]))
            wanted = _starts(partitions_def, start, end)
            step = HOUR if partitions_def is hourly else DAY
            for first, last in missing_ranges(wanted, done, partitions_def.fmt, step):
                _run(instance, assets, resources, selection, first, last)
        if instance.get_materialized_partitions(AssetKey("forecast_metrics")):
            _run(instance, assets, resources, ["leaderboard"], None, None)
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
    span = f" {first} .. {last}" if first else ""
    status = "done" if result.success else "FAILED (see the run in the UI)"
    log.info(f"{'+'.join(selection)}{span}: {status} in {time.perf_counter() - started:.1f} s")
    if not result.success:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
