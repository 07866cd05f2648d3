"""The sensors request the right partitions: gap repair, and forecasts after a collection."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetMaterialization,
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from cryptify_pipeline.automation.sensors import forecastable_ranges, gap_ranges
from cryptify_pipeline.hours import floor_hour, hour_key
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql, suite_database_url
from cryptify_pipeline_tests.support.pipeline import range_tags

FIRST_HOUR = datetime(2025, 1, 1, tzinfo=UTC)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
key = hour_key


def run_event(instance: DagsterInstance, run_id: str, event_type: DagsterEventType):
    records = instance.get_records_for_run(run_id, of_type=event_type).records
    return records[-1].event_log_entry.dagster_event


def test_gap_ranges_are_the_missing_runs_of_hours():
    now = datetime(2026, 3, 4, 14, 30, tzinfo=UTC)  # 13:00 closed 30 min ago
    newest = datetime(2026, 3, 4, 13, tzinfo=UTC)
    window = [newest - timedelta(hours=h) for h in range(24)]
    missing = {newest, newest - timedelta(hours=5), newest - timedelta(hours=6)}
    done = [key(hour) for hour in window if hour not in missing]
    assert gap_ranges(done, now, days=1, first_hour=FIRST_HOUR) == [
        ("2026-03-04-07:00", "2026-03-04-08:00"),
        ("2026-03-04-13:00", "2026-03-04-13:00"),
    ]


def test_gap_ranges_leave_the_schedule_its_hour_and_respect_the_start():
    now = datetime(2025, 1, 1, 3, 10, tzinfo=UTC)  # 02:00 closed 10 minutes ago
    assert gap_ranges([], now, days=7, first_hour=FIRST_HOUR) == [
        ("2025-01-01-00:00", "2025-01-01-01:00")
    ]


def test_sensor_requests_exactly_the_missing_hours(schema, instance_schema):
    days = 3
    now = datetime.now(UTC)
    newest = floor_hour(now - timedelta(minutes=20)) - timedelta(hours=1)
    oldest = newest - timedelta(days=days) + timedelta(hours=1)
    gap = (newest - timedelta(hours=30), newest - timedelta(hours=27))
    storage = {
        "custom": {
            "module": "cryptify_pipeline.storage.instance_storage",
            "class": "CryptifyPostgresStorage",
            "config": {"schema": f"{instance_schema}_gaps", "url": suite_database_url().libpq},
        }
    }
    resources = pipeline.resources(
        schema, pipeline.sample_market(["BTC/USDT"], gap_repair_days=days)
    )
    defs = pipeline.definitions(schema, market=resources["market"])
    try:
        with instance_for_test(overrides={"storage": storage}) as instance:
            for first, last in [
                (oldest, gap[0] - timedelta(hours=1)),
                (gap[1] + timedelta(hours=1), newest),
            ]:
                assert materialize(
                    [defs.get_assets_def("candles")],
                    instance=instance,
                    resources=resources,
                    tags=range_tags(key(first), key(last)),
                ).success
            sensor = defs.get_sensor_def("candle_gap_repair")
            with build_sensor_context(instance=instance, resources=resources) as context:
                requests = sensor(context)
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{instance_schema}_gaps" CASCADE')
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    ] == [(key(gap[0]), key(gap[1]))]
    assert requests[0].run_key.startswith(f"candle-gap:{key(gap[0])}:{key(gap[1])}:")


def test_forecastable_ranges_keep_hours_whose_previous_day_has_models():
    ranges = forecastable_ranges("2025-07-01-22:00", "2025-07-03-01:00", ["2025-07-01"])
    assert ranges == [("2025-07-02-00:00", "2025-07-02-23:00")]
    assert forecastable_ranges("2025-07-01-22:00", "2025-07-01-23:00", ["2025-07-01"]) == []


def test_successful_collection_requests_forecasts_for_its_hours(instance, schema):
    defs = pipeline.definitions(schema)
    forecast_after_collect = defs.get_sensor_def("forecast_after_collect")
    result = defs.resolve_job_def("collect_job").execute_in_process(
        instance=instance, tags=range_tags("2025-07-01-22:00", "2025-07-02-01:00")
    )
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    success = run_event(instance, result.run_id, DagsterEventType.RUN_SUCCESS)

    def evaluate():
        context = build_run_status_sensor_context(
            sensor_name="forecast_after_collect",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=success,
        )
        return forecast_after_collect(context)

    skipped = evaluate()  # no models yet: nothing to forecast with
    assert "no models trained through the day before" in skipped.skip_message
    instance.report_runless_asset_event(AssetMaterialization("models", partition="2025-07-01"))
    [request] = evaluate()
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (
        "2025-07-02-00:00",
        "2025-07-02-01:00",
    )
    assert request.run_key == f"forecast:{result.run_id}:2025-07-02-00:00"
    assert forecast_after_collect.job_name == "predict_job"
