"""Forecasts use yesterday's models and prices come through exp."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.artifacts import ModelIntegrityError, load_model, sign_models
from cryptify_pipeline.ml.context_features import MarketContext, with_context
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features
from cryptify_pipeline.ml.forecasting import MissingInputs, forecast
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.targets import with_targets
from cryptify_pipeline.ml.training import train_all

HOUR = timedelta(hours=1)
DAY = datetime(2025, 4, 10, tzinfo=UTC)
KEY = SigningKey.generate()


@pytest.fixture(scope="module")
def setup():
    symbols = ["BTC/USDT"]
    start = DAY - timedelta(days=32)
    candles = SampleMarket().fetch(symbols, start - LOOKBACK_HOURS * HOUR, DAY + timedelta(days=2))
    features = build_features(candles, start, DAY + timedelta(days=2))
    models = train_all(
        with_targets(features), DAY, [6], ["zero_return", "linear"], 30, interval_level=0.9
    )
    models.insert(0, "day", pd.Timestamp(DAY - timedelta(days=1)))
    return symbols, candles, features, sign_models(models, KEY)


def test_forecast_prices_come_through_exp_with_the_interval(setup):
    symbols, _, features, models = setup
    frame = forecast(features, models, symbols, DAY, DAY + 3 * HOUR, KEY)
    assert len(frame) == 3 * 2  # 3 hours x 2 models x 1 horizon
    linear = frame[frame["model"] == "linear"]
    assert not (linear["pred_log_return"] == 0).all()
    np.testing.assert_allclose(
        linear["pred_price"], linear["close"] * np.exp(linear["pred_log_return"])
    )
    assert not np.allclose(linear["pred_price"], linear["close"] * (1 + linear["pred_log_return"]))
    record = models[models["model"] == "linear"].iloc[0]
    # the interval's quantiles are in units of the EWMA volatility known at the forecast's hour
    volatility = features.set_index("ts").loc[linear["ts"], "volatility_ewma_24h"].to_numpy()
    scaled_high = record["interval_high"] * volatility * np.sqrt(6)
    np.testing.assert_allclose(
        linear["upper"], linear["close"] * np.exp(linear["pred_log_return"] + scaled_high)
    )
    assert (frame["target_ts"] == frame["ts"] + 6 * HOUR).all()
    assert (frame["model_day"] == pd.Timestamp(DAY - timedelta(days=1))).all()
    assert set(frame["model_sha256"]) == set(models["sha256"])
    assert frame["interval_calibrated"].all() and (frame["interval_level"] == 0.9).all()
    # each row says how its interval was made: the method and the residuals, as its model's
    assert (frame["interval_method"] == "conformal-hourly/ewma-24h").all()
    residuals = models.set_index("model")["interval_residuals"]
    assert (frame["interval_residuals"] == frame["model"].map(residuals)).all()
    assert (frame["interval_residuals"] == record["validation_rows"]).all()


def test_an_uncalibrated_model_forecasts_without_an_interval(setup):
    symbols, _, features, _ = setup
    # 14 days hold out ~66 hours, fewer than the 134 residuals that 90% needs at 6 h
    models = train_all(with_targets(features), DAY, [6], ["linear"], 14, interval_level=0.9)
    assert not models["interval_calibrated"].any()
    models = sign_models(models.assign(day=pd.Timestamp(DAY - timedelta(days=1))), KEY)
    frame = forecast(features, models, symbols, DAY, DAY + 3 * HOUR, KEY)
    assert frame["lower"].isna().all() and frame["upper"].isna().all()
    assert not frame["interval_calibrated"].any() and (frame["interval_level"] == 0.9).all()
    assert frame["pred_price"].notna().all()


def test_a_model_row_from_before_intervals_said_how_they_were_made_is_refused(setup):
    symbols, _, features, models = setup
    old = models.drop(columns=["interval_method", "interval_residuals"])
    with pytest.raises(ModelIntegrityError, match="signed fields are missing or malformed"):
        forecast(features, old, symbols, DAY, DAY + HOUR, KEY)


def test_missing_features_or_models_are_named(setup):
    symbols, _, features, models = setup
    holed = features[features["ts"] != pd.Timestamp(DAY + HOUR)]
    with pytest.raises(
        MissingInputs, match="no features for 1 symbol-hour.*BTC/USDT 2025-04-10 01:00"
    ):
        forecast(holed, models, symbols, DAY, DAY + 3 * HOUR, KEY)
    with pytest.raises(
        MissingInputs, match="no models trained through the end of 2025-04-10 for BTC"
    ):
        forecast(
            features, models, symbols, DAY + timedelta(days=1), DAY + timedelta(days=1, hours=1),
            KEY,
        )  # fmt: skip
    with pytest.raises(MissingInputs, match="nothing to forecast: the window holds no hour"):
        forecast(features, models, symbols, DAY, DAY, KEY)


def test_every_row_that_serves_a_forecast_is_verified(setup):
    # two days whose rows hold the same bytes form one batch: the second day's row is checked
    # too, not only the one whose bytes are loaded
    symbols, _, features, models = setup
    next_day = sign_models(models.assign(day=pd.Timestamp(DAY)), KEY)
    two_days = (DAY, DAY + timedelta(days=1, hours=1))
    both = pd.concat([models, next_day], ignore_index=True)
    assert len(forecast(features, both, symbols, *two_days, KEY)) == 25 * 2
    unsigned = next_day.assign(signature=next_day["signature"].where(next_day["model"] != "linear"))
    with pytest.raises(ModelIntegrityError, match="linear BTC/USDT 6h of 2025-04-10: .*unsigned"):
        forecast(
            features, pd.concat([models, unsigned], ignore_index=True), symbols, *two_days, KEY
        )


# the context here is empty on purpose: the imputer says every context column is all NaN
@pytest.mark.filterwarnings("ignore:Skipping features without any observed values:UserWarning")
def test_a_model_fitted_on_columns_the_features_lack_fails_naming_them(setup):
    symbols, candles, features, _ = setup
    # a +context model, fitted where the context columns exist, fed features that lack them
    rows = with_context(features, MarketContext())
    models = train_all(with_targets(rows), DAY, [6], ["ridge+context"], 30, interval_level=0.9)
    models.insert(0, "day", pd.Timestamp(DAY - timedelta(days=1)))
    signed = sign_models(models, KEY)
    assert len(forecast(rows, signed, symbols, DAY, DAY + HOUR, KEY)) == 1  # NaN is imputed
    with pytest.raises(MissingInputs, match="ridge\\+context for BTC/USDT .* oi_log_change_1h"):
        forecast(features, signed, symbols, DAY, DAY + HOUR, KEY)


def test_forecasts_are_each_models_own_predictions_and_thread_pools_are_left_as_found(setup):
    # the boosted models predict through OpenMP: forecast() runs them on one thread, which must
    # give exactly what each model predicts with the process's own pools, and restore them
    symbols, _, features, _ = setup
    models = train_all(
        with_targets(features), DAY, [6], ["hist_gbm", "xgboost"], 30, interval_level=0.9
    )
    models = sign_models(models.assign(day=pd.Timestamp(DAY - timedelta(days=1))), KEY)
    pools = [(pool["filepath"], pool["num_threads"]) for pool in threadpool_info()]
    frame = forecast(features, models, symbols, DAY, DAY + 3 * HOUR, KEY)
    assert [(pool["filepath"], pool["num_threads"]) for pool in threadpool_info()] == pools
    hours = features[(features["ts"] >= DAY) & (features["ts"] < DAY + 3 * HOUR)]
    for record in models.to_dict("records"):
        expected = load_model(record, KEY).predict(hours[list(record["features"])])
        got = frame[frame["model"] == record["model"]]["pred_log_return"]
        assert len(got) == 3
        np.testing.assert_array_equal(got.to_numpy(), np.asarray(expected, dtype="float64"))


def test_each_row_has_its_own_hour_close_and_days_model_with_the_tables_types(setup):
    # two days of models: the baseline's bytes are the same both days (one batch of 48 rows),
    # the linear model's are not (two batches); the frame is assembled from their columns
    symbols, _, features, first = setup
    second = train_all(
        with_targets(features), DAY + timedelta(days=1), [6], ["zero_return", "linear"], 30,
        interval_level=0.9,
    )  # fmt: skip
    second = sign_models(second.assign(day=pd.Timestamp(DAY)), KEY)
    models = pd.concat([first, second], ignore_index=True)
    frame = forecast(features, models, symbols, DAY, DAY + 48 * HOUR, KEY)
    assert len(frame) == 48 * 2
    assert frame[frame["model"] == "zero_return"]["model_sha256"].nunique() == 1
    closes = features.set_index("ts")["close"]
    np.testing.assert_array_equal(frame["close"].to_numpy(), closes.loc[frame["ts"]].to_numpy())
    assert (frame["model_day"] == frame["ts"].dt.floor("D") - timedelta(days=1)).all()
    sha = models.assign(day=pd.to_datetime(models["day"], utc=True)).set_index(["day", "model"])
    expected = sha.loc[list(zip(frame["model_day"], frame["model"], strict=True)), "sha256"]
    assert frame["model_sha256"].tolist() == expected.tolist()
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        "ts": "datetime64[us, UTC]", "symbol": "str", "model": "str", "horizon_h": "int64",
        "target_ts": "datetime64[us, UTC]", "close": "float64", "pred_log_return": "float64",
        "pred_price": "float64", "lower": "float64", "upper": "float64",
        "interval_level": "float64", "interval_calibrated": "bool", "interval_method": "str",
        "interval_residuals": "int64", "model_day": "datetime64[us, UTC]", "model_sha256": "str",
    }  # fmt: skip
