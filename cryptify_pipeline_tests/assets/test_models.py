"""``models`` as Dagster runs it on Postgres: it reads only its configured window of features,
whatever the history, and trains the same bytes on one process or two.

45 days of features are stored; a 30-day model day must read 30 days, train exactly the
models the whole history would give, and store the same artifacts whatever the training jobs.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from dagster import AssetKey, materialize

from cryptify_pipeline.bootstrap import WARM_UP_HOURS
from cryptify_pipeline.hours import HOUR, day_key, hour_key
from cryptify_pipeline.ml.artifacts import sign_models
from cryptify_pipeline.ml.models import MODEL_ZOO, ZOO, models_of
from cryptify_pipeline.ml.targets import HORIZONS as ALL_HORIZONS
from cryptify_pipeline.ml.targets import with_targets
from cryptify_pipeline.ml.training import HOURLY_METHOD, min_calibration_residuals, train_all
from cryptify_pipeline.partitions import training_window
from cryptify_pipeline.resources import Forecasting
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.pipeline import MODEL_SIGNING_KEY, range_tags

ASSETS_BY_NAME = pipeline.assets()
ASSETS = list(ASSETS_BY_NAME.values())
FIRST_HOUR, LAST_HOUR = "2025-01-01-00:00", "2025-02-14-23:00"  # 45 days of features
MODEL_DAY = "2025-02-14"
CUTOFF = datetime(2025, 2, 15, tzinfo=UTC)
TRAINING_DAYS = 30
HORIZONS = [6, 24]  # the shortest and the longest look-ahead; every model of the zoo
CONFIG = {"ops": {"models": {"config": {"training_days": TRAINING_DAYS, "horizons": HORIZONS}}}}
KEY = ["symbol", "horizon_h", "model"]


def run(instance, schema, selection, first, last, config=None, training_jobs=1):
    return materialize(
        ASSETS, selection=selection, instance=instance, tags=range_tags(first, last),
        run_config=config, raise_on_error=False,
        resources=pipeline.resources(schema, forecasting=Forecasting(training_jobs=training_jobs)),
    )  # fmt: skip


def failure(result) -> str:
    return str(result.get_step_failure_events()[0].step_failure_data.error)


def metadata(result) -> dict[str, object]:
    materialization = result.asset_materializations_for_node("models")[0]
    return {name: value.value for name, value in materialization.metadata.items()}


def stored_models(schema: str) -> pd.DataFrame:
    rows = run_sql(
        f'SELECT symbol, horizon_h, model, pipeline, sha256, signature FROM "{schema}".models'
        " WHERE day = %s ORDER BY symbol, horizon_h, model",
        (CUTOFF - timedelta(days=1),),
    )
    frame = pd.DataFrame(rows, columns=[*KEY, "pipeline", "sha256", "signature"])
    return frame.assign(pipeline=frame["pipeline"].map(bytes))


@pytest.fixture(scope="module")
def history(instance) -> Iterator[str]:
    schema = "test_models_" + datetime.now(UTC).strftime("%H%M%S%f")
    stored = run(instance, schema, ["candles", "features"], FIRST_HOUR, LAST_HOUR)
    assert stored.success, failure(stored)
    yield schema
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def serial(instance, history) -> tuple[object, pd.DataFrame]:
    result = run(instance, history, ["models"], MODEL_DAY, MODEL_DAY, CONFIG, training_jobs=1)
    assert result.success, failure(result)
    return result, stored_models(history)


def test_a_30_day_window_reads_30_days_of_a_45_day_history(history, serial):
    result, _ = serial
    reported = metadata(result)
    first, last = CUTOFF - timedelta(days=TRAINING_DAYS), CUTOFF
    # counted by another client: the rows of the window, and of the whole history
    in_window = run_sql(
        f'SELECT count(*), min(ts), max(ts) FROM "{history}".features WHERE ts >= %s AND ts < %s',
        (first, last),
    )[0]
    everything = run_sql(f'SELECT count(*), min(ts) FROM "{history}".features')[0]
    assert everything[0] == 2 * 45 * 24 and everything[1] == datetime(2025, 1, 1, tzinfo=UTC)
    assert reported["rows_loaded"] == in_window[0] == 2 * TRAINING_DAYS * 24
    assert pd.Timestamp(reported["first_row_loaded"]) == in_window[1] == first
    assert pd.Timestamp(reported["first_row_loaded"]) >= CUTOFF - timedelta(days=31)
    assert pd.Timestamp(reported["last_row_loaded"]) == in_window[2] == last - timedelta(hours=1)
    assert reported["training_jobs"] == 1


def test_the_models_are_those_the_whole_history_trains(history, serial):
    _, stored = serial
    # the frame the input used to load: every feature row stored, back to the first hour
    whole = pipeline.database(history).read_time_range(
        "features", datetime(2024, 1, 1, tzinfo=UTC), CUTOFF + timedelta(days=1)
    )
    assert whole["ts"].min() == datetime(2025, 1, 1, tzinfo=UTC)
    expected = train_all(
        with_targets(whole), CUTOFF, HORIZONS, MODEL_ZOO, TRAINING_DAYS, interval_level=0.9
    )
    expected = sign_models(expected.assign(day=CUTOFF - timedelta(days=1)), MODEL_SIGNING_KEY)
    expected = expected.sort_values(KEY).reset_index(drop=True)[stored.columns]
    assert len(stored) == 2 * len(HORIZONS) * len(MODEL_ZOO)
    pd.testing.assert_frame_equal(stored, expected)


def test_two_training_jobs_store_the_same_bytes_as_one(instance, history, serial):
    _, one_job = serial
    result = run(instance, history, ["models"], MODEL_DAY, MODEL_DAY, CONFIG, training_jobs=2)
    assert result.success, failure(result)
    assert metadata(result)["training_jobs"] == 2
    two_jobs = stored_models(history)  # the day rewritten
    assert len(two_jobs) == 2 * len(HORIZONS) * len(MODEL_ZOO)
    pd.testing.assert_frame_equal(two_jobs, one_job)  # bytes, sha256 and signatures


def test_a_window_without_features_fails_naming_what_was_read(instance, history):
    result = run(instance, history, ["models"], "2025-05-01", "2025-05-01", CONFIG)
    assert not result.success
    assert (
        "models for 2025-05-01: no rows of any symbol to train on at 2025-05-02 00:00"
        in failure(result)
    )
    assert "read 0 feature rows in [2025-04-02 00:00, 2025-05-02 00:00) UTC" in failure(result)


def test_no_features_table_fails_naming_it(instance, schema):
    result = run(instance, schema, ["models"], MODEL_DAY, MODEL_DAY, CONFIG)
    assert not result.success
    assert f"table {schema}.features does not exist; materialise its asset first" in failure(result)


def test_the_lineage_still_maps_models_to_the_longest_window_of_features():
    models = ASSETS_BY_NAME["models"]
    assert models.asset_deps[models.key] == {AssetKey("features")}
    assert models.get_partition_mapping(AssetKey("features")) == training_window


@pytest.mark.slow
def test_the_first_model_day_of_a_fresh_bootstrap_calibrates_every_model_and_horizon(instance):
    """What ``make dev`` does on a fresh clone: features of exactly the bootstrap's warm-up
    before the first model day's cut-off, then that day trained with the default config (180
    days, every horizon, every price model). Every (model, horizon) has an interval, and its
    row says how it was made."""
    schema = "test_models_first_" + datetime.now(UTC).strftime("%H%M%S%f")
    cutoff = datetime(2025, 5, 1, tzinfo=UTC)
    first_hour = cutoff - WARM_UP_HOURS * HOUR
    try:
        stored = run(instance, schema, ["candles", "features"], hour_key(first_hour),
                     hour_key(cutoff - HOUR))  # fmt: skip
        assert stored.success, failure(stored)
        day = day_key(cutoff - timedelta(days=1))
        trained = run(instance, schema, ["models"], day, day)
        assert trained.success, failure(trained)
        rows = run_sql(
            "SELECT model, horizon_h, interval_calibrated, interval_method, interval_residuals,"
            f' validation_rows, interval_level FROM "{schema}".models'
        )
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    symbols = len(pipeline.SYMBOLS)
    assert len(rows) == symbols * len(ALL_HORIZONS) * len(models_of("price", list(ZOO)))
    for model, horizon, calibrated, method, residuals, held_out, level in rows:
        assert calibrated, (model, horizon, residuals)
        assert method == HOURLY_METHOD and level == 0.9
        assert residuals == held_out >= min_calibration_residuals(0.9, horizon)
