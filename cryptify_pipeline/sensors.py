"""Sensors: gap repair for ``candles``, and the one that evaluates automation conditions."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from cryptify_pipeline.io.candles import HOUR
from cryptify_pipeline.jobs import collect_job
from cryptify_pipeline.partitions import hourly_partitions
from cryptify_pipeline.settings import get_settings

KEY_FORMAT = "%Y-%m-%d-%H:%M"
DEFAULT_STATUS = (
    DefaultSensorStatus.RUNNING if get_settings().automation else DefaultSensorStatus.STOPPED
)
# The schedule fetches each hour at HH:02; leave it the hour before calling the hour a gap.
SCHEDULE_GRACE = timedelta(minutes=20)


def gap_ranges(
    materialized: Iterable[str], now: datetime, days: int, first_hour: datetime
) -> list[tuple[str, str]]:
    """Runs of consecutive closed hours in the last ``days`` days that have no materialisation,
    as (first key, last key), oldest first."""
    newest = (now - SCHEDULE_GRACE).replace(minute=0, second=0, microsecond=0) - HOUR
    oldest = max(newest - timedelta(days=days) + HOUR, first_hour)
    done = set(materialized)
    ranges: list[list[datetime]] = []
    hour = oldest
    while hour <= newest:
        if hour.strftime(KEY_FORMAT) not in done:
            if ranges and ranges[-1][1] == hour - HOUR:
                ranges[-1][1] = hour
            else:
                ranges.append([hour, hour])
        hour += HOUR
    return [(first.strftime(KEY_FORMAT), last.strftime(KEY_FORMAT)) for first, last in ranges]


@sensor(
    job=collect_job,
    minimum_interval_seconds=600,
    default_status=DEFAULT_STATUS,
    description="Requests candles for hours missing in the last CRYPTIFY_GAP_REPAIR_DAYS days.",
)
def candle_gap_repair(context: SensorEvaluationContext):
    now = datetime.now(UTC)
    settings = get_settings()
    materialized = context.instance.get_materialized_partitions(AssetKey("candles"))
    first_hour = hourly_partitions.start.astimezone(UTC)
    gaps = gap_ranges(materialized, now, settings.gap_repair_days, first_hour)
    if not gaps:
        return SkipReason(f"no missing candle hours in the last {settings.gap_repair_days} days")
    context.log.info(f"requesting {len(gaps)} missing range(s): {gaps}")
    # one single-run backfill per range; the run key lets each range go out once an hour
    return [
        RunRequest(
            run_key=f"candle-gap:{first}:{last}:{now:%Y-%m-%dT%H}",
            tags={
                ASSET_PARTITION_RANGE_START_TAG: first,
                ASSET_PARTITION_RANGE_END_TAG: last,
                "cryptify/trigger": "gap_repair",
            },
        )
        for first, last in gaps
    ]


# Dagster's own automation sensor starts stopped; this one runs by default, so assets with an
# automation condition (the leaderboard, after new scores) update themselves.
automation_conditions = AutomationConditionSensorDefinition(
    "automation_conditions",
    target=AssetSelection.all(),
    default_status=DEFAULT_STATUS,
    description="Evaluates the assets' automation conditions (e.g. leaderboard after scores).",
)
