"""The bootstrap fills the recent weeks once, and only what is missing after that."""

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from cryptify_pipeline.bootstrap import missing_ranges
from cryptify_pipeline.hours import DAY, DAY_KEY_FORMAT
from cryptify_pipeline.settings import project_root
from cryptify_pipeline_tests.support.database import run_sql, subprocess_env

ROOT = project_root()


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
               "--history-days", "26", "--forecast-days", "3"]  # fmt: skip
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
