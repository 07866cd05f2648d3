"""The bootstrap fills the recent weeks once, and only what is missing after that; it refuses
arguments that leave too little history before anything runs, and a failed run stops it with
the failing step's own error.

A fresh bootstrap is what a person sees on a fresh clone: on the embedded server it starts
itself, through the named jobs the schedules run, every asset check evaluated, and a terminal
that shows its stages rather than every event of its runs."""

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test
from dagster._core.workspace.load import load_workspace_process_context_from_yaml_paths
from dagster_graphql.test.utils import execute_dagster_graphql

from cryptify_pipeline.bootstrap import (
    WARM_UP_HOURS,
    BootstrapArgumentError,
    default_history_days,
    missing_ranges,
    partition_tags,
    plan,
    warm_up_hours,
)
from cryptify_pipeline.hours import DAY, DAY_KEY_FORMAT, HOUR
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.features import build_features
from cryptify_pipeline.ml.models import PRICE, models_of
from cryptify_pipeline.ml.targets import HORIZONS, with_targets
from cryptify_pipeline.ml.training import train_all
from cryptify_pipeline.run_tags import JOB_TAG, TRIGGER_TAG, run_partition_range
from cryptify_pipeline.settings import DEFAULT_INTERVAL_LEVEL, project_root
from cryptify_pipeline.storage.embedded import start_embedded_server, stop_embedded_server
from cryptify_pipeline_tests.support.browser import chromium
from cryptify_pipeline_tests.support.database import (
    DATABASE_VARIABLES,
    run_sql,
    run_sql_on,
    subprocess_env,
)
from cryptify_pipeline_tests.support.live_api import live_api

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


def test_one_partition_is_a_run_of_it_and_a_range_one_single_run_backfill():
    # as the schedules and the sensors request them (automation/sensors.py partition_request)
    assert partition_tags("2026-12-07-21:00", "2026-12-07-21:00") == {
        "dagster/partition": "2026-12-07-21:00"
    }
    assert run_partition_range(partition_tags("2026-12-01", "2026-12-03")) == (
        "2026-12-01",
        "2026-12-03",
    )
    assert "dagster/partition" not in partition_tags("2026-12-01", "2026-12-03")
    assert partition_tags(None, None) == {}


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
        # the market context off: its steps, which do not need the candles, would otherwise
        # fill the 113 days before the run ends
        failed = bootstrap(schema, home, "--forecast-days", "3",
                           CRYPTIFY_SOURCE=f"file:{empty}", CRYPTIFY_CONTEXT_SOURCE="none",
                           CRYPTIFY_EQUITY_INDEX_SOURCE="none")  # fmt: skip
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    # the header names the history it chose when none was asked for
    chosen = default_history_days(3, DEFAULT_INTERVAL_LEVEL)
    assert lines[0].endswith(f"(--history-days {chosen}, --forecast-days 3)"), lines[0]
    assert "candles+" in lines[-2] and "+features" in lines[-2], lines[-4:]
    assert "FAILED" in lines[-2] and "in the UI" in lines[-2]
    assert lines[-1].startswith("candles: ") and str(empty) in lines[-1], lines[-1]
    assert "Traceback" not in failed.stderr


JOBS = ("collect_job", "train_job", "predict_job", "evaluate_job")
TABLES = ("candles", "open_interest", "funding_rates", "equity_index", "features", "models",
          "predictions", "forecast_metrics", "leaderboard")  # fmt: skip
PORTS = ("--dagster-port", "3456", "--api-port", "8765")
# make dev's own level (the default): the dashboard test reads its bands at every horizon
FRESH_LEVEL = 0.9


