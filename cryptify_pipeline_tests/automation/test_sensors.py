"""The sensors request the right partitions: gap repair, forecasts after a collection, and the
repairs of missed forecasts and scores."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)

from cryptify_pipeline.automation.sensors import (
    forecastable_ranges,
    gap_ranges,
    scoring_state,
)
from cryptify_pipeline.hours import day_key, floor_hour, hour_key, hours_between
from cryptify_pipeline.market.context import FAILED, RETRYABLE, STATUS_KEY
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.instances import isolated, own_instance, report
from cryptify_pipeline_tests.support.pipeline import range_tags

FIRST_HOUR = datetime(2025, 1, 1, tzinfo=UTC)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
key = hour_key


def run_event(instance: DagsterInstance, run_id: str, event_type: DagsterEventType):
    records = instance.get_records_for_run(run_id, of_type=event_type).records
    return records[-1].event_log_entry.dagster_event


def hour_keys(first: datetime, last: datetime) -> list[str]:
    return [key(hour) for hour in hours_between(first, last)]


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


def test_sensor_requests_exactly_the_missing_hours(schema):
    days = 3
    now = datetime.now(UTC)
    newest = floor_hour(now - timedelta(minutes=20)) - timedelta(hours=1)
    oldest = newest - timedelta(days=days) + timedelta(hours=1)
    gap = (newest - timedelta(hours=30), newest - timedelta(hours=27))
    resources = pipeline.resources(
        schema, pipeline.sample_market(["BTC/USDT"], gap_repair_days=days)
    )
    defs = pipeline.definitions(schema, market=resources["market"])
    collected = [
        defs.get_assets_def(name)
        for name in ("candles", "open_interest", "funding_rates", "equity_index")
    ]
    with own_instance("gaps") as instance:
        for first, last in [
            (oldest, gap[0] - timedelta(hours=1)),
            (gap[1] + timedelta(hours=1), newest),
        ]:
            assert materialize(
                collected, instance=instance, resources=resources,
                tags=range_tags(key(first), key(last)),
            ).success  # fmt: skip
        # the gap's candles alone do not fill it: its context is missing too
        assert materialize(
            collected[:1], instance=instance, resources=resources,
            tags=range_tags(key(gap[0]), key(gap[1])),
        ).success  # fmt: skip
        sensor = defs.resolve_sensor_def("candle_gap_repair")
        with build_sensor_context(instance=instance, resources=resources) as context:
            requests = isolated(sensor, context)
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    ] == [(key(gap[0]), key(gap[1]))]
    assert requests[0].run_key.startswith(f"candle-gap:{key(gap[0])}:{key(gap[1])}:")


def test_sensor_requests_hours_whose_context_failed_transiently(schema):
    now = datetime.now(UTC)
    newest = floor_hour(now - timedelta(minutes=20)) - timedelta(hours=1)
    oldest = newest - timedelta(days=1) + timedelta(hours=1)
    resources = pipeline.resources(schema, pipeline.sample_market(["BTC/USDT"], gap_repair_days=1))
    defs = pipeline.definitions(schema, market=resources["market"])
    collected = [
        defs.get_assets_def(name)
        for name in ("candles", "open_interest", "funding_rates", "equity_index")
    ]
    failed, final = newest - timedelta(hours=5), newest - timedelta(hours=9)
    with own_instance("context-gaps") as instance:
        assert materialize(
            collected, instance=instance, resources=resources,
            tags=range_tags(key(oldest), key(newest)),
        ).success  # fmt: skip
        sensor = defs.resolve_sensor_def("candle_gap_repair")
        with build_sensor_context(instance=instance, resources=resources) as context:
            assert "no missing candle or context hours" in isolated(sensor, context).skip_message
        # written after a source failure: a transient one is repaired, a final one is not
        for hour, status in ((failed, RETRYABLE), (final, FAILED)):
            instance.report_runless_asset_event(
                AssetMaterialization(
                    "equity_index", partition=key(hour), metadata={STATUS_KEY: status}
                )  # fmt: skip
            )
        with build_sensor_context(instance=instance, resources=resources) as context:
            requests = isolated(sensor, context)
    assert [r.partition_key for r in requests] == [key(failed)]  # one hour: a partition run


def test_forecastable_ranges_keep_hours_whose_previous_day_has_models():
    ranges = forecastable_ranges("2025-07-01-22:00", "2025-07-03-01:00", ["2025-07-01"])
    assert ranges == [("2025-07-02-00:00", "2025-07-02-23:00")]
    assert forecastable_ranges("2025-07-01-22:00", "2025-07-01-23:00", ["2025-07-01"]) == []


def test_successful_collection_requests_forecasts_for_its_hours(instance, schema):
    defs = pipeline.definitions(schema)
    forecast_after_collect = defs.resolve_sensor_def("forecast_after_collect")
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


def test_scoring_waits_for_candles_then_scores_and_rescores_late_data():
    now = datetime(2026, 3, 5, 1, 0, tzinfo=UTC)  # 3 March is the newest scorable day
    day = datetime(2026, 3, 3, tzinfo=UTC)
    made = dict.fromkeys(hour_keys(day, day + timedelta(hours=23)), 10)
    # its forecasts are scored against the candles of 06:00 on 3 March to 23:00 on 4 March
    targets = hour_keys(day + timedelta(hours=6), day + timedelta(hours=47))
    collected = dict.fromkeys(targets, 20)
    del collected["2026-03-04-02:00"], collected["2026-03-04-03:00"]
    state = scoring_state(made, collected, {}, now, 1, FIRST_HOUR)
    assert state.to_score == {}
    assert state.waiting == {
        "2026-03-03": [datetime(2026, 3, 4, 2, tzinfo=UTC), datetime(2026, 3, 4, 3, tzinfo=UTC)]
    }
    collected.update({"2026-03-04-02:00": 30, "2026-03-04-03:00": 31})  # gap repair
    assert scoring_state(made, collected, {}, now, 1, FIRST_HOUR).to_score == {"2026-03-03": 31}
    scored = {"2026-03-03": 40}
    assert scoring_state(made, collected, scored, now, 1, FIRST_HOUR).to_score == {}
    collected["2026-03-03-20:00"] = 50  # a late candle re-collected after scoring
    assert scoring_state(made, collected, scored, now, 1, FIRST_HOUR).to_score == {"2026-03-03": 50}
    made["2026-03-03-01:00"] = 60  # a repaired forecast
    assert scoring_state(made, collected, scored, now, 1, FIRST_HOUR).to_score == {"2026-03-03": 60}
    # before the evaluate schedule has had its turn (00:15, with 45 minutes' grace) nothing
    early = datetime(2026, 3, 5, 0, 40, tzinfo=UTC)
    assert scoring_state(made, collected, {}, early, 1, FIRST_HOUR).to_score == {}


def test_forecast_repair_requests_the_hours_left_unforecast(schema):
    # two days ago, whose models (of three days ago) were trained only after its first hours
    day = floor_hour(datetime.now(UTC)).replace(hour=0) - timedelta(days=2)
    newest = floor_hour(datetime.now(UTC)) - timedelta(hours=1)
    defs = pipeline.definitions(schema)
    predictions = AssetKey("predictions")

    def requested(instance: DagsterInstance) -> set[str]:
        result = evaluate_automation_conditions(
            defs, instance, asset_selection=AssetSelection.assets(predictions)
        )
        return set(result.get_requested_partitions(predictions))

    with own_instance("forecasts") as instance:
        featured = hour_keys(day - timedelta(hours=2), day + timedelta(hours=23))
        report(instance, "features", [*featured, key(newest)])
        report(instance, "models", [day_key(hour - timedelta(days=1))
                                    for hour in (day, newest)])  # fmt: skip
        report(
            instance, "predictions", hour_keys(day + timedelta(hours=3), day + timedelta(hours=23))
        )
        # the day before has no models of its day before: nothing to forecast with; the newest
        # hour, with features and models, is forecast_after_collect's
        assert requested(instance) == set(hour_keys(day, day + timedelta(hours=2)))
        # a repair of the first that fails (its inputs were only reported, there is no table
        # to read them from) is not launched again every 10 minutes
        failed = defs.resolve_job_def("predict_job").execute_in_process(
            partition_key=key(day), instance=instance, raise_on_error=False
        )
        assert not failed.success
        assert requested(instance) == set(
            hour_keys(day + timedelta(hours=1), day + timedelta(hours=2))
        )
        report(instance, "predictions", hour_keys(day, day + timedelta(hours=2)))
        assert requested(instance) == set()
    sensor = defs.resolve_sensor_def("forecast_repair")
    # its runs queue and time out as predict_job's own
    assert sensor.run_tags["cryptify/job"] == "predict_job"
    assert sensor.run_tags["dagster/max_runtime"] == "300"
    assert sensor.run_tags["cryptify/trigger"] == "forecast_repair"
    assert sensor.asset_selection.resolve(defs.resolve_asset_graph()) == {predictions}
    others = defs.resolve_sensor_def("automation_conditions").asset_selection
    assert predictions not in others.resolve(defs.resolve_asset_graph())


def test_missing_scores_sensor_waits_for_late_candles_and_rescores_when_they_arrive(schema):
    # three days ago: scorable since yesterday's last candle closed
    day = floor_hour(datetime.now(UTC) - timedelta(hours=1)).replace(hour=0) - timedelta(days=3)
    first_target, last_target = day + timedelta(hours=6), day + timedelta(hours=47)
    late = day + timedelta(hours=30)
    defs = pipeline.definitions(schema)
    sensor = defs.resolve_sensor_def("missing_scores")
    with own_instance("scores") as instance:

        def evaluate():
            with build_sensor_context(
                instance=instance, resources=pipeline.resources(schema)
            ) as context:
                return isolated(sensor, context)

        report(instance, "predictions", hour_keys(day, day + timedelta(hours=23)))
        report(instance, "candles", [k for k in hour_keys(first_target, last_target)
                                     if k != key(late)])  # fmt: skip
        waiting = evaluate()
        assert f"{day_key(day)} waits for candles {key(late)}" in waiting.skip_message
        report(instance, "candles", [key(late)])  # gap repair collected it
        [request] = evaluate()
        assert request.partition_key == day_key(day) and sensor.job_name == "evaluate_job"
        report(instance, "forecast_metrics", [day_key(day)])
        assert "scored on all its inputs" in evaluate().skip_message
        report(instance, "candles", [key(late)])  # corrected by a later collection
        [rescore] = evaluate()
    assert rescore.partition_key == day_key(day) and rescore.run_key != request.run_key
