"""The lstm: windows of past hours only, trained like the rest of the zoo on the same split,
seeded (the same rows, the same bytes), and refused where a symbol has too little history.

Its storage (the .keras archive, signed, checked, loaded in safe mode) and its tampering cases
are in ``test_artifacts.py``; changing the future changes none of its forecasts in
``test_leakage.py``.
"""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.artifacts import load_model, sign_models
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, MODEL_FEATURES, build_features
from cryptify_pipeline.ml.forecasting import MissingInputs, forecast
from cryptify_pipeline.ml.lstm import WINDOW_HOURS, windows
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.targets import with_targets
from cryptify_pipeline.ml.training import (
    NotEnoughData,
    conformal_interval,
    interval_scale,
    split_rows,
    train_all,
)

HOUR = timedelta(hours=1)
CUTOFF = datetime(2025, 4, 1, tzinfo=UTC)
KEY = SigningKey.generate()
SYMBOL = "BTC/USDT"
HORIZONS = [6, 24]  # one lstm network per symbol learns both


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    start = CUTOFF - timedelta(days=40)
    candles = SampleMarket().fetch([SYMBOL], start - LOOKBACK_HOURS * HOUR, CUTOFF + 3 * HOUR)
    return with_targets(build_features(candles, start, CUTOFF + 3 * HOUR))


@pytest.fixture(scope="module")
def records(rows) -> pd.DataFrame:
    trained = train_all(
        rows, CUTOFF, HORIZONS, ["ridge", "lstm"], window_days=30, interval_level=0.9
    )
    return sign_models(trained.assign(day=CUTOFF - timedelta(days=1)), KEY)


def of(records: pd.DataFrame, model: str, horizon: int = 6) -> pd.DataFrame:
    return records[(records["model"] == model) & (records["horizon_h"] == horizon)]


def test_a_window_holds_the_hours_up_to_its_own_and_no_later(rows):
    at = rows["ts"].iloc[[100, 101, 500]]
    got = windows(rows, at, ["close", "log_return_1h"], 5)
    assert got.shape == (3, 5, 2)
    for sample, end in enumerate(at):
        expected = rows[(rows["ts"] > end - 5 * HOUR) & (rows["ts"] <= end)]
        np.testing.assert_array_equal(
            got[sample], expected[["close", "log_return_1h"]].to_numpy("float32")
        )
    # an hour without a row is NaN in every window that holds it
    gap = rows.drop(index=rows.index[98])
    with_gap = windows(gap, at, ["close"], 5)
    assert np.isnan(with_gap[0, 2, 0]) and np.isnan(with_gap[1, 1, 0])
    assert not np.isnan(with_gap[2]).any()


@pytest.mark.parametrize("horizon", HORIZONS)
def test_the_lstm_is_validated_on_the_same_held_out_hours_as_the_others(records, horizon):
    ridge, lstm = (of(records, name, horizon).iloc[0] for name in ("ridge", "lstm"))
    for column in ("validation_start", "validation_end", "validation_rows", "fit_start"):
        assert lstm[column] == ridge[column], column
    # purged: no fitted target of any horizon reaches into any horizon's held-out hours
    first_held_out = records["validation_start"].min()
    assert lstm["fit_end"] + max(HORIZONS) * HOUR <= first_held_out
    # its windows are the fitted rows whose 48 hours all have complete features
    assert 100 <= lstm["fit_rows"] <= ridge["fit_rows"]
    assert lstm["boosting_rounds"] >= 1  # the epochs chosen by early stopping
    assert lstm["artifact_format"] == "keras"


def test_one_network_learns_every_horizon_each_stored_with_its_own_output(records):
    six, day = (load_model(of(records, "lstm", h).iloc[0].to_dict(), KEY) for h in HORIZONS)
    # the LSTM and the standardisation are shared; the dense head's row and the map back to
    # log returns are each horizon's own
    for shared in ("kernel", "recurrent", "bias", "mean", "variance"):
        np.testing.assert_array_equal(six.values[shared], day.values[shared], err_msg=shared)
    assert not np.array_equal(six.values["dense_kernel"], day.values["dense_kernel"])
    assert six.values["scale"] != day.values["scale"]
    assert (
        of(records, "lstm", 6)["boosting_rounds"].iloc[0]
        == of(records, "lstm", 24)["boosting_rounds"].iloc[0]
    )


