"""The check on forecast_metrics: a model significantly worse than the zero forecast fails it,
in a real run of forecast_metrics over eight days of forecasts.

The forecasts stand in for trained models (training eight days of the zoo would take minutes):
a stand-in ``predictions`` asset, with the real one's table and partitions, writes the zero
forecast, a sane model and a broken one; candles, scoring and the check are the pipeline's own.
"""

import numpy as np
import pandas as pd
import pytest
from dagster import AssetIn, AssetKey, BackfillPolicy, asset, materialize

from cryptify_pipeline.assets.evaluation_checks import worse_than_zero
from cryptify_pipeline.ml.scoring import rank_models
from cryptify_pipeline.ml.significance import significantly_worse
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.instances import own_instance
from cryptify_pipeline_tests.support.pipeline import range_tags

HORIZON = 6
BROKEN = "ridge"  # forecasts a 10% move every hour, alternating in sign
SANE = "drift"  # forecasts almost nothing: as good as zero, not significantly worse
REAL = pipeline.assets()
PREDICTIONS = REAL["predictions"]


@asset(
    name="predictions",
    partitions_def=PREDICTIONS.partitions_def,
    backfill_policy=BackfillPolicy.single_run(),
    pool="predictions",
    ins={"candles": AssetIn()},
    metadata=dict(PREDICTIONS.metadata_by_key[AssetKey("predictions")]),
)
def stand_in_predictions(context, candles: pd.DataFrame) -> pd.DataFrame:
    window = context.partition_time_window
    made = candles[(candles["ts"] >= window.start) & (candles["ts"] < window.end)]
    hour = (made["ts"] - made["ts"].min()) // pd.Timedelta(hours=1)
    forecasts = {
        "zero_return": np.zeros(len(made)),
        SANE: np.full(len(made), 1e-6),
        BROKEN: np.where(hour % 2 == 0, 0.1, -0.1),
    }
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "ts": made["ts"].to_numpy(),
                    "symbol": made["symbol"].to_numpy(),
                    "model": model,
                    "horizon_h": HORIZON,
                    "target_ts": (made["ts"] + pd.Timedelta(hours=HORIZON)).to_numpy(),
                    "close": made["close"].to_numpy(),
                    "pred_log_return": predicted,
                    "pred_price": made["close"].to_numpy() * np.exp(predicted),
                    "lower": np.nan,
                    "upper": np.nan,
                    "interval_level": 0.9,
                    "interval_calibrated": False,
                    "model_day": (made["ts"].dt.floor("D") - pd.Timedelta(days=1)).to_numpy(),
                    "model_sha256": "0" * 64,
                }
            )  # fmt: skip
            for model, predicted in forecasts.items()
        ],
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def scored():
    schema = "test_model_check_" + pd.Timestamp.now("UTC").strftime("%H%M%S%f")
    assets = [*(a for name, a in REAL.items() if name != "predictions"), stand_in_predictions]
    checks = pipeline.checks(asset="forecast_metrics")
    resources = pipeline.resources(schema)
    with own_instance("model_check") as instance:

        def run(selection, first, last):
            return materialize(
                [*assets, *checks], selection=selection, instance=instance,
                tags=range_tags(first, last), resources=resources, raise_on_error=False,
            )  # fmt: skip

        steps = [
            run(["candles"], "2025-01-02-00:00", "2025-01-10-23:00"),
            run(["predictions"], "2025-01-02-00:00", "2025-01-09-23:00"),
            run(["forecast_metrics"], "2025-01-02", "2025-01-09"),
        ]
        yield schema, steps
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_model_significantly_worse_than_zero_fails_the_check(scored):
    schema, steps = scored
    assert [step.success for step in steps] == [True] * 3
    [evaluation] = steps[-1].get_asset_check_evaluations()
    assert evaluation.check_name == "models_not_worse_than_zero"
    assert not evaluation.passed
    assert evaluation.severity.value == "WARN"
    assert evaluation.metadata["worse_models"].value == 2  # the broken model, on both symbols
    table = evaluation.metadata["worse"].value
    assert BROKEN in table and SANE not in table
    assert evaluation.metadata["scored_days"].value == 8


def test_the_sane_model_is_tested_and_not_worse(scored):
    schema, _ = scored
    metrics = run_sql(f'SELECT count(DISTINCT day) FROM "{schema}".forecast_metrics')
    assert metrics == [(8,)]
    frame = pipeline.database(schema).read_time_range(
        "forecast_metrics",
        pd.Timestamp("2025-01-01", tz="UTC").to_pydatetime(),
        pd.Timestamp("2025-01-11", tz="UTC").to_pydatetime(),
        time_column="day",
    )
    board = rank_models(frame)
    sane = board[(board["model"] == SANE) & (board["window"] == "30d")]
    broken = board[(board["model"] == BROKEN) & (board["window"] == "30d")]
    assert sane["dm_p_value"].notna().all()  # tested: enough windows
    assert (broken["dm_stat"] < -3).all()
    assert set(worse_than_zero(frame)["model"]) == {BROKEN}


def test_worse_is_one_sided_and_bonferroni_corrected():
    # p of "better" near 1 is "worse"; with two models tested the bound is 2.5%
    assert significantly_worse({"a": 0.99, "b": 0.5}) == ["a"]
    assert significantly_worse({"a": 0.97, "b": 0.5}) == []
    assert significantly_worse({"a": 0.97}) == ["a"]
    assert significantly_worse({"a": 0.001, "zero_return": float("nan")}) == []
