"""Scores are exact, use the same rows for every model, and pool over days."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.ml.metrics import accuracy
from cryptify_pipeline.ml.scoring import rank_models, score_day

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


def test_scores_use_the_same_rows_for_every_model():
    hours = pd.date_range(DAY, periods=3, freq="h")
    base = {"symbol": "BTC/USDT", "horizon_h": 6, "close": 100.0, "pred_log_return": 0.0,
            "pred_price": 100.0, "lower": 90.0, "upper": 110.0}  # fmt: skip
    rows = [{**base, "ts": ts, "target_ts": ts + 6 * HOUR, "model": "zero_return"} for ts in hours]
    rows += [{**base, "ts": ts, "target_ts": ts + 6 * HOUR, "model": "linear"} for ts in hours[:2]]
    candles = pd.DataFrame({"symbol": "BTC/USDT", "ts": hours + 6 * HOUR, "close": 101.0})
    scores = score_day(pd.DataFrame(rows), candles, DAY)
    assert scores["n"].tolist() == [2, 2]  # the hour only one model forecast is left out


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
