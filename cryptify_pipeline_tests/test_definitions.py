"""The code location loads, from Python and from the dagster CLI, and its job writes."""

import os
import subprocess
import sys
from pathlib import Path

from dagster import Definitions

from cryptify_pipeline.definitions import defs
from cryptify_pipeline.resources import build_resources
from cryptify_pipeline.settings import get_settings
from cryptify_pipeline_tests.conftest import run_sql

ROOT = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def test_definitions_validate_loadable():
    Definitions.validate_loadable(defs)


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
    env = {**os.environ, "CRYPTIFY_START": "2025-01-01T13:30Z"}
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


def test_collect_job_backfills_a_range_in_one_run(instance, schema):
    job = defs.resolve_job_def("collect_job")
    assert job.tags["cryptify/job"] == "collect_job"  # the run queue's one-per-job limit key
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2025-02-01-00:00",
            "dagster/asset_partition_range_end": "2025-02-01-05:00",
        },
        resources=build_resources(schema=schema),
    )
    assert result.success
    symbols = get_settings().symbols
    rows = run_sql(
        f'SELECT count(*), count(DISTINCT ts), count(DISTINCT symbol) FROM "{schema}".candles'
    )
    assert rows == [(6 * len(symbols), 6, len(symbols))]
    checks = {e.check_name for e in result.get_asset_check_evaluations()}
    assert checks == {"candles_complete", "candles_fresh", "candles_price_jumps"}


def test_cli_partition_range_materialises_in_one_run(schema):
    result = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "cryptify_pipeline.definitions",
         "--select", "candles", "--partition-range", "2025-01-01-00:00...2025-01-02-23:00"],
        cwd=ROOT,
        env={**os.environ, "CRYPTIFY_SCHEMA": schema},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("RUN_START") == 1
    symbols = len(get_settings().symbols)
    assert run_sql(f'SELECT count(*) FROM "{schema}".candles') == [(48 * symbols,)]


def test_bootstrap_runs_the_whole_chain_and_then_has_nothing_left_to_do(schema, tmp_path):
    command = [sys.executable, "-m", "cryptify_pipeline.bootstrap",
               "--history-days", "26", "--forecast-days", "3"]  # fmt: skip
    # its own instance: materialisation records must describe this schema's tables
    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  custom:\n    module: cryptify_pipeline.instance_storage\n"
        f"    class: CryptifyPostgresStorage\n    config:\n      schema: {schema}_dagster\n"
    )
    env = {**os.environ, "CRYPTIFY_SCHEMA": schema, "DAGSTER_HOME": str(tmp_path)}
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    counts = {
        table: run_sql(f'SELECT count(*) FROM "{schema}".{table}')[0][0]
        for table in ("candles", "features", "models", "predictions", "forecast_metrics",
                      "leaderboard")
    }  # fmt: skip
    assert all(counts.values()), counts
    assert "bootstrap done" in first.stderr
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    # only the leaderboard is refreshed (and any hour that closed in between)
    assert "models" not in again.stderr.split("bootstrap done")[0].replace("leaderboard", "")
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')