@dataclass(frozen=True)
class Bootstrapped:
    first: subprocess.CompletedProcess
    again: subprocess.CompletedProcess
    instance: DagsterInstance
    data_dir: Path


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Iterator[Bootstrapped]:
    """``python -m cryptify_pipeline.bootstrap`` as ``make dev`` runs it on a fresh clone: no
    database configured (the embedded server, created here), then once more.

    At make dev's 90% interval level with the history the bootstrap chooses for it, so what it
    proves is what a fresh clone's make dev shows: every horizon calibrated, a band drawn."""
    data_dir = tmp_path_factory.mktemp("fresh") / "pg"
    home = tmp_path_factory.mktemp("home")
    # the project's dagster.yaml but for the run queue and monitoring, which need a daemon
    (home / "dagster.yaml").write_text(
        "storage:\n  custom:\n    module: cryptify_pipeline.storage.instance_storage\n"
        "    class: CryptifyPostgresStorage\n    config:\n      schema: dagster\n"
        "telemetry:\n  enabled: false\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in DATABASE_VARIABLES}
    env.pop("CRYPTIFY_SCHEMA", None)
    env.update(CRYPTIFY_EMBEDDED_PG_DIR=str(data_dir), DAGSTER_HOME=str(home),
               CRYPTIFY_INTERVAL_LEVEL=str(FRESH_LEVEL))  # fmt: skip
    # three days: the first model day's forecasts are scored once the day after has closed
    command = [sys.executable, "-m", "cryptify_pipeline.bootstrap", "--forecast-days", "3",
               *PORTS]  # fmt: skip
    try:
        first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=900)  # fmt: skip
        assert first.returncode == 0, first.stderr[-3000:]
        again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=900)  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
        url = start_embedded_server(data_dir, "cryptify")  # the server the bootstrap started
        storage = {
            "custom": {
                "module": "cryptify_pipeline.storage.instance_storage",
                "class": "CryptifyPostgresStorage",
                "config": {"schema": "dagster", "url": url.libpq},
            }
        }
        # launched runs start at once: no daemon here takes them off dagster dev's queue
        coordinator = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
        overrides = {"storage": storage, "run_coordinator": coordinator}
        with instance_for_test(overrides=overrides) as instance:
            yield Bootstrapped(first, again, instance, data_dir)
    finally:
        stop_embedded_server(data_dir)


def runs_of(instance: DagsterInstance) -> list:
    return list(reversed(instance.get_runs()))  # oldest first


@pytest.mark.slow
@pytest.mark.timeout(900)  # the fixture's two bootstraps count toward one test
def test_bootstrap_runs_the_whole_chain_and_then_has_nothing_left_to_do(fresh):
    # the history it chose for the level: the fewest days that calibrate every horizon
    chosen = default_history_days(3, FRESH_LEVEL)
    assert f"(--history-days {chosen}, --forecast-days 3)" in fresh.first.stderr.splitlines()[0]
    url = start_embedded_server(fresh.data_dir, "cryptify")
    counts = {table: run_sql_on(url, f"SELECT count(*) FROM cryptify.{table}")[0][0]
              for table in TABLES}  # fmt: skip
    assert all(counts.values()), counts
    # the first run draws every band: every model at every horizon has an interval
    uncalibrated = run_sql_on(
        url, "SELECT horizon_h, count(*) FROM cryptify.models WHERE NOT interval_calibrated"
        " GROUP BY 1",
    )  # fmt: skip
    assert uncalibrated == [], uncalibrated
    assert run_sql_on(url, "SELECT count(*) FROM cryptify.predictions WHERE lower IS NULL") == [
        (0,)
    ]
    # the old web app's LSTM among them: trained, signed, served, with its band, labelled lstm
    stored = run_sql_on(
        url, "SELECT model, artifact_format, count(*) FROM cryptify.models"
        " WHERE model IN ('lstm', 'ridge') GROUP BY 1, 2 ORDER BY 1",
    )  # fmt: skip
    assert [row[:2] for row in stored] == [("lstm", "keras"), ("ridge", "skops")], stored
    assert stored[0][2] == stored[1][2] > 0, stored  # every symbol, horizon and day
    assert run_sql_on(
        url, "SELECT count(*) > 0 FROM cryptify.predictions WHERE model = 'lstm' AND lower < upper"
    ) == [(True,)]
    # the second pass found the models, forecasts and scores there: it refreshed the leaderboard
    # (and collected and forecast any hour that closed in between)
    runs = runs_of(fresh.instance)
    assert [run.job_name for run in runs].count("train_job") == 1
    assert "models: nothing missing" in fresh.again.stderr, fresh.again.stderr
    scoring, refresh = [run for run in runs if run.job_name == "evaluate_job"]
    assert run_partition_range(scoring.tags) is not None
    assert refresh.asset_selection == {AssetKey("leaderboard"), AssetKey("backtest_summary")}
    assert run_partition_range(refresh.tags) is None


