"""Schedules, gap repair and the forecast trigger request the right partitions."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
    instance_for_test,
    materialize,
)

from cryptify_pipeline.assets.market import candles
from cryptify_pipeline.definitions import defs
from cryptify_pipeline.io.postgres_io_manager import PostgresPandasIOManager
from cryptify_pipeline.partitions import HOUR_KEY_FORMAT
from cryptify_pipeline.resources import MarketData
from cryptify_pipeline.sensors import (
    automation_conditions,
    candle_gap_repair,
    gap_ranges,
)
from cryptify_pipeline.settings import get_settings
from cryptify_pipeline_tests.conftest import run_sql

FIRST_HOUR = datetime(2025, 1, 1, tzinfo=UTC)


def key(moment: datetime) -> str:
    return moment.strftime(HOUR_KEY_FORMAT)


@pytest.mark.parametrize(
    ("tick", "expected"),
    [
        (datetime(2026, 3, 4, 14, 2, tzinfo=UTC), "2026-03-04-13:00"),
        (datetime(2026, 3, 5, 0, 2, tzinfo=UTC), "2026-03-04-23:00"),
    ],
)
def test_collect_schedule_requests_the_just_closed_hour(tick, expected):
    assert tick_partitions("collect_schedule", tick) == [expected]
    assert defs.get_schedule_def("collect_schedule").cron_schedule == "2 * * * *"


def tick_partitions(name: str, tick: datetime) -> list[str]:
    schedule = defs.get_schedule_def(name)
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=defs.get_repository_def(),
        )
        result = schedule.evaluate_tick(context)
    return [request.partition_key for request in result.run_requests or []]


def test_train_schedule_trains_through_yesterday_at_half_past_midnight():
    assert defs.get_schedule_def("train_schedule").cron_schedule == "30 0 * * *"
    assert tick_partitions("train_schedule", datetime(2026, 3, 5, 0, 30, tzinfo=UTC)) == [
        "2026-03-04"
    ]


def test_evaluate_schedule_scores_the_day_whose_next_day_has_closed():
    # forecasts made on 3 March reach into 4 March, which closed at midnight
    assert defs.get_schedule_def("evaluate_schedule").cron_schedule == "15 0 * * *"
    assert tick_partitions("evaluate_schedule", datetime(2026, 3, 5, 0, 15, tzinfo=UTC)) == [
        "2026-03-03"
    ]
    assert tick_partitions("evaluate_schedule", datetime(2025, 1, 2, 0, 15, tzinfo=UTC)) == []


def test_schedules_and_sensors_run_by_default():
    assert get_settings().automation
    names = ["collect_schedule", "train_schedule", "evaluate_schedule"]
    assert {defs.get_schedule_def(n).default_status.value for n in names} == {"RUNNING"}
    sensors = ["forecast_after_collect", "candle_gap_repair", "record_run_failures"]
    assert {defs.get_sensor_def(n).default_status.value for n in sensors} == {"RUNNING"}
    assert automation_conditions.default_status.value == "RUNNING"


def test_automation_env_var_stops_every_schedule_and_sensor():
    script = (
        "from cryptify_pipeline.definitions import defs\n"
        "print(sorted({s.default_status.value for s in defs.schedules}"
        " | {s.default_status.value for s in defs.sensors}))"
    )
    env = {**os.environ, "CRYPTIFY_AUTOMATION": "off"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['STOPPED']"


def test_new_scores_refresh_the_leaderboard_once():
    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0  # nothing scored yet: nothing to rank
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key="forecast_metrics", partition="2025-02-02")
        )
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert second.get_num_requested(AssetKey("leaderboard")) == 1
        assert second.total_requested == 1
        third = evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
        assert third.total_requested == 0


def test_leaderboard_refreshed_by_evaluate_job_is_not_requested_again():
    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        # evaluate_job writes the scores and the leaderboard in one run
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key="forecast_metrics", partition="2025-02-02")
        )
        instance.report_runless_asset_event(AssetMaterialization(asset_key="leaderboard"))
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert second.total_requested == 0


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
    days = get_settings().gap_repair_days
    now = datetime.now(UTC)
    newest = (now - timedelta(minutes=20)).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=1
    )
    oldest = newest - timedelta(days=days) + timedelta(hours=1)
    gap = (newest - timedelta(hours=30), newest - timedelta(hours=27))
    storage = {
        "custom": {
            "module": "cryptify_pipeline.instance_storage",
            "class": "CryptifyPostgresStorage",
            "config": {"schema": f"{instance_schema}_gaps"},
        }
    }
    resources = {
        "io_manager": PostgresPandasIOManager(schema=schema),
        "market": MarketData(source="sample", symbols=["BTC/USDT"]),
    }
    try:
        with instance_for_test(overrides={"storage": storage}) as instance:
            for first, last in [
                (oldest, gap[0] - timedelta(hours=1)),
                (gap[1] + timedelta(hours=1), newest),
            ]:
                assert materialize(
                    [candles],
                    instance=instance,
                    resources=resources,
                    tags={
                        "dagster/asset_partition_range_start": key(first),
                        "dagster/asset_partition_range_end": key(last),
                    },
                ).success
            requests = candle_gap_repair(build_sensor_context(instance=instance))
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{instance_schema}_gaps" CASCADE')
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    ] == [(key(gap[0]), key(gap[1]))]
    assert requests[0].run_key.startswith(f"candle-gap:{key(gap[0])}:{key(gap[1])}:")


def test_bootstrap_requests_only_the_missing_runs_of_partitions():
    from cryptify_pipeline.bootstrap import missing_ranges

    wanted = ["a", "b", "c", "d", "e", "f"]
    assert missing_ranges(wanted, {"c", "f"}) == [("a", "b"), ("d", "e")]
    assert missing_ranges(wanted, set(wanted)) == []
    assert missing_ranges(wanted, set()) == [("a", "f")]
