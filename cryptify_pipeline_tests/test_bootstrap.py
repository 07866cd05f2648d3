"""The bootstrap fills the recent weeks once, and only what is missing after that; it refuses
arguments that leave too little history before anything runs, and a failed run stops it with
the failing step's own error."""

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cryptify_pipeline.bootstrap import (
    WARM_UP_HOURS,
    BootstrapArgumentError,
    default_history_days,
    missing_ranges,
    plan,
    warm_up_hours,
)
from cryptify_pipeline.hours import DAY, DAY_KEY_FORMAT, HOUR
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.features import build_features
from cryptify_pipeline.ml.targets import HORIZONS, with_targets
from cryptify_pipeline.ml.training import train_all
from cryptify_pipeline.settings import project_root
from cryptify_pipeline_tests.support.database import run_sql, subprocess_env

ROOT = project_root()
NOW = datetime(2026, 11, 28, 18, 6, tzinfo=UTC)  # the last closed hour is 17:00
START = datetime(2025, 1, 1, tzinfo=UTC)
NEED = (
    "training needs 2619 (the features' 320-hour windows, then 2276 rows whose 24 h target is "
    "known, the last 20% enough to calibrate 90% intervals)"
)


def test_bootstrap_requests_only_the_missing_runs_of_partitions():
    days = [datetime(2025, 3, day, tzinfo=UTC) for day in range(1, 7)]
    keys = [day.strftime(DAY_KEY_FORMAT) for day in days]
    assert missing_ranges(days, {keys[2], keys[5]}, DAY_KEY_FORMAT, DAY) == [
        (keys[0], keys[1]),
        (keys[3], keys[4]),
    ]
    assert missing_ranges(days, set(keys), DAY_KEY_FORMAT, DAY) == []
    assert missing_ranges(days, set(), DAY_KEY_FORMAT, DAY) == [(keys[0], keys[5])]


@pytest.mark.slow
def test_bootstrap_runs_the_whole_chain_and_then_has_nothing_left_to_do(schema, tmp_path):
    command = [sys.executable, "-m", "cryptify_pipeline.bootstrap",
               "--history-days", "113", "--forecast-days", "3"]  # fmt: skip
    # its own instance: materialisation records must describe this schema's tables
    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  custom:\n    module: cryptify_pipeline.storage.instance_storage\n"
        f"    class: CryptifyPostgresStorage\n    config:\n      schema: {schema}_dagster\n"
    )
    env = subprocess_env(CRYPTIFY_SCHEMA=schema, DAGSTER_HOME=str(tmp_path))
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    counts = {
        table: run_sql(f'SELECT count(*) FROM "{schema}".{table}')[0][0]
        for table in ("candles", "open_interest", "funding_rates", "equity_index", "features",
                      "models", "predictions", "forecast_metrics", "leaderboard")
    }  # fmt: skip
    assert all(counts.values()), counts
    # the first run draws every band: every model at every horizon has an interval
    uncalibrated = run_sql(
        f'SELECT horizon_h, count(*) FROM "{schema}".models WHERE NOT interval_calibrated'
        " GROUP BY 1"
    )
    assert uncalibrated == [], uncalibrated
    assert run_sql(f'SELECT count(*) FROM "{schema}".predictions WHERE lower IS NULL') == [(0,)]
    assert "bootstrap done" in first.stderr
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    # only the leaderboard is refreshed (and any hour that closed in between)
    assert "models" not in again.stderr.split("bootstrap done")[0].replace("leaderboard", "")
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')


def test_the_warm_up_calibrates_every_horizon_with_an_hour_to_spare():
    # the first model day's held-out rows give every horizon its interval (456 residuals at
    # 24 h and 90%); two hours fewer, and the 24 h interval is the first to go
    first_hour = datetime(2025, 3, 1, tzinfo=UTC)
    end = first_hour + (WARM_UP_HOURS + 48) * HOUR
    candles = SampleMarket().fetch(["BTC/USDT", "ETH/USDT"], first_hour, end)
    rows = with_targets(build_features(candles, first_hour, end))
    cutoff = first_hour + WARM_UP_HOURS * HOUR
    models = train_all(rows, cutoff, HORIZONS, ["zero_return"], 180, interval_level=0.9)
    assert len(models) == 2 * len(HORIZONS) and models["interval_calibrated"].all()
    short = train_all(rows, cutoff - 2 * HOUR, HORIZONS, ["zero_return"], 180,
                      interval_level=0.9)  # fmt: skip
    assert short.set_index(["symbol", "horizon_h"])["interval_calibrated"].to_dict() == {
        (symbol, horizon): horizon != 24 for symbol in ("BTC/USDT", "ETH/USDT")
        for horizon in HORIZONS
    }  # fmt: skip


