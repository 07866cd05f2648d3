"""Scores are exact, each model's figures are on its own rows, ranks on the rows models share,
and days pool exactly, the Diebold-Mariano test included."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.ml.metrics import accuracy
from cryptify_pipeline.ml.scoring import (
    interval_score,
    pinball_loss,
    rank_models,
    score_day,
    volatility_terciles,
)
from cryptify_pipeline.ml.significance import diebold_mariano, loss_differential

HOUR = timedelta(hours=1)
DAY = datetime(2025, 4, 10, tzinfo=UTC)


def test_score_day_by_hand():
    hours = pd.date_range(DAY, periods=4, freq="h")
    close = np.array([100.0, 100.0, 100.0, 100.0])
    realised = np.array([110.0, 95.0, 100.0, 102.0])  # log returns: +, -, 0 (a tie), +
    rows = []
    for model, predicted in [
        ("zero_return", [0.0] * 4),
        ("drift", [0.01] * 4),
        ("linear", [0.05, 0.02, 0.0, -0.01]),
    ]:
        for i, ts in enumerate(hours):
            r = predicted[i]
            rows.append({"ts": ts, "symbol": "BTC/USDT", "model": model, "horizon_h": 6,
                         "target_ts": ts + 6 * HOUR, "close": close[i], "pred_log_return": r,
                         "pred_price": close[i] * np.exp(r), "lower": close[i] * np.exp(r - 0.05),
                         "upper": close[i] * np.exp(r + 0.05)})  # fmt: skip
    predictions = pd.DataFrame(rows)
    candles = pd.DataFrame({"symbol": "BTC/USDT", "ts": hours + 6 * HOUR, "close": realised})
    scores = score_day(predictions, candles, DAY).set_index("model")
    y = np.log(realised / close)
    linear = scores.loc["linear"]
    expected = accuracy(y, np.array([0.05, 0.02, 0.0, -0.01]))
    assert linear["n"] == 4
    assert linear["mae"] == pytest.approx(expected["mae"])
    assert linear["r2_vs_zero"] == pytest.approx(
        1 - ((y - [0.05, 0.02, 0, -0.01]) ** 2).sum() / (y**2).sum()
    )
    # ties (zero actual or zero forecast) are excluded: rows 0 (hit), 1 (miss), 3 (miss)
    assert linear["direction_n"] == 3 and linear["directional_accuracy"] == pytest.approx(1 / 3)
    # covered when the realised price lies in [close * exp(r - 0.05), close * exp(r + 0.05)]:
    # 110 in [100, 110.5] yes; 95 in [97.0, 107.3] no; 100 in [95.1, 105.1] yes;
    # 102 in [94.2, 104.1] yes
    assert linear["coverage"] == pytest.approx(0.75)
    assert scores.loc["zero_return", "r2_vs_zero"] == 0
    assert linear["rmse_zero_return"] == pytest.approx(scores.loc["zero_return", "rmse"])
    assert linear["mae_drift"] == pytest.approx(scores.loc["drift", "mae"])
    assert linear["sse_drift"] == pytest.approx(scores.loc["drift", "sse"])
    # the hourly loss differentials, by hour of the day
    differential = y**2 - (y - [0.05, 0.02, 0.0, -0.01]) ** 2
    np.testing.assert_allclose(linear["loss_diff"][:4], differential)
    assert linear["loss_diff"][4:] == [None] * 20


def test_an_uncalibrated_interval_is_neither_hit_nor_miss():
    hours = pd.date_range(DAY, periods=2, freq="h")
    rows = [
        {
            "ts": ts,
            "symbol": "BTC/USDT",
            "model": "zero_return",
            "horizon_h": 6,
            "target_ts": ts + 6 * HOUR,
            "close": 100.0,
            "pred_log_return": 0.0,
            "pred_price": 100.0,
            "lower": lower,
            "upper": upper,
        }
        for ts, lower, upper in zip(hours, [90.0, np.nan], [110.0, np.nan], strict=True)
    ]
    candles = pd.DataFrame({"symbol": "BTC/USDT", "ts": hours + 6 * HOUR, "close": 101.0})
    [score] = score_day(pd.DataFrame(rows), candles, DAY).to_dict("records")
    assert (score["n"], score["interval_n"], score["covered"], score["coverage"]) == (2, 1, 1, 1.0)


def test_scores_use_the_same_rows_for_every_model():
    hours = pd.date_range(DAY, periods=3, freq="h")
    base = {"symbol": "BTC/USDT", "horizon_h": 6, "close": 100.0, "pred_log_return": 0.0,
            "pred_price": 100.0, "lower": 90.0, "upper": 110.0}  # fmt: skip
    rows = [{**base, "ts": ts, "target_ts": ts + 6 * HOUR, "model": "zero_return"} for ts in hours]
    rows += [{**base, "ts": ts, "target_ts": ts + 6 * HOUR, "model": "linear"} for ts in hours[:2]]
    candles = pd.DataFrame({"symbol": "BTC/USDT", "ts": hours + 6 * HOUR, "close": 101.0})
    warnings = []
    scores = score_day(pd.DataFrame(rows), candles, DAY, warn=warnings.append)
    assert scores["n"].tolist() == [2, 2]  # the hour only one model forecast is left out
    assert warnings == [
        "BTC/USDT 6h: 1 hour(s) of 2025-04-10 dropped from every model's scores, for lack of a "
        "forecast by linear at 02:00"
    ]


def test_a_symbol_missing_one_model_keeps_its_other_rows():
    hours = pd.date_range(DAY, periods=4, freq="h")
    base = {"close": 100.0, "pred_log_return": 0.0, "pred_price": 100.0, "lower": 90.0,
            "upper": 110.0}  # fmt: skip
    plan = {
        ("BTC/USDT", 6): {"zero_return": hours, "linear": hours},
        ("ETH/USDT", 6): {"zero_return": hours, "linear": hours[[0, 2, 3]]},  # linear lacks 01:00
        ("ETH/USDT", 24): {"zero_return": hours},  # no linear at all for ETH at 24 h
        ("SOL/USDT", 6): {"zero_return": hours},  # no linear at all for SOL
    }
    rows = [
        {**base, "symbol": symbol, "horizon_h": horizon, "model": model, "ts": ts,
         "target_ts": ts + horizon * HOUR}
        for (symbol, horizon), models in plan.items()
        for model, made in models.items()
        for ts in made
    ]  # fmt: skip
    candles = pd.concat(
        [pd.DataFrame({"symbol": s, "ts": hours + h * HOUR, "close": 101.0}) for s, h in plan]
    )
    warnings = []
    scores = score_day(pd.DataFrame(rows), candles, DAY, warn=warnings.append)
    n = scores.set_index(["symbol", "horizon_h", "model"])["n"].to_dict()
    assert n == {
        ("BTC/USDT", 6, "linear"): 4, ("BTC/USDT", 6, "zero_return"): 4,
        ("ETH/USDT", 6, "linear"): 3, ("ETH/USDT", 6, "zero_return"): 3,
        ("ETH/USDT", 24, "zero_return"): 4,
        ("SOL/USDT", 6, "zero_return"): 4,
    }  # fmt: skip
    assert warnings == [
        "ETH/USDT 6h: 1 hour(s) of 2025-04-10 dropped from every model's scores, for lack of a "
        "forecast by linear at 01:00"
    ]


def test_leaderboard_pools_days_exactly_and_ranks_by_rmse():
    rng = np.random.default_rng(1)
    days, per_day = [], []
    for offset in range(40):
        day = DAY + timedelta(days=offset)
        y = rng.normal(0, 0.01, 24)
        preds = {"zero_return": np.zeros(24), "linear": y * 0.3 + rng.normal(0, 0.01, 24)}
        for model, predicted in preds.items():
            per_day.append({"day": day, "symbol": "BTC/USDT", "model": model, "horizon_h": 6,
                            **accuracy(y, predicted), "covered": 20})  # fmt: skip
        days.append((y, preds))
    board = rank_models(pd.DataFrame(per_day)).set_index(["window", "model"])
    all_y = np.concatenate([y for y, _ in days])
    all_linear = np.concatenate([p["linear"] for _, p in days])
    direct = accuracy(all_y, all_linear)
    row = board.loc[("all", "linear")]
    assert row["n"] == 40 * 24
    assert row["rmse"] == pytest.approx(direct["rmse"]) and row["mae"] == pytest.approx(
        direct["mae"]
    )
    assert row["r2_vs_zero"] == pytest.approx(direct["r2_vs_zero"])
    assert row["directional_accuracy"] == pytest.approx(direct["directional_accuracy"])
    assert row["skill_vs_zero"] == pytest.approx(1 - direct["rmse"] / np.sqrt((all_y**2).mean()))
    assert board.loc[("30d", "linear"), "n"] == 30 * 24
    ranks = board.loc["all"]["rank"]
    assert sorted(ranks) == [1, 2] and ranks.idxmin() == board.loc["all"]["rmse"].idxmin()
    # these scores carry no hourly loss differentials (as scores written before them)
    assert np.isnan(row["dm_p_value"])
    assert row["dm_note"] == (
        "not tested: these days were scored before hourly loss differentials were kept"
    )


def forecasts_of(days: dict[int, list[str]], seed: int = 5, horizon: int = 6):
    """Predictions and candles for ``days`` (offset from DAY -> models forecasting that day):
    realised log returns y, and per model a forecast of its own quality; close is always 100."""
    rng = np.random.default_rng(seed)
    quality = {"zero_return": 0.0, "drift": None, "ridge": 0.4, "hist_gbm": 0.1, "mlp": -0.2}
    rows, candles, realised = [], [], {}
    for offset, models in days.items():
        hours = pd.date_range(DAY + timedelta(days=offset), periods=24, freq="h")
        y = rng.normal(0, 0.01 * (1 + offset / 10), 24)  # a calmer start, a wilder end
        realised[offset] = y
        candles.append(pd.DataFrame({"symbol": "BTC/USDT", "ts": hours + horizon * HOUR,
                                     "close": 100 * np.exp(y)}))  # fmt: skip
        for model in models:
            weight = quality[model]
            predicted = (
                np.full(24, 0.002) if weight is None else weight * y + rng.normal(0, 0.004, 24)
            )
            if model == "zero_return":
                predicted = np.zeros(24)
            rows += [{"ts": ts, "symbol": "BTC/USDT", "model": model, "horizon_h": horizon,
                      "target_ts": ts + horizon * HOUR, "close": 100.0, "pred_log_return": r,
                      "pred_price": 100 * np.exp(r), "lower": 100 * np.exp(r - 0.02),
                      "upper": 100 * np.exp(r + 0.02)}
                     for ts, r in zip(hours, predicted, strict=True)]  # fmt: skip
    return pd.DataFrame(rows), pd.concat(candles, ignore_index=True), realised


def scored(predictions, candles, days):
    return pd.concat(
        [score_day(predictions, candles, DAY + timedelta(days=d)) for d in days],
        ignore_index=True,
    )


def test_paired_skill_and_shared_row_ranks_with_a_changing_model_list():
    # days 0-9: baselines and ridge; days 10-34: ridge and hist_gbm, no baselines (the docs'
    # models: [ridge, hist_gbm]); the days get wilder, so unpaired comparisons would mislead
    plan = {d: ["zero_return", "drift", "ridge"] if d < 10 else ["ridge", "hist_gbm"]
            for d in range(35)}  # fmt: skip
    predictions, candles, _ = forecasts_of(plan)
    board = rank_models(scored(predictions, candles, plan), last_days=20).set_index(
        ["window", "model"]
    )
    made = predictions.merge(candles.rename(columns={"ts": "target_ts", "close": "realised"}))
    made["y"] = np.log(made["realised"] / made["close"])
    made["error2"] = (made["y"] - made["pred_log_return"]) ** 2

    made["offset"] = (made["ts"] - pd.Timestamp(DAY)).dt.days

    def own(model, first=0, last=34):
        return made[(made["model"] == model) & made["offset"].between(first, last)]

    gbm = own("hist_gbm")
    expected = 1 - np.sqrt(gbm["error2"].sum() / (gbm["y"] ** 2).sum())
    assert board.loc[("all", "hist_gbm"), "skill_vs_zero"] == pytest.approx(expected)
    # against zero's RMSE over zero's own (calm) days it would look much worse
    zero_rows = own("zero_return")
    unpaired = 1 - np.sqrt(gbm["error2"].mean()) / np.sqrt((zero_rows["y"] ** 2).mean())
    assert unpaired < expected - 0.2
    # skill against drift only over the days drift was scored beside ridge
    ridge_early, drift = own("ridge", 0, 9), own("drift")
    assert board.loc[("all", "ridge"), "skill_vs_drift"] == pytest.approx(
        1 - np.sqrt(ridge_early["error2"].sum() / drift["error2"].sum())
    )
    assert np.isnan(board.loc[("all", "hist_gbm"), "skill_vs_drift"])
    # ranks: the models of the last day, on the 25 days both were scored
    all_time = board.loc["all"]
    assert all_time.loc[["zero_return", "drift"], "rank"].isna().all()
    assert all_time.loc["ridge", "rank"] == 1 and all_time.loc["hist_gbm", "rank"] == 2
    assert (all_time.loc[["ridge", "hist_gbm"], "rank_rows"] == 25 * 24).all()
    # the recent window (days 15-34) holds no baseline at all
    assert set(board.loc["20d"].index) == {"ridge", "hist_gbm"}


def test_diebold_mariano_pools_days_exactly_across_their_boundaries():
    # horizon 6: the first 5 hours of a day pair with the last hours of the day before; 9 days
    # hold 216 scored hours, 36 windows of 6 h (the test needs 30)
    plan = {day: ["zero_return", "ridge", "mlp"] for day in range(10) if day != 3}  # 3 missing
    predictions, candles, realised = forecasts_of(plan, seed=9)
    board = rank_models(scored(predictions, candles, plan)).set_index(["window", "model"])
    for model in ("ridge", "mlp"):
        series = []
        for day in range(10):
            if day not in plan:
                series += [np.nan] * 24
                continue
            made_that_day = (predictions["ts"] - pd.Timestamp(DAY)).dt.days == day
            rows = predictions[(predictions["model"] == model) & made_that_day]
            series += list(loss_differential(realised[day], rows["pred_log_return"].to_numpy()))
        stat, p_value, _ = diebold_mariano(np.array(series), 6)
        assert board.loc[("all", model), "dm_stat"] == pytest.approx(stat)
        assert board.loc[("all", model), "dm_p_value"] == pytest.approx(p_value)
        assert pd.isna(board.loc[("all", model), "dm_note"])
    assert board.loc[("all", "ridge"), "dm_stat"] > 2  # knows part of the future
    assert board.loc[("all", "mlp"), "dm_stat"] < 0  # anti-informed: worse than zero
    assert np.isnan(board.loc[("all", "zero_return"), "dm_stat"])
    assert board.loc[("all", "zero_return"), "dm_note"] == (
        "not tested: its squared errors equal the zero forecast's throughout"
    )


def test_a_window_too_short_to_test_has_no_p_value_and_says_why():
    plan = dict.fromkeys(range(10), ["zero_return", "ridge"])
    predictions, candles, _ = forecasts_of(plan, seed=9)
    board = rank_models(scored(predictions, candles, plan), last_days=7)
    board = board.set_index(["window", "model"])
    # 7 days at 6 h: 168 scored hours, 28 windows; all 10 days: 240 hours, 40 windows
    recent = board.loc[("7d", "ridge")]
    assert pd.isna(recent["dm_stat"]) and pd.isna(recent["dm_p_value"])
    assert recent["dm_note"] == (
        "too few forecasts to test: 168 scored hour(s), 28.0 independent 6-hour windows; "
        "the test needs 30 (180 hours)"
    )
    assert 0 <= board.loc[("all", "ridge"), "dm_p_value"] < 0.05
    assert pd.isna(board.loc[("all", "ridge"), "dm_note"])
    assert board["dm_note"].dtype == "string"


def test_pinball_loss_by_hand():
    # the 5% quantile at 0.9: above it costs 0.05 per unit, below it 0.95 per unit
    assert pinball_loss(0.9, 1.0, 0.05) == pytest.approx(0.005)
    assert pinball_loss(0.9, 0.8, 0.05) == pytest.approx(0.095)
    # the 95% quantile at 1.1: below it costs 0.05 per unit, above it 0.95 per unit
    assert pinball_loss(1.1, 1.0, 0.95) == pytest.approx(0.005)
    assert pinball_loss(1.1, 1.3, 0.95) == pytest.approx(0.19)
    assert pinball_loss(1.1, 1.1, 0.95) == 0


def test_interval_score_by_hand_and_as_the_pinball_losses_of_its_bounds():
    # a 90% interval [0.9, 1.1]: its width inside, plus 2 / 0.1 = 20 x the miss outside
    lower, upper = np.array([0.9, 0.9, 0.9]), np.array([1.1, 1.1, 1.1])
    actual = np.array([1.0, 1.2, 0.85])
    np.testing.assert_allclose(interval_score(lower, upper, actual, 0.1), [0.2, 2.2, 1.2])
    pinball = pinball_loss(lower, actual, 0.05) + pinball_loss(upper, actual, 0.95)
    np.testing.assert_allclose(interval_score(lower, upper, actual, 0.1), 20 * pinball)


def volatility_history(symbol: str, days_before: int, day_values: list[float]) -> pd.DataFrame:
    """Hourly volatility 1, 2, ..., 24 x ``days_before`` before DAY, then ``day_values``."""
    before = pd.date_range(DAY - timedelta(days=days_before), DAY - HOUR, freq="h")
    during = pd.date_range(DAY, periods=len(day_values), freq="h")
    return pd.DataFrame({
        "symbol": symbol, "ts": before.append(during),
        "volatility": np.concatenate([np.arange(1.0, len(before) + 1), day_values]),
    })  # fmt: skip


def test_volatility_terciles_cut_at_the_symbols_last_30_days():
    # 40 days of history: only the last 30 (values 241..960) set the cuts, at 480.33 and
    # 720.67; the day's own hours do not move them
    history = volatility_history("BTC/USDT", 40, [300.0, 600.0, 900.0, 480.0, 481.0])
    # a week less an hour of history is too little: no tercile
    short = volatility_history("ETH/USDT", 6, [1.0, 2.0, 3.0, 4.0, 5.0])
    terciles = volatility_terciles(pd.concat([history, short]), DAY)
    assert terciles.loc["BTC/USDT"].tolist() == [0, 1, 2, 0, 1]
    assert "ETH/USDT" not in terciles.index.get_level_values("symbol")


def test_interval_figures_by_hand_per_day_and_pooled_over_days():
    """Two days, three hours each, one per volatility tercile: the daily rows carry the sums,
    the leaderboard divides the pooled sums."""
    realised = {0: [101.0, 95.0, 112.0], 1: [100.0, 109.0, 91.0]}
    rows, candles = [], []
    for offset, closes in realised.items():
        day = DAY + timedelta(days=offset)
        hours = pd.date_range(day, periods=3, freq="h")
        rows += [{"ts": ts, "symbol": "BTC/USDT", "model": "zero_return", "horizon_h": 6,
                  "target_ts": ts + 6 * HOUR, "close": 100.0, "pred_log_return": 0.0,
                  "pred_price": 100.0, "lower": 90.0, "upper": 110.0, "interval_level": 0.9}
                 for ts in hours]  # fmt: skip
        candles.append(pd.DataFrame({"symbol": "BTC/USDT", "ts": hours + 6 * HOUR,
                                     "close": closes}))  # fmt: skip
    predictions, candles = pd.DataFrame(rows), pd.concat(candles, ignore_index=True)
    # history 1..720 (cuts 240.67 and 480.33), each day's hours low, mid, high (the second
    # day's cuts, over 25..720 and the first day's three, stay between 10, 300 and 700)
    second = pd.date_range(DAY + timedelta(days=1), periods=3, freq="h")
    volatility = pd.concat([
        volatility_history("BTC/USDT", 30, [10.0, 300.0, 700.0]),
        pd.DataFrame({"symbol": "BTC/USDT", "ts": second, "volatility": [10.0, 300.0, 700.0]}),
    ])  # fmt: skip
    metrics = pd.concat(
        [score_day(predictions, candles, DAY + timedelta(days=d), volatility=volatility)
         for d in realised],
        ignore_index=True,
    )  # fmt: skip
    first = metrics.iloc[0]
    # [90, 110] is 20% of the price wide; 101 in, 95 in, 112 out by 2% of the price
    assert first["width_share"] == pytest.approx(0.2)
    assert first["interval_score"] == pytest.approx((3 * 0.2 + 20 * 0.02) / 3)
    # pinball of the 5% quantile 0.9: 0.05 x (0.11, 0.05, 0.22); of the 95% quantile 1.1:
    # 0.05 x (0.09, 0.15) inside and 0.95 x 0.02 above
    assert first["pinball_lower"] == pytest.approx(0.05 * (0.11 + 0.05 + 0.22) / 3)
    assert first["pinball_upper"] == pytest.approx((0.05 * (0.09 + 0.15) + 0.95 * 0.02) / 3)
    assert first[["covered_low_vol", "covered_mid_vol", "covered_high_vol"]].tolist() == [1, 1, 0]
    assert first[["interval_n_low_vol", "interval_n_mid_vol", "interval_n_high_vol"]].tolist() == [
        1, 1, 1,
    ]  # fmt: skip
    assert (first["coverage_low_vol"], first["coverage_high_vol"]) == (1.0, 0.0)
    # day 2: 100 in (low), 109 in (mid), 91 in (high); pooled: high covered 1 of 2
    row = rank_models(metrics).set_index("window").loc["all"]
    assert row["coverage"] == pytest.approx(5 / 6)
    assert (row["coverage_low_vol"], row["coverage_mid_vol"]) == (1.0, 1.0)
    assert row["coverage_high_vol"] == pytest.approx(0.5)
    assert row["width_share"] == pytest.approx(0.2)
    assert row["interval_score"] == pytest.approx((6 * 0.2 + 20 * 0.02) / 6)
    pinball_upper = (0.05 * (0.09 + 0.15 + 0.10 + 0.01 + 0.19) + 0.95 * 0.02) / 6
    assert row["pinball_upper"] == pytest.approx(pinball_upper)


def test_days_scored_before_interval_figures_count_in_none_of_their_means():
    day = {"symbol": "BTC/USDT", "model": "zero_return", "horizon_h": 6, "n": 24,
           "sum_abs_error": 0.1, "sse": 0.01, "sum_y2": 0.01, "direction_n": 0,
           "direction_hits": 0, "covered": 20, "interval_n": 24}  # fmt: skip
    old = {**day, "day": DAY}
    new = {**day, "day": DAY + timedelta(days=1), "sum_width_share": 2.4,
           "sum_interval_score": 4.8, "sum_pinball_lower": 0.24, "sum_pinball_upper": 0.24,
           "covered_high_vol": 6, "interval_n_high_vol": 8}  # fmt: skip
    row = rank_models(pd.DataFrame([old, new])).set_index("window").loc["all"]
    assert row["coverage"] == pytest.approx(40 / 48)
    assert row["width_share"] == pytest.approx(0.1)  # 2.4 over the new day's 24 rows
    assert row["interval_score"] == pytest.approx(0.2)
    assert row["coverage_high_vol"] == pytest.approx(0.75)
    assert np.isnan(row["coverage_low_vol"])
