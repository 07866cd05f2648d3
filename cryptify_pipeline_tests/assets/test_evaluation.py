"""The leaderboard's plot draws each symbol's own best model, and its text says plainly when
no model beats the zero forecast."""

import numpy as np
import pandas as pd

from cryptify_pipeline.assets.evaluation import best_models, significance_text


def board(rows: list[tuple[str, int, str, int | None, float]]) -> pd.DataFrame:
    """(symbol, horizon, model, rank, dm_p_value) rows of the 30-day window; RMSE grows with
    the symbol's volatility, so the calm symbol's models have the lowest RMSE of all."""
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