@pytest.mark.slow
@pytest.mark.timeout(900)  # the fixture's two bootstraps count toward one test
def test_the_bootstrap_runs_the_named_jobs_as_the_schedules_do(fresh):
    runs = runs_of(fresh.instance)
    assert {run.job_name for run in runs} == set(JOBS), [run.job_name for run in runs]
    from cryptify_pipeline.definitions import defs

    for run in runs:
        job = defs.resolve_job_def(run.job_name)
        assert run.tags[JOB_TAG] == run.job_name  # the run queue's limit applies to them
        assert run.tags[TRIGGER_TAG] == "bootstrap"
        assert run.tags["dagster/max_runtime"] == job.run_tags["dagster/max_runtime"]
        # re-executable from the UI: the run names the code location dagster dev loads
        origin = run.remote_job_origin
        assert origin is not None and origin.job_name == run.job_name
        assert origin.repository_origin.code_location_origin.location_name == "cryptify_pipeline"
        assert origin.repository_origin.repository_name == "__repository__"
        assert run.job_code_origin is not None
    # each range one single-run backfill: the first pass made one run per job
    by_job = {name: [run for run in runs if run.job_name == name] for name in JOBS}
    collect = by_job["collect_job"][0]
    first, last = run_partition_range(collect.tags)
    assert first < last and "dagster/partition" not in collect.tags


@pytest.mark.slow
@pytest.mark.timeout(900)  # the fixture's two bootstraps count toward one test
def test_every_asset_check_is_evaluated_by_the_bootstrap(fresh):
    from cryptify_pipeline.definitions import defs

    checks = list(defs.resolve_asset_graph().asset_check_keys)
    # three on candles, one per context table, and the model check on forecast_metrics
    assert len(checks) == 7
    latest = fresh.instance.event_log_storage.get_latest_asset_check_execution_by_key(checks)
    assert set(latest) == set(checks)
    assert {record.status.value for record in latest.values()} <= {"SUCCEEDED", "FAILED"}


@pytest.mark.slow
@pytest.mark.timeout(900)  # the fixture's two bootstraps count toward one test
def test_a_fresh_bootstrap_shows_its_stages_their_times_and_where_to_look(fresh):
    output = fresh.first.stdout + fresh.first.stderr
    lines = output.strip().splitlines()
    assert len(lines) <= 30, output
    for job in JOBS:
        [line] = [line for line in lines if job in line]
        assert re.search(r"done in \d+\.\d s", line), line
    assert re.search(r"database.*in \d+\.\d s", output), output
    assert lines[-2:] == ["  Dagster UI               http://127.0.0.1:3456",
                          "  data API and dashboard   http://127.0.0.1:8765"]  # fmt: skip
    # the runs' events are in the UI, the embedded server's output in its log files
    for noise in ("DEBUG", "STEP_START", "initdb", "pg_ctl", "Warning", "alembic",
                  "created table", "Telemetry"):  # fmt: skip
        assert noise not in output, noise
    assert "initdb" in fresh.data_dir.with_name("pg-setup.log").read_text()


# the band's fill, rgba(49, 110, 200, 0.18) in dashboard.js, as it lands on the white plot
BAND_PIXEL = tuple(round(0.18 * c + 0.82 * 255) for c in (49, 110, 200))


def band_pixels(png: Path) -> int:
    """How many pixels of the screenshot have the band's fill colour (give or take 3)."""
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=int)
    return int((np.abs(pixels - np.array(BAND_PIXEL)) <= 3).all(axis=-1).sum())


SHOWN = """() => {
    const chart = document.getElementById("chart");
    const bands = chart.data.filter((t) => t.name.endsWith(" interval"));
    const forecast = chart.data.find((t) => t.name.includes(" forecast"));
    return {
        chosen: ["symbol", "model", "horizon"].map((id) => document.getElementById(id).value),
        models: [...document.querySelectorAll("#model option")].map((o) => o.value),
        symbols: [...document.querySelectorAll("#symbol option")].map((o) => o.value),
        bands: bands.map((t) => ({ name: t.name, x: t.x.length, y: t.y })),
        forecast: forecast ? { name: forecast.name, x: forecast.x.length } : null,
        legend: [...chart.querySelectorAll(".legend .legendtext")].map((e) => e.textContent),
        band_note: document.getElementById("band-note").textContent,
        backtest_curves: (document.getElementById("equity").data || []).length,
    };
}"""


def choose(page, select: str, value: str) -> None:
    page.select_option(select, value)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)


def assert_band_drawn(shown: dict, symbol: str, model: str, horizon: int) -> None:
    """Both bounds of the band over every forecast, none null, and the legend promising no
    more than that."""
    assert shown["chosen"] == [symbol, model, str(horizon)], shown["chosen"]
    forecast, bands = shown["forecast"], shown["bands"]
    assert forecast == {"name": f"{model} {horizon} h forecast", "x": forecast["x"]}, shown
    assert forecast["x"] > 0
    assert [band["name"] for band in bands] == ["90% interval"] * 2, (symbol, model, horizon)
    for band in bands:
        assert band["x"] == forecast["x"] == len(band["y"])
        assert all(isinstance(bound, int | float) for bound in band["y"]), band["y"]
    low, high = bands[0]["y"], bands[1]["y"]
    assert all(lo < hi for lo, hi in zip(low, high, strict=True))
    assert shown["legend"] == [f"{symbol} hourly", "90% interval", forecast["name"]]
    assert shown["band_note"] == "The band is the forecast's 90% interval."


