"""The zoo's models are configured to converge, and none stops early on shuffled rows."""

import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, MODEL_FEATURES, build_features
from cryptify_pipeline.ml.models import BOOSTED, MODEL_ZOO, ZOO
from cryptify_pipeline.ml.targets import HORIZONS, with_targets
from cryptify_pipeline.ml.training import fit_model, split_rows

CUTOFF = datetime(2025, 9, 1, tzinfo=UTC)
TRAINING_DAYS = 180  # the models asset's default


@pytest.fixture(scope="module")
def rows():
    start = CUTOFF - timedelta(days=TRAINING_DAYS + 2)
    candles = SampleMarket().fetch(
        ["BTC/USDT"], start - LOOKBACK_HOURS * timedelta(hours=1), CUTOFF
    )
    return with_targets(build_features(candles, start, CUTOFF))


@pytest.mark.parametrize("horizon", HORIZONS)
def test_the_mlp_converges_on_the_sample_market(rows, horizon):
    split = split_rows(rows, horizon, CUTOFF, TRAINING_DAYS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        pipeline, _ = fit_model("mlp", split.fit, horizon)
    network = pipeline[-1].regressor_
    assert network.n_iter_ < network.max_iter


def test_no_model_holds_out_shuffled_rows():
    # sklearn's own early stopping holds out a shuffled part of overlapping targets
    for name, build in MODEL_ZOO.items():
        model = build()
        model = model[-1] if hasattr(model, "steps") else model
        model = getattr(model, "regressor", model)
        assert getattr(model, "early_stopping", False) is False, name
        assert getattr(model, "early_stopping_rounds", None) is None, name  # XGBoost's
    assert set(BOOSTED) <= set(ZOO)


@pytest.mark.parametrize("model", sorted(set(BOOSTED) & set(MODEL_ZOO)))  # their twins: the same
def test_boosted_models_choose_their_rounds_on_a_time_ordered_hold_out(rows, model):
    split = split_rows(rows, 24, CUTOFF, TRAINING_DAYS)
    fitted, rounds = fit_model(model, split.fit, 24)
    assert 1 <= rounds <= BOOSTED[model].most
    refit = (
        BOOSTED[model]
        .build(rounds)
        .fit(split.fit[list(MODEL_FEATURES)], split.fit["target_24h"].to_numpy())
    )
    x = split.validation[list(MODEL_FEATURES)]
    np.testing.assert_array_equal(fitted.predict(x), refit.predict(x))  # seeded: the same fit
