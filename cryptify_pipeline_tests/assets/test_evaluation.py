"""The leaderboard's plot draws each symbol's own best model, and its text says plainly when
no model beats the zero forecast, and why when none could be tested."""

import numpy as np
import pandas as pd

from cryptify_pipeline.assets.evaluation import best_models, significance_text

SHORT = (
    "too few forecasts to test: 48 scored hour(s), 8.0 independent 6-hour windows; the test "
    "needs 30 (180 hours)"
)


def board(rows: list[tuple[str, int, str, int | None, float]]) -> pd.DataFrame:
    """(symbol, horizon, model, rank, dm_p_value) rows of the 30-day window; RMSE grows with
    the symbol's volatility, so the calm symbol's models have the lowest RMSE of all. A null
    p-value of a model (not the zero forecast) comes with the note of too short a window."""
    scale = {"BTC/USDT": 0.02, "ETH/USDT": 0.005}
    return pd.DataFrame(
        [
            {
                "symbol": symbol,
                "horizon_h": horizon,
                "model": model,
                "window": "30d",
                "rank": rank,
                "rmse": scale[symbol] * (1 + (rank or 9) / 100),
                "dm_p_value": p,
                "dm_note": SHORT if np.isnan(p) and model != "zero_return" else None,
            }
            for symbol, horizon, model, rank, p in rows
        ]  # fmt: skip
    ).astype({"rank": "Int64"})


def test_each_symbol_gets_its_own_best_model():
    ranked = board([
        ("BTC/USDT", 6, "ridge", 1, 0.3), ("BTC/USDT", 6, "drift", 2, 0.6),
        ("BTC/USDT", 6, "mlp", None, 0.9),  # no longer trained: no rank
        ("ETH/USDT", 6, "drift", 1, 0.4), ("ETH/USDT", 6, "ridge", 2, 0.7),
        ("ETH/USDT", 24, "mlp", 1, 0.5),
    ])  # fmt: skip
    # by RMSE across symbols, ETH's drift (the calmest symbol) would be drawn for both
    assert ranked.sort_values("rmse")["model"].iloc[0] == "drift"
    assert best_models(ranked, "30d", 6) == {"BTC/USDT": "ridge", "ETH/USDT": "drift"}
    assert best_models(ranked, "30d", 24) == {"ETH/USDT": "mlp"}
    assert best_models(ranked, "all", 6) == {}


def test_the_text_says_when_no_model_is_significantly_better_than_zero():
    none_better = board([
        ("BTC/USDT", 6, "ridge", 1, 0.03), ("BTC/USDT", 6, "drift", 2, 0.6),
        ("BTC/USDT", 6, "zero_return", 3, np.nan),
        ("ETH/USDT", 6, "ridge", 1, 0.3),
    ])  # fmt: skip
    text = significance_text(none_better, "30d")
    # 0.03 is below 5% but not below 5% / 2 models: not significant after Bonferroni
    assert text.splitlines() == [
        "**No model is significantly better than the zero forecast (30d).**",
        "- BTC/USDT 6h: no model is significantly better than zero",
        "- ETH/USDT 6h: no model is significantly better than zero",
    ]
    one_better = board([("BTC/USDT", 6, "ridge", 1, 0.001), ("BTC/USDT", 6, "drift", 2, 0.6)])
    assert significance_text(one_better, "30d") == "- BTC/USDT 6h: ridge"


def test_the_text_says_why_a_model_was_not_tested():
    short = board([
        ("BTC/USDT", 6, "ridge", 1, np.nan), ("BTC/USDT", 6, "zero_return", 2, np.nan),
        ("ETH/USDT", 6, "ridge", 1, np.nan), ("ETH/USDT", 6, "drift", 2, np.nan),
    ])  # fmt: skip
    assert significance_text(short, "30d").splitlines() == [
        "**No model could be tested against the zero forecast (30d): too few forecasts scored.**",
        f"- BTC/USDT 6h: {SHORT}",
        f"- ETH/USDT 6h: {SHORT}",
    ]
    # one model tested, another not (it has fewer rows): the untested one is not a 'no'
    mixed = board([
        ("BTC/USDT", 6, "ridge", 1, 0.001), ("BTC/USDT", 6, "mlp", 2, np.nan),
        ("BTC/USDT", 6, "xgboost", 3, np.nan),
    ])  # fmt: skip
    assert significance_text(mixed, "30d") == f"- BTC/USDT 6h: ridge; mlp, xgboost: {SHORT}"