def test_the_default_history_is_the_fewest_days_that_work_at_any_hour():
    for level in (0.9, 0.95):
        days = default_history_days(14, level)
        for hour in range(24):
            now = datetime(2026, 11, 28, hour, 6, tzinfo=UTC)
            plan(days, 14, START, now, level)
        with pytest.raises(BootstrapArgumentError):  # one fewer fails at some hour of the day
            for hour in range(24):
                plan(days - 1, 14, START, datetime(2026, 11, 28, hour, 6, tzinfo=UTC), level)
    assert default_history_days(14, 0.9) == 124  # was 60 before intervals needed 19 windows
    assert warm_up_hours(0.95) > WARM_UP_HOURS == warm_up_hours(0.9)


def test_arguments_that_leave_too_little_history_are_refused_with_what_would_do():
    span = plan(123, 14, START, NOW)
    assert span.first_hour == datetime(2026, 7, 28, 17, tzinfo=UTC)
    assert span.first_model_day == datetime(2026, 11, 14, tzinfo=UTC)
    assert plan(130, 14, START, NOW).first_hour == datetime(2026, 7, 21, 17, tzinfo=UTC)
    cases = [
        ((60, 14, START), "--history-days 60 leaves the first model day (2026-11-14, "
         f"--forecast-days 14) 1111 hours of candles before its cut-off; {NEED}: use "
         "--history-days 123 or more"),
        ((120, 14, START), "--history-days 120 leaves the first model day (2026-11-14, "
         f"--forecast-days 14) 2551 hours of candles before its cut-off; {NEED}: use "
         "--history-days 123 or more, or --forecast-days 11 or fewer"),
        ((123, 14, datetime(2026, 8, 1, tzinfo=UTC)), "CRYPTIFY_START (2026-08-01) leaves the "
         "first model day (2026-11-14, --forecast-days 14) 2544 hours of candles before its "
         f"cut-off; {NEED}: use --forecast-days 10 or fewer"),
        ((123, 14, datetime(2026, 11, 20, tzinfo=UTC)), "CRYPTIFY_START (2026-11-20) leaves the "
         "first model day (2026-11-14, --forecast-days 14) 0 hours of candles before its "
         f"cut-off; {NEED}: use an earlier CRYPTIFY_START"),
        ((0, 14, START), "--history-days (0) and --forecast-days (14) must be at least 1"),
        ((60, -1, START), "--history-days (60) and --forecast-days (-1) must be at least 1"),
    ]  # fmt: skip
    for args, message in cases:
        with pytest.raises(BootstrapArgumentError) as refused:
            plan(*args, NOW)
        assert str(refused.value) == message
    # what each message proposes works
    plan(123, 14, START, NOW), plan(120, 11, START, NOW)
    plan(123, 10, datetime(2026, 8, 1, tzinfo=UTC), NOW)


def bootstrap(schema: str, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m cryptify_pipeline.bootstrap`` on its own instance in ``home``."""
    (home / "dagster.yaml").write_text(
        "storage:\n  custom:\n    module: cryptify_pipeline.storage.instance_storage\n"
        f"    class: CryptifyPostgresStorage\n    config:\n      schema: {schema}_dagster\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "cryptify_pipeline.bootstrap", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=subprocess_env(CRYPTIFY_SCHEMA=schema, DAGSTER_HOME=str(home), **env),
    )  # fmt: skip


def test_too_little_history_is_refused_before_anything_runs(schema, tmp_path):
    before = datetime.now(UTC)
    refused = bootstrap(schema, tmp_path, "--history-days", "20")
    after = datetime.now(UTC)
    assert refused.returncode == 2
    error = refused.stderr.strip().splitlines()[-1]
    assert error.startswith("bootstrap.py: error: --history-days 20 leaves the first model day")
    # the fewest days depend on the hour of the day the bootstrap runs: check the advice is
    # the fewest that works at that time (at most one hour boundary falls between before and
    # after, so one of them saw the bootstrap's hour) rather than pinning a number
    suggested = int(re.search(r"use --history-days (\d+) or more", error).group(1))

    def fewest_at(now: datetime) -> bool:
        def accepted(history_days: int) -> bool:
            try:
                plan(history_days, 14, START, now)
            except BootstrapArgumentError:
                return False
            return True

        return accepted(suggested) and not accepted(suggested - 1)

    assert fewest_at(before) or fewest_at(after), suggested
    # no run was made: the instance's storage was never even created
    assert run_sql("SELECT to_regnamespace(%s)", (f"{schema}_dagster",)) == [(None,)]


def test_a_failed_run_stops_the_bootstrap_with_the_steps_own_error(schema, tmp_path):
    empty = tmp_path / "no-dumps-here"
    empty.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    try:
        failed = bootstrap(schema, home, "--forecast-days", "3",
                           CRYPTIFY_SOURCE=f"file:{empty}")  # fmt: skip
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert "candles+" in lines[-2] and "+features" in lines[-2], lines[-4:]
    assert "FAILED" in lines[-2] and "in the UI" in lines[-2]
    assert lines[-1].startswith("candles: ") and str(empty) in lines[-1], lines[-1]
    assert "Traceback" not in failed.stderr
