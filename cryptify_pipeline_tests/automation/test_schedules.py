"""Schedules request the right partitions, and every schedule and sensor's default status."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    build_schedule_context,
    evaluate_automation_conditions,
)

from cryptify_pipeline.definitions import build_definitions
from cryptify_pipeline.hours import hour_key
from cryptify_pipeline.settings import load_settings
from cryptify_pipeline_tests.support.database import subprocess_env
from cryptify_pipeline_tests.support.instances import isolated, own_instance, report

defs = build_definitions(load_settings({}))


@pytest.mark.integration  # ticks on an instance of its own
@pytest.mark.parametrize(
    ("tick", "expected"),
    [
        (datetime(2026, 3, 4, 14, 2, tzinfo=UTC), "2026-03-04-13:00"),
        (datetime(2026, 3, 5, 0, 2, tzinfo=UTC), "2026-03-04-23:00"),
    ],
)
def test_collect_schedule_requests_the_just_closed_hour(tick, expected):
    assert tick_partitions("collect_schedule", tick) == [expected]
    assert defs.resolve_schedule_def("collect_schedule").cron_schedule == "2 * * * *"


def tick_partitions(name: str, tick: datetime, collected: list[str] = ()) -> list[str]:
    return [r.partition_key for r in tick_result(name, tick, collected).run_requests or []]


def tick_result(name: str, tick: datetime, collected: list[str] = ()):
    """The schedule's tick, on an instance where the ``collected`` candle hours exist."""
    schedule = defs.resolve_schedule_def(name)
    with own_instance("schedules") as instance:
        report(instance, "candles", collected)
        context = build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=defs.get_repository_def(),
        )
        return isolated(schedule.evaluate_tick, context)


@pytest.mark.integration  # ticks on an instance of its own
def test_train_schedule_trains_through_yesterday_at_half_past_midnight():
    assert defs.resolve_schedule_def("train_schedule").cron_schedule == "30 0 * * *"
    assert tick_partitions("train_schedule", datetime(2026, 3, 5, 0, 30, tzinfo=UTC)) == [
        "2026-03-04"
    ]


@pytest.mark.integration  # ticks on an instance of its own
def test_evaluate_schedule_scores_the_day_whose_next_day_has_closed():
    # forecasts made on 3 March reach into 4 March, which closed at midnight: they are scored
    # against the candles of 06:00 on 3 March to 23:00 on 4 March
    tick = datetime(2026, 3, 5, 0, 15, tzinfo=UTC)
    targets = [
        hour_key(datetime(2026, 3, 3, 6, tzinfo=UTC) + timedelta(hours=h)) for h in range(42)
    ]
    assert defs.resolve_schedule_def("evaluate_schedule").cron_schedule == "15 0 * * *"
    assert tick_partitions("evaluate_schedule", tick, targets) == ["2026-03-03"]
    assert tick_partitions("evaluate_schedule", datetime(2025, 1, 2, 0, 15, tzinfo=UTC)) == []


@pytest.mark.integration  # ticks on an instance of its own
def test_evaluate_schedule_skips_a_day_whose_target_candles_are_not_collected():
    tick = datetime(2026, 3, 5, 0, 15, tzinfo=UTC)
    targets = [
        hour_key(datetime(2026, 3, 3, 6, tzinfo=UTC) + timedelta(hours=h)) for h in range(42)
    ]
    missed = {"2026-03-04-02:00", "2026-03-04-03:00", "2026-03-04-23:00"}
    result = tick_result("evaluate_schedule", tick, [h for h in targets if h not in missed])
    assert not result.run_requests
    assert result.skip_message == (
        "2026-03-03 waits for candles not collected yet: 2026-03-04-02:00..2026-03-04-03:00, "
        "2026-03-04-23:00; the missing_scores sensor scores it once they are in"
    )


def test_schedules_and_sensors_run_by_default():
    assert load_settings({}).automation
    names = ["collect_schedule", "train_schedule", "evaluate_schedule"]
    assert {defs.resolve_schedule_def(n).default_status.value for n in names} == {"RUNNING"}
    sensors = [
        "forecast_after_collect",
        "candle_gap_repair",
        "forecast_repair",
        "missing_scores",
        "record_run_failures",
        "fail_stale_runs",
    ]
    assert {defs.resolve_sensor_def(n).default_status.value for n in sensors} == {"RUNNING"}
    assert defs.resolve_sensor_def("automation_conditions").default_status.value == "RUNNING"


def test_automation_env_var_stops_every_schedule_and_sensor():
    script = (
        "from cryptify_pipeline.definitions import defs\n"
        "print(sorted({s.default_status.value for s in defs.schedules}"
        " | {s.default_status.value for s in defs.sensors}))"
    )
    env = subprocess_env(CRYPTIFY_AUTOMATION="off")
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


def test_a_new_backtest_day_refreshes_the_summary_once_unless_evaluate_job_did():
    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key="backtest", partition="2025-02-02")
        )
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert second.get_num_requested(AssetKey("backtest_summary")) == 1
        assert second.total_requested == 1
        # evaluate_job writes the day's backtest and the summary in one run
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key="backtest", partition="2025-02-03")
        )
        instance.report_runless_asset_event(AssetMaterialization(asset_key="backtest_summary"))
        third = evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
        assert third.total_requested == 0


def test_evaluate_job_backtests_the_day_beside_scoring_it():
    selected = defs.resolve_job_def("evaluate_job").asset_layer.executable_asset_keys
    assert {key.to_user_string() for key in selected} == {
        "forecast_metrics", "leaderboard", "backtest", "backtest_summary",
    }  # fmt: skip
