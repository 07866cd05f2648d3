"""Sensors: forecasts after each collection, gap repair for ``candles``, run-failure records
and their alerts, and the one that evaluates automation conditions."""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_status_sensor,
    sensor,
)

from cryptify_pipeline.automation.failures import (
    DELIVERED,
    cursor_for,
    cursor_record_id,
    describe_failure,
    failure_events_after,
    latest_failure_record_id,
    record_run_failure,
)
from cryptify_pipeline.automation.jobs import Jobs
from cryptify_pipeline.automation.run_tags import TRIGGER_TAG, range_tags, run_partition_range
from cryptify_pipeline.hours import (
    DAY,
    HOUR,
    HOUR_KEY_FORMAT,
    consecutive_runs,
    day_key,
    floor_hour,
    hour_key,
    hours_between,
)
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import FailureAlerts, MarketData, PostgresDatabase
from cryptify_pipeline.storage import pg_tables

# The schedule fetches each hour at HH:02; leave it the hour before calling the hour a gap.
SCHEDULE_GRACE = timedelta(minutes=20)
# Failed runs recorded per tick of record_run_failures (more wait for the next tick).
FAILURES_PER_TICK = 25


def hour_ranges(
    first: datetime, last: datetime, wanted: Callable[[datetime], bool]
) -> list[tuple[str, str]]:
    """Runs of consecutive hours in [first, last] for which ``wanted`` holds, as
    (first key, last key), oldest first."""
    runs = consecutive_runs(hour for hour in hours_between(first, last) if wanted(hour))
    return [(hour_key(a), hour_key(b)) for a, b in runs]


def gap_ranges(
    materialized: Iterable[str], now: datetime, days: int, first_hour: datetime
) -> list[tuple[str, str]]:
    """Runs of consecutive closed hours in the last ``days`` days that have no materialisation,
    as (first key, last key), oldest first."""
    newest = floor_hour(now - SCHEDULE_GRACE) - HOUR
    oldest = max(newest - timedelta(days=days) + HOUR, first_hour)
    done = set(materialized)
    return hour_ranges(oldest, newest, lambda hour: hour_key(hour) not in done)


def forecastable_ranges(
    first: str, last: str, modelled_days: Iterable[str]
) -> list[tuple[str, str]]:
    """Runs of hours in [first, last] whose previous day has models, as (first, last) keys."""
    days = set(modelled_days)
    return hour_ranges(
        datetime.strptime(first, HOUR_KEY_FORMAT),
        datetime.strptime(last, HOUR_KEY_FORMAT),
        lambda hour: day_key(hour - DAY) in days,
    )


def partition_request(run_key: str, first: str, last: str, **tags: str) -> RunRequest:
    """A run of the partitions ``first``..``last``: one key, or one run over the range."""
    if first == last:
        return RunRequest(run_key=run_key, partition_key=first, tags=tags)
    return RunRequest(run_key=run_key, tags={**range_tags(first, last), **tags})


def in_code_location(context: SensorEvaluationContext, run: DagsterRun) -> bool:
    """Whether ``run`` belongs to the sensor's code location and repository (both None for a
    run executed in process and a sensor evaluated directly, as Dagster's own run-status
    sensors match them)."""
    origin = run.remote_job_origin
    location = context.code_location_origin
    return (
        origin.repository_origin.code_location_origin.location_name if origin else None,
        origin.repository_origin.repository_name if origin else None,
    ) == (location.location_name if location else None, context.repository_name)


def build_sensors(
    jobs: Jobs, partitions: Partitions, status: DefaultSensorStatus
) -> list[SensorDefinition]:
    first_hour = partitions.first_hour.astimezone(UTC)

    @sensor(
        job=jobs.collect,
        minimum_interval_seconds=600,
        default_status=status,
        description="Requests candles for hours missing in the last CRYPTIFY_GAP_REPAIR_DAYS days.",
    )
    def candle_gap_repair(context: SensorEvaluationContext, market: MarketData):
        now = datetime.now(UTC)
        materialized = context.instance.get_materialized_partitions(AssetKey("candles"))
        gaps = gap_ranges(materialized, now, market.gap_repair_days, first_hour)
        if not gaps:
            return SkipReason(f"no missing candle hours in the last {market.gap_repair_days} days")
        context.log.info(f"requesting {len(gaps)} missing range(s): {gaps}")
        # one single-run backfill per range; the run key lets each range go out once an hour
        return [
            partition_request(
                f"candle-gap:{first}:{last}:{now:%Y-%m-%dT%H}",
                first,
                last,
                **{TRIGGER_TAG: "gap_repair"},
            )
            for first, last in gaps
        ]

    # A run-status sensor rather than declarative automation: it fires on the collect run's
    # success within seconds (automation ticks every 30 s and looks only at the newest
    # partition) and forecasts exactly the hours that run wrote, backfills and gap repairs too.
    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[jobs.collect],
        request_job=jobs.predict,
        minimum_interval_seconds=2,
        default_status=status,
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
            partition_request(f"forecast:{run.run_id}:{first}", first, last)
            for first, last in ranges
        ]

    # A plain sensor with its own cursor, not run_failure_sensor: that one calls its function
    # only for new failures and moves its cursor past a failure even when the function
    # raised, so an alert whose POST failed was lost. Here the cursor moves only once the
    # failures are committed to run_failures, and every tick retries the pending alerts.
    @sensor(
        minimum_interval_seconds=10,
        default_status=status,
        description=(
            "Logs every failed run and records it in the run_failures table; with "
            "CRYPTIFY_ALERT_WEBHOOK_URL set, also posts it there as JSON, retrying with "
            "backoff until delivered (alert_state in run_failures)."
        ),
    )
    def record_run_failures(
        context: SensorEvaluationContext, database: PostgresDatabase, alerts: FailureAlerts
    ) -> SkipReason:
        after = cursor_record_id(context.cursor)
        if after is None:  # a new sensor starts from now, as Dagster's run-status sensors do
            context.update_cursor(cursor_for(latest_failure_record_id(context.instance)))
            return SkipReason("started: runs that fail from now on are recorded")
        events = failure_events_after(context.instance, after, FAILURES_PER_TICK)
        failures = [
            describe_failure(context.instance, event.run, event.event)
            for event in events
            if event.run is not None and in_code_location(context, event.run)
        ]
        if failures:
            with pg_tables.transaction(database.connection_url()) as connection:
                for failure in failures:
                    record_run_failure(
                        connection, database.schema_name, failure, alerts.state_of_new_alerts()
                    )
        for failure in failures:
            context.log.error(
                f"run {failure.run_id} of {failure.job_name} failed"
                f"{f' [{failure.partitions}]' if failure.partitions else ''}: {failure.message}"
            )
        if events:
            context.update_cursor(cursor_for(events[-1].record_id))
        attempts = alerts.deliver_due(database)
        for attempt in attempts:
            (context.log.info if attempt.state == DELIVERED else context.log.warning)(str(attempt))
        delivered = sum(attempt.state == DELIVERED for attempt in attempts)
        return SkipReason(
            f"{len(failures)} failed run(s) recorded; {delivered} of {len(attempts)} alert "
            "post(s) delivered"
        )

    # Dagster's own automation sensor starts stopped; this one runs by default, so assets with
    # an automation condition (the leaderboard, after new scores) update themselves.
    automation_conditions = AutomationConditionSensorDefinition(
        "automation_conditions",
        target=AssetSelection.all(),
        default_status=status,
        description="Evaluates the assets' automation conditions (e.g. leaderboard after scores).",
    )
    return [forecast_after_collect, candle_gap_repair, record_run_failures, automation_conditions]