def test_its_interval_comes_from_its_held_out_residuals_as_for_every_model(rows, records):
    record = of(records, "lstm").iloc[0]
    split = split_rows(rows, 6, CUTOFF, 30)
    network = load_model(record.to_dict(), KEY)
    x = windows(rows, split.validation["ts"], list(MODEL_FEATURES), WINDOW_HOURS)
    residuals = split.validation["target_6h"].to_numpy() - network.predict(x)
    scale = interval_scale(split.validation, 6)
    usable = np.isfinite(scale) & (scale > 0)
    interval = conformal_interval(
        (residuals / scale)[usable], split.validation["ts"][usable], 6, 0.9
    )
    assert (record["interval_low"], record["interval_high"]) == (interval.low, interval.high)
    assert record["interval_method"] == interval.method == "conformal-hourly/ewma-24h"
    assert record["interval_residuals"] == interval.residuals == len(split.validation)
    assert record["interval_windows"] == interval.windows


_RETRAIN = """
import sys
from datetime import UTC, datetime, timedelta
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features
from cryptify_pipeline.ml.targets import with_targets
from cryptify_pipeline.ml.training import train_all
cutoff = datetime(2025, 4, 1, tzinfo=UTC)
start = cutoff - timedelta(days=40)
candles = SampleMarket().fetch(["BTC/USDT"], start - timedelta(hours=LOOKBACK_HOURS),
                               cutoff + timedelta(hours=3))
rows = with_targets(build_features(candles, start, cutoff + timedelta(hours=3)))
records = train_all(rows, cutoff, [6, 24], ["lstm"], window_days=30, interval_level=0.9)
print(records["sha256"].iloc[0])
"""


def test_the_same_rows_give_the_same_bytes_and_forecasts_in_this_process_and_another(rows, records):
    lstm = of(records, "lstm")
    again = train_all(rows, CUTOFF, HORIZONS, ["lstm"], window_days=30, interval_level=0.9)
    assert again["sha256"].tolist() == records.loc[records["model"] == "lstm", "sha256"].tolist()
    fresh = subprocess.run(
        [sys.executable, "-c", _RETRAIN], capture_output=True, text=True, timeout=300, check=True
    )
    assert fresh.stdout.split()[-1] == lstm["sha256"].iloc[0]
    # the same record gives the same forecasts, to 1e-6 and in fact bit for bit
    first = forecast(rows, lstm, [SYMBOL], CUTOFF, CUTOFF + 3 * HOUR, KEY)
    second = forecast(rows, lstm, [SYMBOL], CUTOFF, CUTOFF + 3 * HOUR, KEY)
    assert len(first) == 3
    np.testing.assert_allclose(first["pred_log_return"], second["pred_log_return"], atol=1e-6)
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_a_forecast_without_the_hours_before_it_is_refused_naming_the_symbol(rows, records):
    lstm = of(records, "lstm")
    short = rows[rows["ts"] >= CUTOFF - 10 * HOUR]
    with pytest.raises(
        MissingInputs,
        match=r"^lstm for BTC/USDT \(6h\) needs the 48 hours of features ending at each "
        r"forecast hour, and BTC/USDT's features begin at 2025-03-31 14:00: too little history "
        r"for 2 hour\(s\) from 2025-04-01 00:00 \(backfill",
    ):
        forecast(short, lstm, [SYMBOL], CUTOFF, CUTOFF + 2 * HOUR, KEY)


def test_a_gap_inside_a_window_is_filled_as_missing_features_are(rows, records):
    lstm = of(records, "lstm")
    holed = rows.drop(index=rows.index[(rows["ts"] == CUTOFF - 5 * HOUR).to_numpy()])
    whole = forecast(rows, lstm, [SYMBOL], CUTOFF, CUTOFF + HOUR, KEY)
    filled = forecast(holed, lstm, [SYMBOL], CUTOFF, CUTOFF + HOUR, KEY)
    assert np.isfinite(filled["pred_log_return"]).all()
    assert (filled["pred_log_return"] != whole["pred_log_return"]).all()


def test_a_symbol_without_enough_whole_windows_is_refused_by_name(rows):
    # every 40th hour missing: rows enough for the other models, no whole 48-hour window
    holed = rows[np.arange(len(rows)) % 40 != 0]
    train_all(holed, CUTOFF, [6], ["ridge"], window_days=30, interval_level=0.9)
    with pytest.raises(
        NotEnoughData,
        match=r"^BTC/USDT: lstm \(6h\) has 0 complete 48-hour windows of feature rows among its "
        r"\d+ fitted rows \(0 before its early-stopping hold-out\); need at least 100",
    ):
        train_all(holed, CUTOFF, [6], ["lstm"], window_days=30, interval_level=0.9)
