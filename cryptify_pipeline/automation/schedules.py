"""Schedules, all in UTC. Forecasts are not scheduled: the ``forecast_after_collect`` sensor
starts them as soon as the hour's features are written."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    DagsterEventType,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    build_schedule_from_partitioned_job,
    schedule,
)

from cryptify_pipeline.automation.jobs import Jobs
from cryptify_pipeline.hours import DAY_KEY_FORMAT, day_key, describe_runs, hour_key, hours_between
from cryptify_pipeline.ml.targets import scored_against
from cryptify_pipeline.partitions import Partitions


def day_to_evaluate(tick: datetime) -> str:
    """The day whose forecasts can be scored at ``tick``: its 24h forecasts end with the next
    day, whose last candle is collected at 00:02 the day after that."""
    return day_key(tick - timedelta(days=2))


def build_schedules(
    jobs: Jobs, partitions: Partitions, status: DefaultScheduleStatus
) -> list[ScheduleDefinition]:
    # At HH:02 the newest partition is the hour that closed at HH:00.
    collect_schedule = build_schedule_from_partitioned_job(
        jobs.collect,
        name="collect_schedule",
        minute_of_hour=2,
        default_status=status,
        description="Collects the hour that has just closed, two minutes after it closed.",
    )
    # At 00:30 the newest daily partition is yesterday, whose last candle was collected at 00:02.
    train_schedule = build_schedule_from_partitioned_job(
        jobs.train,
        name="train_schedule",
        hour_of_day=0,
        minute_of_hour=30,
        default_status=status,
        description="Trains the models through the end of the previous day, at 00:30.",
    )
    first_day = day_key(partitions.daily.start)

    @schedule(
        job=jobs.evaluate,
        cron_schedule="15 0 * * *",
        execution_timezone="UTC",
        default_status=status,
        description="Scores the forecasts of the day before yesterday and refreshes the "
        "leaderboard.",
    )
    def evaluate_schedule(context: ScheduleEvaluationContext):
        day = day_to_evaluate(context.scheduled_execution_time)
        if day < first_day:
            return SkipReason(f"{day} is before the first partition")
        first, last = scored_against(datetime.strptime(day, DAY_KEY_FORMAT).replace(tzinfo=UTC))
        hours = hours_between(first, last)
        collected = context.instance.get_latest_storage_id_by_partition(
            AssetKey("candles"), DagsterEventType.ASSET_MATERIALIZATION, set(map(hour_key, hours))
        )
        absent = [hour for hour in hours if hour_key(hour) not in collected]
        if absent:
            return SkipReason(
                f"{day} waits for candles not collected yet: {describe_runs(absent)}; the "
                "missing_scores sensor scores it once they are in"
            )
        return RunRequest(run_key=f"evaluate:{day}", partition_key=day)

    return [collect_schedule, train_schedule, evaluate_schedule]
