"""The code location: every asset, check, job, schedule, sensor and resource of the pipeline,
built from the settings once, when Dagster loads ``defs``."""

from collections.abc import Mapping

from dagster import DefaultScheduleStatus, DefaultSensorStatus, Definitions

from cryptify_pipeline.assets import build_asset_checks, build_assets
from cryptify_pipeline.automation.executors import job_executor
from cryptify_pipeline.automation.jobs import build_jobs
from cryptify_pipeline.automation.schedules import build_schedules
from cryptify_pipeline.automation.sensors import build_sensors
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import build_resources
from cryptify_pipeline.settings import Settings, get_settings


def default_statuses(automation: bool) -> tuple[DefaultScheduleStatus, DefaultSensorStatus]:
    """Every schedule and sensor runs by default (also in ``dagster dev``);
    ``CRYPTIFY_AUTOMATION=off`` creates them all stopped."""
    if automation:
        return DefaultScheduleStatus.RUNNING, DefaultSensorStatus.RUNNING
    return DefaultScheduleStatus.STOPPED, DefaultSensorStatus.STOPPED


def build_definitions(
    settings: Settings, resources: Mapping[str, object] | None = None
) -> Definitions:
    """Everything, from ``settings``; ``resources`` replace ``build_resources(settings)``."""
    partitions = Partitions.starting(settings.start)
    executor = job_executor(settings)
    jobs = build_jobs(executor)
    schedule_status, sensor_status = default_statuses(settings.automation)
    return Definitions(
        assets=build_assets(partitions, settings.interval_level),
        asset_checks=build_asset_checks(partitions),
        jobs=jobs.all,
        schedules=build_schedules(jobs, partitions, schedule_status),
        sensors=build_sensors(jobs, partitions, sensor_status),
        resources=build_resources(settings) if resources is None else resources,
        # also the executor of runs outside the jobs (asset backfills, materialisations from the
        # UI): Dagster's default starts a process per step, seconds each
        executor=executor,
    )


defs = build_definitions(get_settings())
