"""Training purges the future and records provenance; its stored models load back signed.

Refusing what cannot be vouched for (tampered bytes, other keys, moved rows, other library
versions, untrusted types) is tested in ``test_artifacts.py`` and ``test_skops_format.py``.
"""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.artifacts import load_model, sign_models
from cryptify_pipeline.ml.features import (
    EWMA_VOLATILITY,
    LOOKBACK_HOURS,
    MODEL_FEATURES,
    build_features,
)
from cryptify_pipeline.ml.forecasting import forecast
from cryptify_pipeline.ml.models import BOOSTED, MODEL_ZOO
from cryptify_pipeline.ml.scoring import score_day
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.targets import HORIZONS, with_targets
from cryptify_pipeline.ml.training import (
    HOURLY_METHOD,
    WINDOWS_METHOD,
    NotEnoughData,
    conformal_interval,
    conformal_rank,
    fit_model,
    hold_out_last,
    min_calibration_residuals,
    min_calibration_windows,
    split_rows,
    train_all,
)
from cryptify_pipeline_tests.support.coverage import coverage_band, hourly_coverage_band
from cryptify_pipeline_tests.support.garch_market import garch_candles

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
    trained = train_all(rows, CUTOFF, HORIZONS, MODEL_ZOO, window_days=30, interval_level=0.9)
    return sign_models(trained.assign(day=CUTOFF - timedelta(days=1)), KEY)


def test_every_model_horizon_and_symbol_is_trained_with_provenance(records):
    assert len(records) == 2 * len(HORIZONS) * len(MODEL_ZOO)
    for record in records.itertuples():
        assert len(record.sha256) == 64 and record.sklearn_version and record.python_version
        if record.model == "xgboost":
            assert record.artifact_format == "xgboost-json"
            assert set(record.library_versions) == {"scikit-learn", "xgboost-cpu"}
        elif record.model == "lstm":
            assert record.artifact_format == "keras"
            assert set(record.library_versions) == {"keras", "jax", "jaxlib"}
        else:
            assert record.artifact_format == "skops"
            assert set(record.library_versions) == {"scikit-learn", "skops"}
        assert len(record.signature) == 64 and record.signing_key_id == KEY.key_id
        assert list(record.features) == list(MODEL_FEATURES)
        assert record.fit_rows > 100 and record.validation_rows > 24
        # the lstm's are its epochs, chosen on the same purged hold-out as boosting rounds
        assert (record.boosting_rounds is pd.NA) == (record.model not in {*BOOSTED, "lstm"})
        assert np.isfinite(record.val_rmse)
        # 30 days hold out ~143 hours, every one a residual: enough for 90% at 6 h (134), not
        # at 12 h (248) or 24 h (476)
        assert record.interval_method == HOURLY_METHOD
        assert record.interval_residuals == record.validation_rows
        assert record.interval_windows == record.validation_rows // record.horizon_h
        assert record.interval_level == 0.9
        if record.horizon_h == 6:
            assert record.interval_calibrated
            # empirical residual quantiles: a biased model's interval may sit to one side of 0
            assert record.interval_low < record.interval_high
        else:
            assert not record.interval_calibrated
            assert np.isnan(record.interval_low) and np.isnan(record.interval_high)


def test_symbols_trained_on_two_processes_store_the_same_bytes_as_one(rows, records):
    parallel = train_all(
        rows, CUTOFF, HORIZONS, MODEL_ZOO, window_days=30, interval_level=0.9, n_jobs=2
    )
    key = ["symbol", "horizon_h", "model"]
    serial = records.sort_values(key).reset_index(drop=True)
    parallel = sign_models(parallel.assign(day=CUTOFF - timedelta(days=1)), KEY)
    parallel = parallel.sort_values(key).reset_index(drop=True)
    assert len(parallel) == len(serial) == 2 * len(HORIZONS) * len(MODEL_ZOO)
    assert parallel["pipeline"].tolist() == serial["pipeline"].tolist()  # every stored byte
    assert parallel["sha256"].tolist() == serial["sha256"].tolist()
    assert parallel["signature"].tolist() == serial["signature"].tolist()
    pd.testing.assert_frame_equal(parallel, serial)  # and every figure of every record


