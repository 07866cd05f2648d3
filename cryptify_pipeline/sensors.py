"""Sensors: forecasts after each collection, gap repair for ``candles``, run-failure records,
and the one that evaluates automation conditions."""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from cryptify_pipeline.io import pg_tables
from cryptify_pipeline.io.candles import HOUR
from cryptify_pipeline.io.run_failures import RunFailure, record_run_failure
from cryptify_pipeline.jobs import collect_job, predict_job
from cryptify_pipeline.partitions import DAY_KEY_FORMAT, HOUR_KEY_FORMAT, hourly_partitions
from cryptify_pipeline.resources import FailureAlerts, PostgresDatabase
from cryptify_pipeline.run_tags import describe_partitions, run_partition_range
from cryptify_pipeline.settings import get_settings

DEFAULT_STATUS = (
    DefaultSensorStatus.RUNNING if get_settings().automation else DefaultSensorStatus.STOPPED
)
# The schedule fetches each hour at HH:02; leave it the hour before calling the hour a gap.
SCHEDULE_GRACE = timedelta(minutes=20)


def hour_ranges(
    first: datetime, last: datetime, wanted: Callable[[datetime], bool]
) -> list[tuple[str, str]]:
    """Runs of consecutive hours in [first, last] for which ``wanted`` holds, as
    (first key, last key), oldest first."""
    ranges: list[list[datetime]] = []
    hour = first
    while hour <= last:
        if wanted(hour):
            if ranges and ranges[-1][1] == hour - HOUR:
                ranges[-1][1] = hour
            else:
                ranges.append([hour, hour])
        hour += HOUR
    return [(a.strftime(HOUR_KEY_FORMAT), b.strftime(HOUR_KEY_FORMAT)) for a, b in ranges]


def gap_ranges(
    materialized: Iterable[str], now: datetime, days: int, first_hour: datetime
) -> list[tuple[str, str]]:
    """Runs of consecutive closed hours in the last ``days`` days that have no materialisation,
    as (first key, last key), oldest first."""
    newest = (now - SCHEDULE_GRACE).replace(minute=0, second=0, microsecond=0) - HOUR
    oldest = max(newest - timedelta(days=days) + HOUR, first_hour)
    done = set(materialized)
    return hour_ranges(oldest, newest, lambda hour: hour.strftime(HOUR_KEY_FORMAT) not in done)


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


def forecastable_ranges(
    first: str, last: str, modelled_days: Iterable[str]
) -> list[tuple[str, str]]:
    """Runs of hours in [first, last] whose previous day has models, as (first, last) keys."""
    days = set(modelled_days)
    return hour_ranges(
        datetime.strptime(first, HOUR_KEY_FORMAT),
        datetime.strptime(last, HOUR_KEY_FORMAT),
        lambda hour: (hour - timedelta(days=1)).strftime(DAY_KEY_FORMAT) in days,
    )


def _partition_request(run_key: str, first: str, last: str) -> RunRequest:
    if first == last:
        return RunRequest(run_key=run_key, partition_key=first)
    return RunRequest(
        run_key=run_key,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )


# A run-status sensor rather than declarative automation: it fires on the collect run's success
# within seconds (automation ticks every 30 s and looks only at the newest partition) and
# forecasts exactly the hours that run wrote, backfills and gap repairs included.
@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[collect_job],
    request_job=predict_job,
    minimum_interval_seconds=2,
    default_status=DEFAULT_STATUS,
    description="Forecasts the hours a successful collect_job run wrote, where models exist.",
)
def forecast_after_collect(context: RunStatusSensorContext):
    run = context.dagster_run
    covered = run_partition_range(run.tags)
    if covered is None:
        return SkipReason(f"collect run {run.run_id} has no partition")
    modelled = context.instance.get_materialized_partitions(AssetKey("models"))
    ranges = forecastable_ranges(*covered, modelled)
    if not ranges:
        return SkipReason(
            f"no models trained through the day before {covered[0]}..{covered[1]} yet; "
            "train_job makes them at 00:30 UTC"
        )
    return [
        _partition_request(f"forecast:{run.run_id}:{first}", first, last) for first, last in ranges
    ]


def describe_failure(context: RunFailureSensorContext) -> RunFailure:
    run = context.dagster_run
    steps = context.get_step_failure_events()
    errors = [
        step.event_specific_data.error.message.strip()
        for step in steps
        if step.event_specific_data is not None and step.event_specific_data.error is not None
    ]
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record is not None and record.end_time else None
    return RunFailure(
        run_id=run.run_id,
        job_name=run.job_name,
        partitions=describe_partitions(run.tags),
        failed_steps=tuple(step.step_key for step in steps if step.step_key),
        message=errors[0] if errors else (context.failure_event.message or "run failed"),
        failed_at=datetime.fromtimestamp(ended, UTC) if ended else datetime.now(UTC),
    )


@run_failure_sensor(
    minimum_interval_seconds=10,
    default_status=DEFAULT_STATUS,
    description=(
        "Logs every failed run and records it in the run_failures table; with "
        "CRYPTIFY_ALERT_WEBHOOK_URL set, also posts it there as JSON."
    ),
)
def record_run_failures(
    context: RunFailureSensorContext, database: PostgresDatabase, alerts: FailureAlerts
) -> None:
    failure = describe_failure(context)
    context.log.error(
        f"run {failure.run_id} of {failure.job_name} failed"
        f"{f' [{failure.partitions}]' if failure.partitions else ''}: {failure.message}"
    )
    with pg_tables.transaction(database.url()) as connection:
        record_run_failure(connection, database.schema_name, failure)
    if alerts.send(failure):
        context.log.info(f"alert for run {failure.run_id} posted")


# Dagster's own automation sensor starts stopped; this one runs by default, so assets with an
# automation condition (the leaderboard, after new scores) update themselves.
automation_conditions = AutomationConditionSensorDefinition(
    "automation_conditions",
    target=AssetSelection.all(),
    default_status=DEFAULT_STATUS,
    description="Evaluates the assets' automation conditions (e.g. leaderboard after scores).",
)
