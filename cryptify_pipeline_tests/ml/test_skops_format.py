"""skops files: exactly the zoo's types are trusted, anything else is refused unbuilt, and equal
fits are equal bytes."""

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import Lasso
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeRegressor

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml import skops_format
from cryptify_pipeline.ml.artifacts import SKOPS, format_of
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, MODEL_FEATURES, build_features
from cryptify_pipeline.ml.models import MODEL_ZOO as ZOO
from cryptify_pipeline.ml.skops_format import TRUSTED_NODES, TRUSTED_TYPES, UntrustedArtifact
from cryptify_pipeline.ml.targets import with_targets
from cryptify_pipeline_tests.support.hostile_models import runs_when_deserialised, skops_payload

DAY = datetime(2025, 3, 31, tzinfo=UTC)
# the zoo's models that are stored as skops files (XGBoost has its own JSON format)
MODEL_ZOO = {name: build for name, build in ZOO.items() if format_of(build()) is SKOPS}


@pytest.fixture(scope="module")
def xy() -> tuple[pd.DataFrame, np.ndarray]:
    start = DAY - timedelta(days=30)
    candles = SampleMarket().fetch(["ETH/USDT"], start - LOOKBACK_HOURS * timedelta(hours=1), DAY)
    rows = with_targets(build_features(candles, start, DAY)).dropna(subset=["target_24h"])
    # NaN features left in: the imputer must see them, as at forecast time
    return rows[list(MODEL_FEATURES)], rows["target_24h"].to_numpy()


@pytest.fixture(scope="module")
def zoo_files(xy) -> dict[str, bytes]:
    return {name: skops_format.dumps(build().fit(*xy)) for name, build in MODEL_ZOO.items()}


def named_in(data: bytes) -> tuple[set[str], set[str]]:
    """The types and the node kinds a skops file names."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        nodes = list(skops_format._nodes(json.loads(archive.read("schema.json"))))
    return {f"{n['__module__']}.{n['__class__']}" for n in nodes}, {n["__loader__"] for n in nodes}


def test_the_trusted_types_are_exactly_what_the_zoo_needs(zoo_files):
    types, nodes = set(), set()
    for data in zoo_files.values():
        file_types, file_nodes = named_in(data)
        types |= file_types
        nodes |= file_nodes
    assert types == set(TRUSTED_TYPES)  # every entry is needed, none is missing
    assert nodes <= set(TRUSTED_NODES)


def test_skops_alone_would_trust_more_than_the_zoo(xy, zoo_files):
    # skops's defaults trust every scikit-learn estimator; a foreign one is refused here
    lasso = skops.io.dumps(Lasso(alpha=1e-4).fit(xy[0].fillna(0), xy[1]))
    assert skops.io.get_untrusted_types(data=lasso) == []
    assert skops.io.loads(lasso, trusted=[]) is not None
    with pytest.raises(
        UntrustedArtifact, match=r"type\(s\) sklearn.linear_model._coordinate_descent.Lasso$"
    ):
        skops_format.loads(lasso)
    # and what skops itself wants trusted beyond its defaults for the zoo is in the list
    for data in zoo_files.values():
        assert set(skops.io.get_untrusted_types(data=data)) <= set(TRUSTED_TYPES)


def test_a_file_that_would_run_a_command_is_refused_unbuilt(tmp_path):
    payload = skops_payload(tmp_path / "ran")
    # what skops says this foreign file would need trusted
    assert skops.io.get_untrusted_types(data=payload) == ["os.system"]
    assert skops_format.untrusted_types(payload) == ["os.system (as ConstructorFromReduceNode)"]
    with pytest.raises(UntrustedArtifact, match=r"untrusted type\(s\) os.system"):
        skops_format.loads(payload)
    assert not (tmp_path / "ran").exists()
    assert runs_when_deserialised(payload, "skops", tmp_path / "ran")  # it is live


def test_a_function_reference_is_refused(xy):
    transformer = skops.io.dumps(FunctionTransformer(func=np.log1p))
    with pytest.raises(
        UntrustedArtifact, match=r"numpy.log1p \(as FunctionNode\), .*FunctionTransformer"
    ):
        skops_format.loads(transformer)


def test_a_fit_holding_an_untrusted_type_is_refused_when_saved(xy):
    with pytest.raises(UntrustedArtifact, match="DecisionTreeRegressor.* add them there"):
        skops_format.dumps(DecisionTreeRegressor(max_depth=2).fit(*xy))


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04 a broken zip"])
def test_unreadable_bytes_are_refused(data):
    with pytest.raises(UntrustedArtifact, match="not a readable skops file"):
        skops_format.loads(data)


def test_equal_fits_are_equal_bytes_and_load_back(xy, zoo_files):
    for name, build in MODEL_ZOO.items():
        again = build().fit(*xy)
        # skops's own files of equal fits differ (object ids, timestamps); ours do not
        assert skops_format.dumps(again) == zoo_files[name], name
        np.testing.assert_array_equal(
            skops_format.loads(zoo_files[name]).predict(xy[0]), again.predict(xy[0])
        )
    first, second = MODEL_ZOO["ridge"]().fit(*xy), MODEL_ZOO["ridge"]().fit(*xy)
    assert skops.io.dumps(first) != skops.io.dumps(second)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("left", 10**6),
        ("right", 0),
        ("feature_idx", 99),
        ("feature_idx", -1),
        ("is_categorical", 1),
    ],
)
def test_a_tree_that_would_be_walked_out_of_bounds_is_refused(xy, field, value):
    fitted = MODEL_ZOO["hist_gbm"]().fit(*xy)
    nodes = fitted["model"]._predictors[3][0].nodes
    nodes[field][np.flatnonzero(nodes["is_leaf"] == 0)[-1]] = value
    with pytest.raises(UntrustedArtifact, match="a tree's split points outside"):
        skops_format.loads(skops_format.dumps(fitted))


def test_a_file_of_something_other_than_a_pipeline_is_refused(xy):
    with pytest.raises(UntrustedArtifact, match="it holds a dict, not a Pipeline"):
        skops_format.loads(skops_format.dumps({"steps": []}))
