"""Nothing from the future reaches a feature, a model or a forecast."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.sample import SampleContext, SampleEquityIndex, SampleMarket
from cryptify_pipeline.ml.artifacts import sign_models
from cryptify_pipeline.ml.context_features import CONTEXT_COLUMNS, MarketContext, with_context
from cryptify_pipeline.ml.features import FEATURE_COLUMNS, LOOKBACK_HOURS, build_features
from cryptify_pipeline.ml.forecasting import forecast
from cryptify_pipeline.ml.models import MODEL_ZOO
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.targets import with_targets
from cryptify_pipeline.ml.training import train_all

HOUR = timedelta(hours=1)
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
T = datetime(2025, 5, 20, tzinfo=UTC)  # the first candle that is changed opens here
START = T - timedelta(days=30)
KEY = SigningKey.generate()
INDEX = "ES=F"
# the price zoo (the lstm and its windows of past hours included) and three of its +context
# twins (a linear, a boosted one and the lstm)
MODELS = [*MODEL_ZOO, "ridge+context", "hist_gbm+context", "lstm+context"]
COLUMNS = [*FEATURE_COLUMNS, *CONTEXT_COLUMNS]


def perturbed_after(candles: pd.DataFrame, moment: datetime) -> pd.DataFrame:
    """Every candle opening at or after ``moment`` rescaled (still valid OHLC), volume doubled."""
    changed = candles.copy()
    later = changed["ts"] >= moment
    factor = np.exp(np.random.default_rng(9).normal(0, 0.05, later.sum()))
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= factor
    changed.loc[later, "volume"] *= 2
    return changed


def context_perturbed_after(context: MarketContext, moment: datetime) -> MarketContext:
    """Open interest, funding rates and index bars from ``moment`` on changed: the context
    of the partitions after the last candle that closes by ``moment``."""
    rng = np.random.default_rng(11)

    def changed(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        frame = frame.copy()
        later = frame["ts"] >= moment
        for column in columns:
            frame.loc[later, column] *= np.exp(rng.normal(0, 0.05, later.sum()))
        return frame

    return MarketContext(
        changed(context.open_interest, ["open_interest"]),
        changed(context.funding_rates, ["funding_rate"]),
        changed(context.equity_index, ["open", "high", "low", "close"]),
        INDEX,
    )


@pytest.fixture(scope="module")
def worlds():
    first, end = START - LOOKBACK_HOURS * HOUR, T + timedelta(days=5)
    real = SampleMarket().fetch(SYMBOLS, first, end)
    context = MarketContext(
        SampleContext().fetch_open_interest(SYMBOLS, first, end),
        SampleContext().fetch_funding_rates(SYMBOLS, first, end),
        SampleEquityIndex().fetch([INDEX], first, end),
        INDEX,
    )
    return (real, context), (perturbed_after(real, T), context_perturbed_after(context, T))


def pipeline_outputs(candles: pd.DataFrame, context: MarketContext):
    """Features, the models trained through the end of the day before T, and their forecasts
    for every hour of that last day before T."""
    features = with_context(build_features(candles, START, T + timedelta(days=5)), context)
    cutoff = T - timedelta(days=1)
    models = train_all(
        with_targets(features), cutoff, (6, 24), MODELS, window_days=21, interval_level=0.8
    )  # 80%: 21 days hold out enough 6 h windows to calibrate it (17 of the 9 needed)
    models.insert(0, "day", pd.Timestamp(cutoff - timedelta(days=1)))
    models = sign_models(models, KEY)
    forecasts = forecast(features, models, SYMBOLS, cutoff, T, KEY)
    return features, models, forecasts


def test_changing_every_candle_and_context_after_t_changes_nothing_made_before_t(worlds):
    real, changed = worlds
    features_a, models_a, forecasts_a = pipeline_outputs(*real)
    features_b, models_b, forecasts_b = pipeline_outputs(*changed)

    before = features_a["ts"] < T
    a = features_a[before][COLUMNS].to_numpy()
    b = features_b[features_b["ts"] < T][COLUMNS].to_numpy()
    assert ((a == b) | (np.isnan(a) & np.isnan(b))).all()
    assert not np.isnan(features_a[before][list(CONTEXT_COLUMNS)].to_numpy()).any()
    for columns in (FEATURE_COLUMNS, CONTEXT_COLUMNS):  # the change reaches both after T
        after = features_a[~before][list(columns)].to_numpy()
        assert not np.allclose(after, features_b[features_b["ts"] >= T][list(columns)])

    # models made before T: the same bytes (skops files are written canonically), so the same
    # fits, and the same signatures
    assert models_a["sha256"].tolist() == models_b["sha256"].tolist()
    assert models_a["signature"].tolist() == models_b["signature"].tolist()
    assert models_a["interval_calibrated"].any()
    for bound in ("interval_low", "interval_high"):
        np.testing.assert_array_equal(models_a[bound], models_b[bound])  # NaN where uncalibrated
    pd.testing.assert_frame_equal(forecasts_a, forecasts_b, check_exact=True)
    assert len(forecasts_a) == 24 * len(SYMBOLS) * 2 * len(MODELS)
    # each model's record names its own inputs: the context reaches only the +context models
    for model, features in zip(models_a["model"], models_a["features"], strict=True):
        assert (set(CONTEXT_COLUMNS) <= set(features)) == model.endswith("+context"), model
