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
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from cryptify_pipeline.definitions import defs
from cryptify_pipeline.partitions import daily_partitions, hourly_partitions
from cryptify_pipeline.resources import build_resources
from cryptify_pipeline.settings import get_settings, project_root

log = logging.getLogger("cryptify.bootstrap")


def missing_ranges(wanted: Iterable[str], done: set[str]) -> list[tuple[str, str]]:
    """Contiguous runs of ``wanted`` keys (in order) that are not in ``done``."""
    ranges: list[list[str]] = []
    previous_missing = False
    for key in wanted:
        if key in done:
            previous_missing = False
        elif previous_missing:
            ranges[-1][1] = key
        else:
            ranges.append([key, key])
            previous_missing = True
    return [(first, last) for first, last in ranges]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history-days", type=int, default=60, help="candles and features")
    parser.add_argument("--forecast-days", type=int, default=14, help="models and forecasts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    now = datetime.now(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    today = last_hour.replace(hour=0)
    first_hour = max(last_hour - timedelta(days=args.history_days), get_settings().start)
    first_model_day = today - timedelta(days=args.forecast_days)
    hours = _keys(hourly_partitions, first_hour, last_hour + timedelta(hours=1))
    stages = [
        (["candles", "features"], hours),
        (["models"], _keys(daily_partitions, first_model_day, today)),
        (
            ["predictions"],
            _keys(
                hourly_partitions,
                first_model_day + timedelta(days=1),
                last_hour + timedelta(hours=1),
            ),
        ),  # fmt: skip
        # a day's forecasts are scored once the next day has closed
        (
            ["forecast_metrics"],
            _keys(daily_partitions, first_model_day + timedelta(days=1), today - timedelta(days=1)),
        ),  # fmt: skip
    ]
    assets = list(defs.assets or [])
    resources = build_resources()
    with _instance() as instance:
        for selection, wanted in stages:
            done = instance.get_materialized_partitions(AssetKey(selection[-1]))
            for first, last in missing_ranges(wanted, done):
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


def _keys(partitions, start: datetime, end: datetime) -> list[str]:
    """Keys of the partitions that start in [start, end)."""
    return (
        list(partitions.get_partition_keys_in_time_window(TimeWindow(start, end)))
        if start < end
        else []
    )


def _run(instance, assets, resources, selection, first, last) -> None:
    started = time.perf_counter()
    tags = (
        {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
        if first
        else {}
    )
    result = materialize(
        assets, selection=selection, instance=instance, resources=resources,
        tags={**tags, "cryptify/trigger": "bootstrap"}, raise_on_error=False,
    )  # fmt: skip
    span = f" {first} .. {last}" if first else ""
    status = "done" if result.success else "FAILED (see the run in the UI)"
    log.info(f"{'+'.join(selection)}{span}: {status} in {time.perf_counter() - started:.1f} s")
    if not result.success:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
