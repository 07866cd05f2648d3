"""The features asset with and without the market context, and a +context model through
training and forecasting, as real Dagster runs on Postgres."""

import numpy as np
import pytest
from dagster import materialize

from cryptify_pipeline.ml.context_features import CONTEXT_COLUMNS
from cryptify_pipeline.ml.features import MODEL_FEATURES
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.pipeline import range_tags

ASSETS = list(pipeline.assets().values())
CONTEXT = ["open_interest", "funding_rates", "equity_index"]
MODELS = ["zero_return", "ridge", "ridge+context"]
TRAIN = {
    "ops": {
        "models": {
            "config": {
                "training_days": 7,
                "horizons": [6],
                "models": MODELS,
                "feature_set": "both",
            }
        }
    }
}


def run(instance, schema, selection, first, last, config=None, market=None):
    result = materialize(
        ASSETS, selection=selection, instance=instance, tags=range_tags(first, last),
        run_config=config, resources=pipeline.resources(schema, market), raise_on_error=False,
    )  # fmt: skip
    assert result.success, [
        str(event.step_failure_data.error) for event in result.get_step_failure_events()
    ]
    return result


def metadata(result, name: str) -> dict:
    events = result.asset_materializations_for_node(name)
    return {k: v.value for k, v in events[-1].metadata.items()}


def test_without_any_context_features_materialise_with_nan_context(instance, schema):
    run(instance, schema, ["candles"], "2025-01-01-00:00", "2025-01-02-23:00")
    # no context table exists in this schema: the inputs load as empty
    result = run(instance, schema, ["features"], "2025-01-02-20:00", "2025-01-02-23:00")
    assert metadata(result, "features")["rows_without_open_interest"] == 8
    context = run_sql(
        f"SELECT count(*), {', '.join(f'count({c})' for c in CONTEXT_COLUMNS)}"
        f' FROM "{schema}".features'
    )[0]
    assert context == (8, *[0] * len(CONTEXT_COLUMNS))
    assert run_sql(f'SELECT count(log_return_1h) FROM "{schema}".features') == [(8,)]


@pytest.fixture(scope="module")
def chain(instance):
    schema = "test_ctxchain_" + __import__("uuid").uuid4().hex[:8]
    run(instance, schema, ["candles", *CONTEXT], "2025-01-01-00:00", "2025-01-21-05:00")
    run(instance, schema, ["features"], "2025-01-14-00:00", "2025-01-21-05:00")
    run(instance, schema, ["models"], "2025-01-20", "2025-01-20", TRAIN)
    run(instance, schema, ["predictions"], "2025-01-21-00:00", "2025-01-21-05:00")
    yield schema
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_features_carry_the_context_of_the_sample_market(chain):
    counts = run_sql(
        f"SELECT count(*), {', '.join(f'count({c})' for c in CONTEXT_COLUMNS)}"
        f" FROM \"{chain}\".features WHERE ts >= '2025-01-15'"
    )[0]
    # a week of context before them: every context column is known
    assert counts == (counts[0], *[counts[0]] * len(CONTEXT_COLUMNS))
    assert counts[0] == 2 * (6 * 24 + 6)


def test_each_model_records_and_gets_its_own_feature_columns(chain):
    records = dict(
        run_sql(f"SELECT model, features FROM \"{chain}\".models WHERE symbol = 'BTC/USDT'")
    )
    assert sorted(records) == sorted(MODELS)
    assert records["ridge"] == list(MODEL_FEATURES)
    assert records["ridge+context"] == [*MODEL_FEATURES, *CONTEXT_COLUMNS]
    forecasts = run_sql(
        f'SELECT model, count(*), array_agg(pred_log_return ORDER BY ts) FROM "{chain}".predictions'
        " WHERE symbol = 'BTC/USDT' GROUP BY model ORDER BY model"
    )
    assert [(model, n) for model, n, _ in forecasts] == [
        ("ridge", 6), ("ridge+context", 6), ("zero_return", 6)
    ]  # fmt: skip
    by_model = {model: np.array(values) for model, _, values in forecasts}
    assert not np.allclose(by_model["ridge"], by_model["ridge+context"])


def test_the_feature_set_chooses_which_zoo_entries_train():
    from cryptify_pipeline.assets.models import TrainConfig
    from cryptify_pipeline.ml.models import MODEL_ZOO, ZOO

    assert TrainConfig().trained_models == list(MODEL_ZOO)  # the default: price, as before
    assert TrainConfig(feature_set="context").trained_models == [
        "zero_return", "drift", "linear+context", "ridge+context", "hist_gbm+context",
        "mlp+context", "xgboost+context", "lstm+context",
    ]  # fmt: skip
    assert TrainConfig(feature_set="both").trained_models == list(ZOO)
    with pytest.raises(ValueError, match="none of the models \\['ridge'\\] trains with feature"):
        TrainConfig(models=["ridge"], feature_set="context")
    with pytest.raises(ValueError, match="feature_set"):
        TrainConfig(feature_set="everything")