@pytest.mark.slow
@pytest.mark.live  # the data API and a browser
@pytest.mark.timeout(900)  # the fixture's two bootstraps count toward one test
def test_a_fresh_bootstrap_shows_bands_at_every_horizon_in_the_dashboard(fresh, tmp_path):
    url = start_embedded_server(fresh.data_dir, "cryptify")  # the server make dev's API reads
    trained = [model for (model,) in run_sql_on(
        url, "SELECT DISTINCT model FROM cryptify.models ORDER BY model")]  # fmt: skip
    defaults = models_of(PRICE)  # what the models asset trains unless told otherwise
    assert sorted(trained) == sorted(defaults)
    with (
        live_api("cryptify", tmp_path / "api.log", DATABASE_URL=url.libpq) as api,
        chromium() as browser,
    ):
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
        for horizon in HORIZONS:
            # as a person opens it: the horizon in the URL, the best ranked model shown
            page = context.new_page()
            page.goto(f"{api.url}/?horizon={horizon}")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            shown = page.evaluate(SHOWN)
            symbol, model, _ = shown["chosen"]
            assert shown["models"] == defaults, shown["models"]
            assert_band_drawn(shown, symbol, model, horizon)
            assert shown["backtest_curves"] == 3  # and its backtest beneath, against holding
            picture = tmp_path / f"dashboard-{horizon}h.png"
            page.locator("#chart").screenshot(path=str(picture))
            assert band_pixels(picture) > 10_000, picture  # the band is there to see
            print(f"screenshot: {picture}")
            # every default model of every symbol at this horizon
            for symbol in shown["symbols"]:
                choose(page, "#symbol", symbol)
                for model in defaults:
                    choose(page, "#model", model)
                    assert_band_drawn(page.evaluate(SHOWN), symbol, model, horizon)
            page.close()


RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run { pipelineSnapshotId repositoryOrigin { repositoryLocationName repositoryName } }
  }
}"""
JOB = """
query ($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) { ... on Pipeline { pipelineSnapshotId } }
}"""
REEXECUTE = """
mutation ($parentRunId: String!) {
  launchPipelineReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: ALL_STEPS}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""


@pytest.mark.slow
@pytest.mark.live  # a code server and a run process
@pytest.mark.timeout(900)  # the fixture's two bootstraps count toward one test
def test_the_ui_re_executes_a_bootstrap_run(fresh, monkeypatch):
    # the code server and its run processes see what the bootstrap saw: the embedded server
    for name in (*DATABASE_VARIABLES, "CRYPTIFY_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRYPTIFY_EMBEDDED_PG_DIR", str(fresh.data_dir))
    [parent] = [run for run in runs_of(fresh.instance) if run.job_name == "predict_job"][:1]
    workspace = load_workspace_process_context_from_yaml_paths(
        fresh.instance, [str(ROOT / "workspace.yaml")]
    )
    with workspace:  # the workspace dagster dev loads, its code location in a server of its own
        ui = workspace.create_request_context()
        shown = execute_dagster_graphql(ui, RUN, {"runId": parent.run_id}).data["runOrError"]
        selector = {"repositoryLocationName": "cryptify_pipeline",
                    "repositoryName": "__repository__", "pipelineName": "predict_job"}  # fmt: skip
        job = execute_dagster_graphql(ui, JOB, {"selector": selector}).data["pipelineOrError"]
        # what the UI matches to enable "Re-execute" without a warning: origin and snapshot
        assert shown["repositoryOrigin"] == {
            "repositoryLocationName": "cryptify_pipeline",
            "repositoryName": "__repository__",
        }
        assert shown["pipelineSnapshotId"] == job["pipelineSnapshotId"]
        launched = execute_dagster_graphql(ui, REEXECUTE, {"parentRunId": parent.run_id}).data
        result = launched["launchPipelineReexecution"]
        assert result["__typename"] == "LaunchRunSuccess", result
        run_id = result["run"]["runId"]
        deadline = time.monotonic() + 300
        while not (run := fresh.instance.get_run_by_id(run_id)).is_finished:
            assert time.monotonic() < deadline, f"re-executed run {run_id} is {run.status}"
            time.sleep(1)
    assert run.status.value == "SUCCESS"
    assert run.job_name == "predict_job" and run.parent_run_id == parent.run_id
    assert run_partition_range(run.tags) == run_partition_range(parent.tags)
