"""XGBoost models as XGBoost's JSON: equal fits are equal bytes, they load back exactly, and
nothing but XGBoost's JSON loads."""

import json

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.ml import xgboost_format
from cryptify_pipeline.ml.models import MODEL_ZOO, xgboost


@pytest.fixture(scope="module")
def xy() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(4)
    x = pd.DataFrame(rng.normal(size=(600, 4)), columns=["a", "b", "c", "d"])
    x.iloc[::17, 2] = np.nan  # trees route missing values themselves
    return x, 0.01 * x["a"].to_numpy() + rng.normal(0, 0.01, 600)


def test_equal_fits_are_equal_bytes_and_load_back_exactly(xy):
    first, second = xgboost().fit(*xy), MODEL_ZOO["xgboost"]().fit(*xy)
    data = xgboost_format.dumps(first)
    assert data == xgboost_format.dumps(second)  # seeded and single-threaded
    assert json.loads(data)["learner"]["feature_names"] == ["a", "b", "c", "d"]
    loaded = xgboost_format.loads(data)
    np.testing.assert_array_equal(loaded.predict(xy[0]), first.predict(xy[0]))
    assert first.get_params()["n_jobs"] == 1 and first.get_params()["random_state"] == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x04\x95 a pickle", "not an XGBoost JSON model"),
        (b"PK\x03\x04 a zip, as skops writes", "not an XGBoost JSON model"),
        (b'["a", "list"]', "no learner object at the top"),
        (b'{"version": [3, 2, 0]}', "no learner object at the top"),
        # XGBoost's own words (``map::at``): any ValueError will do
        (b'{"learner": {"gradient_booster": "not a booster"}, "version": [3, 2, 0]}', None),
    ],
    ids=["pickle", "zip", "list", "no learner", "unreadable learner"],
)
def test_anything_but_xgboost_json_is_refused(data, reason):
    with pytest.raises(ValueError, match=reason):
        xgboost_format.loads(data)


def test_only_xgboost_models_are_dumped(xy):
    assert xgboost_format.is_xgboost(xgboost())
    ridge = MODEL_ZOO["ridge"]().fit(*[part for part in (xy[0].fillna(0), xy[1])])
    assert not xgboost_format.is_xgboost(ridge)
    with pytest.raises(ValueError, match="not an XGBoost model: sklearn.pipeline.Pipeline"):
        xgboost_format.dumps(ridge)
