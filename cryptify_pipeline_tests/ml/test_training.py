"""Training purges the future and records provenance; its stored models load back signed.

Refusing what cannot be vouched for (tampered bytes, other keys, moved rows, other library
versions, untrusted types) is tested in ``test_artifacts.py`` and ``test_skops_format.py``.
"""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.artifacts import load_model, sign_models
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, MODEL_FEATURES, build_features
from cryptify_pipeline.ml.models import MODEL_ZOO
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.targets import HORIZONS, with_targets
from cryptify_pipeline.ml.training import NotEnoughData, split_rows, train_all

HOUR = timedelta(hours=1)
CUTOFF = datetime(2025, 4, 1, tzinfo=UTC)
KEY = SigningKey.generate()


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    start = CUTOFF - timedelta(days=40)
    candles = SampleMarket().fetch(["BTC/USDT", "ETH/USDT"], start - LOOKBACK_HOURS * HOUR,
                                   CUTOFF + timedelta(days=3))  # fmt: skip
    # candles after the cut-off exist here on purpose: training must not use them
    return with_targets(build_features(candles, start, CUTOFF + timedelta(days=3)))


@pytest.fixture(scope="module")
def records(rows) -> pd.DataFrame:
    trained = train_all(rows, CUTOFF, HORIZONS, MODEL_ZOO, window_days=30)
    return sign_models(trained.assign(day=CUTOFF - timedelta(days=1)), KEY)


def test_every_model_horizon_and_symbol_is_trained_with_provenance(records):
    assert len(records) == 2 * len(HORIZONS) * len(MODEL_ZOO)
    for record in records.itertuples():
        assert len(record.sha256) == 64 and record.sklearn_version and record.python_version
        assert record.artifact_format == "skops"
        assert set(record.library_versions) == {"scikit-learn", "skops"}
        assert len(record.signature) == 64 and record.signing_key_id == KEY.key_id
        assert list(record.features) == list(MODEL_FEATURES)
        assert record.fit_rows > 100 and record.validation_rows > 24
        # empirical residual quantiles: a biased model's interval may sit to one side of it
        assert record.interval_low < record.interval_high
        assert np.isfinite(record.val_rmse)


def test_purge_audit_no_target_reaches_past_the_cutoff(records):
    for record in records.itertuples():
        horizon = timedelta(hours=record.horizon_h)
        # the target of row t needs the candle t + h, which closes at t + h + 1h
        assert record.validation_end + horizon + HOUR <= CUTOFF
        assert record.fit_end + horizon <= record.validation_start  # fit purged from validation
        assert record.fit_start >= CUTOFF - timedelta(days=30)  # the rolling window


def test_scaler_and_imputer_statistics_come_from_the_fitting_rows_only(rows, records):
    record = records[(records["model"] == "ridge") & (records["symbol"] == "ETH/USDT")
                     & (records["horizon_h"] == 12)].iloc[0]  # fmt: skip
    pipeline = load_model(record, KEY)
    symbol_rows = rows[rows["symbol"] == "ETH/USDT"]
    in_fit = symbol_rows["ts"].between(record["fit_start"], record["fit_end"])
    fitted = symbol_rows[in_fit][list(MODEL_FEATURES)]
    assert len(fitted) == record["fit_rows"]
    np.testing.assert_allclose(pipeline["impute"].statistics_, fitted.median().to_numpy())
    imputed = fitted.fillna(fitted.median())
    np.testing.assert_allclose(pipeline["scale"].mean_, imputed.mean().to_numpy(), rtol=1e-10)
    with_validation = symbol_rows[(symbol_rows["ts"] >= record["fit_start"])
                                  & (symbol_rows["ts"] <= record["validation_end"])]  # fmt: skip
    assert not np.allclose(pipeline["scale"].mean_, with_validation[list(MODEL_FEATURES)].mean())


def test_baselines_are_what_they_say(rows, records):
    zero = records[records["model"] == "zero_return"].iloc[0]
    drift = records[(records["model"] == "drift") & (records["symbol"] == zero["symbol"])
                    & (records["horizon_h"] == zero["horizon_h"])].iloc[0]  # fmt: skip
    x = rows[rows["symbol"] == zero["symbol"]][list(MODEL_FEATURES)].head(5)
    assert (load_model(zero, KEY).predict(x) == 0).all()
    symbol_rows = rows[rows["symbol"] == drift["symbol"]]
    fitted = symbol_rows[
        (symbol_rows["ts"] >= drift["fit_start"]) & (symbol_rows["ts"] <= drift["fit_end"])
    ]
    mean = fitted[f"target_{drift['horizon_h']}h"].mean()
    predicted = load_model(drift, KEY).predict(x)
    np.testing.assert_allclose(predicted, mean)


def test_too_little_history_is_a_named_error(rows):
    three_days_in = CUTOFF - timedelta(days=37)
    with pytest.raises(
        NotEnoughData,
        match="rows with known 24h targets before 2025-02-23 00:00; need at least 124",
    ):
        split_rows(rows[rows["symbol"] == "BTC/USDT"], 24, three_days_in, None)