# Run in a fresh process without the suite's OMP_NUM_THREADS=1 (conftest): there OpenMP and BLAS
# start with a thread per core, and libraries load lazily, when a model is first built.
_SERIAL_AND_PARALLEL = """
import json, sys
from datetime import UTC, datetime, timedelta
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features
from cryptify_pipeline.ml.targets import with_targets
from cryptify_pipeline.ml.training import train_all
cutoff, start = datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 2, 15, tzinfo=UTC)
candles = SampleMarket().fetch(["BTC/USDT", "ETH/USDT"], start - timedelta(hours=LOOKBACK_HOURS),
                               cutoff)
rows = with_targets(build_features(candles, start, cutoff))
models = ["linear", "hist_gbm", "mlp"]  # BLAS, OpenMP, BLAS (XGBoost has one thread anyway)
json.dump({jobs: train_all(rows, cutoff, [24], models, 30, interval_level=0.9, n_jobs=jobs)
           .sort_values(["symbol", "model"])[["symbol", "model", "sha256"]].values.tolist()
           for jobs in (1, 2)}, sys.stdout)
"""


def test_the_bytes_do_not_depend_on_the_threads_a_process_starts_with():
    env = {name: value for name, value in os.environ.items() if not name.endswith("_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _SERIAL_AND_PARALLEL],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    by_jobs = json.loads(done.stdout)
    assert len(by_jobs["1"]) == 2 * 3
    assert by_jobs["2"] == by_jobs["1"]


def test_a_symbol_too_short_fails_the_parallel_run_by_name(rows):
    short = rows[(rows["symbol"] == "BTC/USDT") | (rows["ts"] >= CUTOFF - timedelta(days=3))]
    with pytest.raises(NotEnoughData, match=r"^ETH/USDT: \d+ complete rows with known 6h"):
        train_all(short, CUTOFF, [6], ["ridge"], window_days=30, interval_level=0.9, n_jobs=2)


def test_n_jobs_below_one_is_refused(rows):
    with pytest.raises(ValueError, match="n_jobs must be at least 1, not 0"):
        train_all(rows, CUTOFF, [6], ["ridge"], interval_level=0.9, n_jobs=0)


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
        match="48 complete rows with known 24h targets before 2025-02-23 00:00 leave 15 to fit "
        "and 10 to validate after holding out the last 20% and purging 24 h; need at least 100 "
        "and 24",
    ):
        split_rows(rows[rows["symbol"] == "BTC/USDT"], 24, three_days_in, None)


def test_the_fit_minimum_counts_the_rows_fitted_after_the_hold_out_and_purge(rows):
    btc = rows[rows["symbol"] == "BTC/USDT"]
    newest_known = CUTOFF - timedelta(hours=25)  # the newest row whose 24 h target is known

    def last(count: int) -> pd.DataFrame:
        return btc[(btc["ts"] > newest_known - count * HOUR) & (btc["ts"] <= newest_known)]

    # 130 complete rows: enough before the split (100 + 24), but the last 26 are held out and
    # the 23 before them purged (a target may end where the held-out period starts), so only 81
    # would be fitted
    with pytest.raises(NotEnoughData, match="130 complete .* leave 81 to fit and 26 to validate"):
        split_rows(last(130), 24, CUTOFF, None)
    split = split_rows(last(160), 24, CUTOFF, None)  # 32 held out, 23 purged: 105 fitted
    assert (len(split.fit), len(split.validation)) == (105, 32)


def test_boosting_rounds_are_chosen_on_the_last_fitted_rows_purged(rows):
    split = split_rows(rows[rows["symbol"] == "ETH/USDT"], 12, CUTOFF, 30)
    pipeline, rounds = fit_model("hist_gbm", split.fit, 12)
    assert 1 <= rounds <= BOOSTED["hist_gbm"].most
    assert pipeline[-1].n_iter_ == rounds and not pipeline[-1].do_early_stopping_
    # the same choice by hand: the last 20% of the fitted rows, the 12 before them purged
    inner = hold_out_last(split.fit, 12, 0.2)
    assert inner.fit["ts"].max() + 12 * HOUR <= inner.validation["ts"].min()
    assert inner.validation["ts"].max() == split.fit["ts"].max()
    probe = BOOSTED["hist_gbm"].build(BOOSTED["hist_gbm"].most)
    probe.fit(inner.fit[list(MODEL_FEATURES)], inner.fit["target_12h"].to_numpy())
    losses = [
        np.mean((inner.validation["target_12h"].to_numpy() - p) ** 2)
        for p in probe[-1].staged_predict(inner.validation[list(MODEL_FEATURES)])
    ]
    assert rounds == int(np.argmin(losses)) + 1
    _, none = fit_model("ridge", split.fit, 12)
    assert none is None


def test_conformal_rank_and_the_fewest_windows_per_level():
    # k = ceil((n + 1)(1 - a/2)): the default 180 days hold out 144, 72 and 36 windows
    assert [conformal_rank(0.9, n) for n in (144, 72, 36)] == [138, 70, 36]
    assert conformal_rank(0.9, 19) == 19 and conformal_rank(0.9, 18) == 19  # 18 is too few
    assert [min_calibration_windows(level) for level in (0.8, 0.9, 0.95)] == [9, 19, 39]


def test_the_fewest_residuals_per_horizon_and_level():
    # as many windows' worth as one residual per window needs: 19 at 90%, 39 at 95%
    assert [min_calibration_residuals(0.9, h) for h in (6, 12, 24)] == [114, 228, 456]
    assert min_calibration_residuals(0.95, 24) == 936
    # the default 180 days hold out 864 hours at every horizon: 43 residuals beyond each bound
    assert 864 - conformal_rank(0.9, 864) + 1 == 43


def test_the_hourly_interval_takes_every_residual_and_never_the_most_extreme():
    ts = pd.Series(pd.date_range(CUTOFF, periods=456, freq="h"))
    interval = conformal_interval(np.arange(456.0), ts, 24, 0.9)
    # k = ceil(457 * 0.95) = 435 of 456: 22 residuals at or beyond each bound
    assert (interval.residuals, interval.windows, interval.calibrated) == (456, 19, True)
    assert (interval.low, interval.high, interval.method) == (21.0, 434.0, HOURLY_METHOD)
    too_few = conformal_interval(np.arange(455.0), ts[:455], 24, 0.9)  # under 19 windows
    assert not too_few.calibrated and np.isnan(too_few.low) and np.isnan(too_few.high)
    assert too_few.residuals == 455


def test_no_bound_is_ever_the_single_most_extreme_residual():
    rng = np.random.default_rng(6)
    for level in (0.8, 0.9, 0.95):
        for horizon in (1, 6, 12, 24):
            fewest = min_calibration_residuals(level, horizon)
            for n in [fewest - 1, *range(fewest, fewest + 2 * horizon + 2), 5 * fewest]:
                scores = rng.standard_t(3, n)
                ts = pd.Series(pd.date_range(CUTOFF, periods=n, freq="h"))
                interval = conformal_interval(scores, ts, horizon, level)
                assert interval.calibrated == (n >= fewest), (level, horizon, n)
                if interval.calibrated:
                    assert scores.min() < interval.low < interval.high < scores.max()


def test_conformal_interval_takes_one_score_per_window_back_from_the_newest():
    ts = pd.Series(pd.date_range(CUTOFF, periods=60, freq="h"))
    scores = np.arange(60.0)  # the score is the hour's index
    interval = conformal_interval(scores, ts, 3, 0.9, WINDOWS_METHOD)
    # windows end at hours 59, 56, ..., 2: 20 scores; k = ceil(21 * 0.95) = 20 -> max and min
    assert (interval.windows, interval.calibrated) == (20, True)
    assert (interval.low, interval.high) == (2.0, 59.0)
    too_few = conformal_interval(scores[:54], ts[:54], 3, 0.9, WINDOWS_METHOD)  # 18 windows
    assert not too_few.calibrated and np.isnan(too_few.low) and np.isnan(too_few.high)


def test_conformal_coverage_on_exchangeable_scores_is_what_the_band_says():
    # 4,000 calibrations on 36 normal scores, each tested on one new score
    rng = np.random.default_rng(2)
    calibrations, n = 4000, 36
    ts = pd.Series(pd.date_range(CUTOFF, periods=n, freq="h"))
    covered = []
    for _ in range(calibrations):
        interval = conformal_interval(rng.standard_normal(n), ts, 1, 0.9, WINDOWS_METHOD)
        covered.append(interval.low <= rng.standard_normal() <= interval.high)
    band = coverage_band(0.9, [n] * calibrations, [1] * calibrations)
    assert band.expected == pytest.approx(2 * 36 / 37 - 1)  # 94.6%: k = n = 36
    assert np.mean(covered) in band, (np.mean(covered), str(band))


CALIBRATION_SYMBOLS = [f"CAL{i:02d}/USDT" for i in range(10)]
CALIBRATIONS = 5  # x 10 symbols: R = 50 calibrations per model and horizon
SERVED_DAYS = 36  # the default 180-day window holds out 36 days: cut-offs this far apart
FIRST_CALIBRATION = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.mark.slow
@pytest.mark.parametrize("horizon", HORIZONS)
def test_intervals_cover_what_their_residuals_promise_on_the_sample_market(horizon, calibrated):
    """Every horizon's coverage lies in the band its residuals imply (``support/coverage.py``).

    The default 180-day window holds out 36 days, n = ~864 hourly residuals at every horizon, so
    k = 822 and a calibration covers on average 2k / (n + 1) - 1 = 90.1% (never below 90%:
    the rank is rounded up). 10 symbols x 5 cut-offs 36 days apart
    give R = 50 calibrations on disjoint held-out periods, each serving the next 36 days
    (m = 864 / h test windows); the band's spread is counted in windows (n / h of them).
    Both the zero forecast and ridge must land in it.

    R is sized to the power needed: the band's lower edge is 88.5%, 87.9% and 87.0% at 6, 12
    and 24 h (sd 0.5, 0.7 and 1.0 pp), so intervals covering 80% fall 17, 11 and 7 sd below
    it, and 85% at least 2 sd below (caught 98% of the time at 24 h, surely at 6 and 12 h).
    R = 100 narrowed that by a factor 1.4 for twice the fits and forecasts.
    """
    coverage = calibrated[calibrated["horizon_h"] == horizon]
    for model, runs in coverage.groupby("model"):
        assert len(runs) == len(CALIBRATION_SYMBOLS) * CALIBRATIONS
        band = hourly_coverage_band(
            0.9, horizon, runs["residuals"].tolist(), (runs["rows"] / horizon).tolist()
        )
        observed = runs["covered"].sum() / runs["rows"].sum()
        print(f"{model} {horizon}h: covered {observed:.4f}, band {band}")
        assert observed in band, (model, horizon, observed, str(band))


@pytest.fixture(scope="module")
def calibrated() -> pd.DataFrame:
    """Per calibration (symbol, cut-off, model, horizon): windows, test rows and rows covered."""
    start = FIRST_CALIBRATION - timedelta(days=182)
    end = FIRST_CALIBRATION + timedelta(days=CALIBRATIONS * SERVED_DAYS + 2)
    candles = SampleMarket().fetch(CALIBRATION_SYMBOLS, start - LOOKBACK_HOURS * HOUR, end)
    rows = with_targets(build_features(candles, start, end))
    closes = candles.set_index(["symbol", "ts"])["close"]
    runs = []
    for index in range(CALIBRATIONS):
        cutoff = FIRST_CALIBRATION + timedelta(days=index * SERVED_DAYS)
        models = train_all(rows, cutoff, HORIZONS, ["zero_return", "ridge"], 180,
                           interval_level=0.9)  # fmt: skip
        serving = pd.concat(
            [sign_models(models.assign(day=pd.Timestamp(cutoff + timedelta(days=d - 1))), KEY)
             for d in range(SERVED_DAYS)]
        )  # fmt: skip
        made = forecast(rows, serving, CALIBRATION_SYMBOLS, cutoff,
                        cutoff + timedelta(days=SERVED_DAYS), KEY)  # fmt: skip
        realised = closes.reindex(pd.MultiIndex.from_frame(made[["symbol", "target_ts"]]))
        made["covered"] = made["lower"].le(realised.to_numpy()) & made["upper"].ge(
            realised.to_numpy()
        )
        summary = (
            made.groupby(["symbol", "model", "horizon_h"])
            .agg(covered=("covered", "sum"), rows=("covered", "size"))
            .reset_index()
            .merge(models[["symbol", "model", "horizon_h", "interval_residuals"]])
        )
        runs.append(summary.rename(columns={"interval_residuals": "residuals"}))
    return pd.concat(runs, ignore_index=True)


GARCH_SYMBOLS = [f"GARCH{i}/USDT" for i in range(6)]
GARCH_CALIBRATIONS = 3
GARCH_SERVED_DAYS = 30  # 3 cut-offs 30 days apart: 90 days of forecasts
TERCILES = ("low_vol", "mid_vol", "high_vol")


@pytest.fixture(scope="module")
def garch_coverage() -> pd.DataFrame:
    """Per calibration (symbol, cut-off, horizon) of the zero forecast on a market with the
    real failure modes: GARCH(1,1) clustering with Student-t shocks, calm weeks (volatility a
    third) between ordinary ones, so the regime changes every week, and jumps of 8 sigma
    (0.2% of hours) out of calm or storm. Returns have zero mean, so the zero forecast is the
    best there is and the interval alone decides coverage. The 90 days of forecasts are scored
    by ``score_day`` with the volatility history, so coverage per volatility tercile comes from
    the same code as forecast_metrics': residuals, and test rows and rows covered overall and
    per tercile."""
    first = datetime(2025, 7, 1, tzinfo=UTC)
    start = first - timedelta(days=182)
    end = first + timedelta(days=GARCH_CALIBRATIONS * GARCH_SERVED_DAYS + 2)
    hours = int((end - start) / HOUR) + LOOKBACK_HOURS
    candles = pd.concat(
        [garch_candles(symbol, start - LOOKBACK_HOURS * HOUR, hours, seed=100 + i,
                       regimes=True, jump_rate=0.002)
         for i, symbol in enumerate(GARCH_SYMBOLS)]
    )  # fmt: skip
    features = build_features(candles, start, end)
    rows = with_targets(features)
    volatility = features[["symbol", "ts", EWMA_VOLATILITY]].rename(
        columns={EWMA_VOLATILITY: "volatility"}
    )
    runs = []
    for index in range(GARCH_CALIBRATIONS):
        cutoff = first + timedelta(days=index * GARCH_SERVED_DAYS)
        models = train_all(rows, cutoff, HORIZONS, ["zero_return"], 180, interval_level=0.9)
        serving = pd.concat(
            [sign_models(models.assign(day=pd.Timestamp(cutoff + timedelta(days=d - 1))), KEY)
             for d in range(GARCH_SERVED_DAYS)]
        )  # fmt: skip
        made = forecast(rows, serving, GARCH_SYMBOLS, cutoff,
                        cutoff + timedelta(days=GARCH_SERVED_DAYS), KEY)  # fmt: skip
        scores = pd.concat(
            [score_day(made, candles, (cutoff + timedelta(days=d)), volatility=volatility)
             for d in range(GARCH_SERVED_DAYS)]
        )  # fmt: skip
        counts = ["covered", "interval_n", *(f"{kind}_{t}" for t in TERCILES
                                           for kind in ("covered", "interval_n"))]  # fmt: skip
        summary = scores.groupby(["symbol", "horizon_h"])[counts].sum().reset_index()
        runs.append(summary.merge(models[["symbol", "horizon_h", "interval_residuals"]]))
    return pd.concat(runs, ignore_index=True).rename(
        columns={"interval_residuals": "residuals", "interval_n": "rows"}
    )


@pytest.mark.slow
@pytest.mark.parametrize("horizon", HORIZONS)
def test_coverage_is_near_nominal_in_calm_storm_and_jumps_at_every_horizon(horizon, garch_coverage):
    """6 symbols x 3 cut-offs 30 days apart: R = 18 calibrations on ~864 hourly residuals each
    (the default 180-day window holds out 36 days), each serving the next 30 days, 90 days in
    all. The coverage at every horizon lies in the band n implies (``hourly_coverage_band``,
    its spread counted in independent h-hour windows), overall and in each volatility
    tercile (its test windows a tercile's rows / h). A rank counted in windows,
    ceil((n / h + 1)(1 - a/2)), covered 94% at 24 h on such a market."""
    runs = garch_coverage[garch_coverage["horizon_h"] == horizon]
    assert len(runs) == len(GARCH_SYMBOLS) * GARCH_CALIBRATIONS
    assert runs["residuals"].between(840, 864).all()  # 36 days held out, less the purge
    assert (runs["rows"] == GARCH_SERVED_DAYS * 24).all()  # every forecast has an interval
    for part in ("", *(f"_{t}" for t in TERCILES)):
        covered, scored = runs[f"covered{part}"], runs[f"interval_n{part}" if part else "rows"]
        assert scored.sum() > 0.2 * runs["rows"].sum() or not part, (part, scored.sum())
        band = hourly_coverage_band(
            0.9, horizon, runs["residuals"].tolist(), (scored / horizon).clip(lower=1).tolist()
        )
        observed = covered.sum() / scored.sum()
        print(f"GARCH+calm+jumps {horizon}h{part or ' overall'}: covered {observed:.4f}, {band}")
        assert observed in band, (horizon, part, observed, str(band))
