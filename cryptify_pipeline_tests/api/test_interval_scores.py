"""Intervals scored as intervals, by the real assets in Dagster runs, and served by the API.

The session's tables (``forecast_tables``) train on 8 days: too few held-out residuals for an
interval. A copy of them gives ridge's forecasts a known band, +-2% of the forecast price at
90%, and forecast_metrics and the leaderboard are materialised again on the copy.
"""

from __future__ import annotations

import numpy as np
import pytest
from dagster import materialize

from cryptify_pipeline.api import schemas
from cryptify_pipeline_tests.api.conftest import SCORED_DAY
from cryptify_pipeline_tests.api.test_app import client_for, ok
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.pipeline import range_tags

BAND = 0.02
TERCILES = ("low_vol", "mid_vol", "high_vol")


@pytest.fixture(scope="module")
def banded(instance, forecast_tables):
    """The copy's schema, scored and ranked again with ridge's forecasts banded."""
    schema = f"{forecast_tables}_banded"
    run_sql(f'CREATE SCHEMA "{schema}"')
    for table in ("candles", "features", "predictions"):
        run_sql(f'CREATE TABLE "{schema}"."{table}" AS TABLE "{forecast_tables}"."{table}"')
    run_sql(
        f'UPDATE "{schema}".predictions SET lower = {1 - BAND} * pred_price,'
        f" upper = {1 + BAND} * pred_price, interval_level = 0.9, interval_calibrated = true"
        " WHERE model = 'ridge'"
    )
    assets = list(pipeline.assets().values())
    for selection, tags in (
        (["forecast_metrics"], range_tags(SCORED_DAY, SCORED_DAY)),
        (["leaderboard"], None),
    ):
        result = materialize(
            assets, selection=selection, instance=instance, tags=tags,
            resources=pipeline.resources(schema),
        )  # fmt: skip
        assert result.success, selection
    yield schema
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_forecast_metrics_rows_carry_width_interval_score_pinball_and_terciles(banded):
    rows = run_sql(
        "SELECT f.symbol, f.horizon_h, f.interval_n, f.covered, f.width_share,"
        " f.sum_width_share, f.interval_score, f.pinball_lower, f.pinball_upper,"
        + ", ".join(f"f.covered_{t}, f.interval_n_{t}, f.coverage_{t}" for t in TERCILES)
        + ", avg((p.upper - p.lower) / p.close),"
        " avg((greatest(p.lower - c.close, 0) + greatest(c.close - p.upper, 0)) / p.close)"
        f' FROM "{banded}".forecast_metrics f JOIN "{banded}".predictions p'
        " ON p.symbol = f.symbol AND p.model = f.model AND p.horizon_h = f.horizon_h"
        " AND date_trunc('day', p.ts) = f.day"
        f' JOIN "{banded}".candles c ON c.symbol = p.symbol AND c.ts = p.target_ts'
        " WHERE f.model = 'ridge' GROUP BY f.symbol, f.horizon_h, f.day, f.model"
    )
    assert len(rows) == 2 * 3  # symbols x horizons
    for symbol, horizon, n, covered, width, width_sum, score, low, high, *rest in rows:
        *terciles, mean_width, mean_miss = rest
        assert n == 24, (symbol, horizon)
        # (1.02 - 0.98) x pred_price / close, per forecast
        assert width == pytest.approx(mean_width) and width_sum == pytest.approx(24 * mean_width)
        # width + 2 / a x the miss outside, both as shares of the close
        assert score == pytest.approx(width + 20 * mean_miss)
        assert score == pytest.approx(20 * (low + high))
        # 9 days of volatility history before the day scored: every forecast has its tercile
        counts = np.array(terciles, dtype=float).reshape(3, 3)
        assert counts[:, 1].sum() == n and counts[:, 0].sum() == covered
        for hits, scored, share in counts:
            assert share == pytest.approx(hits / scored) if scored else np.isnan(share)


def test_the_leaderboard_and_api_serve_the_interval_figures(banded):
    board = run_sql(
        f'SELECT horizon_h, coverage, width_share, coverage_low_vol FROM "{banded}".leaderboard'
        " WHERE symbol = 'BTC/USDT' AND model = 'ridge' AND \"window\" = 'all'"
        " ORDER BY horizon_h"
    )
    assert [row[0] for row in board] == [6, 12, 24]
    assert all(0.039 < row[2] < 0.041 for row in board)  # +-2% of the forecast price
    with client_for(banded) as client:
        body = ok(client.get("/metrics/latest?model=ridge"), schemas.MetricsResponse)["data"]
    served = {(r["horizon_h"], r["window"]): r for r in body["leaderboard"]}
    for horizon, coverage, width, low_vol in board:
        row = served[horizon, "all"]
        assert (row["coverage"], row["width_share"]) == pytest.approx((coverage, width))
        assert row["coverage_low_vol"] == (None if low_vol is None else pytest.approx(low_vol))
        assert row["interval_score"] > row["width_share"] - 1e-12
    assert all(s["pinball_upper"] is not None for s in body["latest_scores"])
