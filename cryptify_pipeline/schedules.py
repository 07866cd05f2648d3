"""Schedules. They run by default (also in ``dagster dev``); CRYPTIFY_AUTOMATION=off stops them.

All times are UTC. Forecasts are not scheduled: the ``forecast_after_collect`` sensor starts
them as soon as the hour's features are written.
"""

from datetime import datetime, timedelta

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    build_schedule_from_partitioned_job,
    schedule,
)

from cryptify_pipeline.jobs import collect_job, evaluate_job, train_job
from cryptify_pipeline.partitions import DAY_KEY_FORMAT, daily_partitions
from cryptify_pipeline.settings import get_settings

DEFAULT_STATUS = (
    DefaultScheduleStatus.RUNNING if get_settings().automation else DefaultScheduleStatus.STOPPED
)

# At HH:02 the newest partition is the hour that closed at HH:00.
collect_schedule = build_schedule_from_partitioned_job(
    collect_job,
    name="collect_schedule",
    minute_of_hour=2,
    default_status=DEFAULT_STATUS,
    description="Collects the hour that has just closed, two minutes after it closed.",
)

# At 00:30 the newest daily partition is yesterday, whose last candle was collected at 00:02.
train_schedule = build_schedule_from_partitioned_job(
    train_job,
    name="train_schedule",
    hour_of_day=0,
    minute_of_hour=30,
    default_status=DEFAULT_STATUS,
    description="Trains the models through the end of the previous day, at 00:30.",
)


def day_to_evaluate(tick: datetime) -> str:
    """The day whose forecasts can be scored at ``tick``: its 24h forecasts end with the next
    day, whose last candle is collected at 00:02 the day after that."""
    return (tick.date() - timedelta(days=2)).strftime(DAY_KEY_FORMAT)


@schedule(
    job=evaluate_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=DEFAULT_STATUS,
    description="Scores the forecasts of the day before yesterday and refreshes the leaderboard.",
)
def evaluate_schedule(context: ScheduleEvaluationContext):
    day = day_to_evaluate(context.scheduled_execution_time)
    if day < daily_partitions.start.strftime(DAY_KEY_FORMAT):
        return SkipReason(f"{day} is before the first partition")
    return RunRequest(run_key=f"evaluate:{day}", partition_key=day)


ALL_SCHEDULES = [collect_schedule, train_schedule, evaluate_schedule]
