"""The code location: every asset, check, job, schedule, sensor and resource of the pipeline,
built from the settings once, when Dagster loads ``defs``.

The resources are built here rather than beside their classes: the alerts' resource belongs to
``automation/``, which sits above ``resources.py``, and only this module sees both.
"""

from collections.abc import Mapping

from dagster import DefaultScheduleStatus, DefaultSensorStatus, Definitions, EnvVar

from cryptify_pipeline.assets import build_asset_checks, build_assets
from cryptify_pipeline.automation.alerts import FailureAlerts
from cryptify_pipeline.automation.conditions import with_repair_conditions
from cryptify_pipeline.automation.executors import job_executor
from cryptify_pipeline.automation.jobs import build_jobs
from cryptify_pipeline.automation.schedules import build_schedules
from cryptify_pipeline.automation.sensors import build_sensors
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import Forecasting, MarketData, ModelSigning, PostgresDatabase
from cryptify_pipeline.settings import Settings, get_settings
from cryptify_pipeline.storage.io_manager import PostgresPandasIOManager


def _env_or_none(name: str, value: object | None) -> EnvVar | None:
    return EnvVar(name) if value is not None else None


def build_resources(settings: Settings) -> dict[str, object]:
    database = PostgresDatabase.from_settings(settings.database, settings.schema)
    return {
        "io_manager": PostgresPandasIOManager(database=database),
        "database": database,
        "alerts": FailureAlerts(
            webhook_url=_env_or_none("CRYPTIFY_ALERT_WEBHOOK_URL", settings.alert_webhook_url),
            first_retry_seconds=settings.alert_first_retry_seconds,
        ),
        "market": MarketData(
            source=settings.source,
            symbols=list(settings.symbols),
            exchange_api_url=_env_or_none("CRYPTIFY_EXCHANGE_API_URL", settings.exchange_api_url),
            gap_repair_days=settings.gap_repair_days,
            price_jump_bound=settings.price_jump_bound,
            context_source=settings.context_source,
            context_api_url=_env_or_none("CRYPTIFY_CONTEXT_API_URL", settings.context_api_url),
            equity_index_source_setting=settings.equity_index_source,
            equity_indexes=list(settings.equity_indexes),
        ),
        "model_signing": ModelSigning(
            key=_env_or_none("CRYPTIFY_MODEL_SIGNING_KEY", settings.model_signing_key),
            key_file=None if settings.model_signing_key else str(settings.model_signing_key_file),
        ),
        "forecasting": Forecasting(
            interval_level=settings.interval_level, training_jobs=settings.training_jobs
        ),
    }


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
        assets=with_repair_conditions(
            build_assets(partitions, settings.interval_level, settings.freshness_minutes),
            settings.gap_repair_days,
        ),
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
