"""The tables the API reads, written by the pipeline's own assets as Dagster runs, once per
test session (worker): two symbols, candles for 23 days and their market context for the last
8, two days of models and forecasts (every model, 6, 12 and 24 h), a day of scores and the
leaderboard, a day of backtests and their summary."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from dagster import materialize

from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.browser import chromium
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.pipeline import range_tags

# features need 320 hours of candles before them, and training at least 100 rows to fit after
# its hold-out and purge (155 complete rows at 24 h): so two weeks of candles precede the
# features, and models train on 8 days; the lstm on windows of 6 hours (at 24 h, 8 days hold
# 106 fitted rows: fewer than 100 whole windows of its default 48 hours, or of 24)
CANDLES = ("2025-01-01-00:00", "2025-01-23-23:00")
FEATURES = ("2025-01-14-00:00", "2025-01-23-23:00")
# the last 8 days: the newest features see a full week of open interest
CONTEXT = ("2025-01-16-00:00", "2025-01-23-23:00")
MODEL_DAYS = ("2025-01-21", "2025-01-22")
FORECAST_HOURS = ("2025-01-22-00:00", "2025-01-23-23:00")
SCORED_DAY = "2025-01-22"  # scored against the candles of 01-22 and 01-23
HORIZONS = [6, 12, 24]
TRAIN = {
    "ops": {
        "models": {"config": {"training_days": 8, "horizons": HORIZONS, "lstm_window_hours": 6}}
    }
}

LAST_CANDLE = datetime(2025, 1, 23, 23, tzinfo=UTC)
FIRST_FORECAST = datetime(2025, 1, 22, tzinfo=UTC)


def write_forecast_tables(instance, schema: str) -> None:
    assets = list(pipeline.assets().values())
    stages = [
        (["candles"], CANDLES, None),
        (["open_interest", "funding_rates", "equity_index"], CONTEXT, None),
        (["features"], FEATURES, None),
        (["models"], MODEL_DAYS, TRAIN),
        (["predictions"], FORECAST_HOURS, None),
        (["forecast_metrics"], (SCORED_DAY, SCORED_DAY), None),
        (["leaderboard"], None, None),
        (["backtest"], (SCORED_DAY, SCORED_DAY), None),
        (["backtest_summary"], None, None),
    ]
    for selection, keys, config in stages:
        result = materialize(
            assets, selection=selection, instance=instance, run_config=config,
            tags=range_tags(*keys) if keys else None, resources=pipeline.resources(schema),
        )  # fmt: skip
        assert result.success, selection


@pytest.fixture(scope="session")
def forecast_tables(instance) -> Iterator[str]:
    """The schema holding the pipeline's tables."""
    schema = f"test_api_{uuid.uuid4().hex[:10]}"
    write_forecast_tables(instance, schema)
    yield schema
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def browser():
    """Chromium, for the live tests of the pages: per module, so that playwright's event loop
    is gone before other modules run Dagster in this thread."""
    with chromium() as launched:
        yield launched
