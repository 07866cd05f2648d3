"""Schedules. They run by default (also in ``dagster dev``); CRYPTIFY_AUTOMATION=off stops them."""

from dagster import DefaultScheduleStatus, build_schedule_from_partitioned_job

from cryptify_pipeline.jobs import collect_job
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
