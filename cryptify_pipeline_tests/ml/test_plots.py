"""The plots render; the forecast plot labels intervals with their models' calibrated level."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from cryptify_pipeline.ml.plots import equity_plot_png, forecast_plot_png, interval_label


def forecasts(level: float | None) -> pd.DataFrame:
    ts = pd.date_range(datetime(2025, 4, 10, tzinfo=UTC), periods=6, freq="h")
    frame = pd.DataFrame({"symbol": "BTC/USDT", "ts": ts, "target_ts": ts, "pred_price": 100.0,
                          "lower": 95.0, "upper": 105.0})  # fmt: skip
    return frame if level is None else frame.assign(interval_level=level)


def test_the_interval_is_labelled_with_the_level_of_its_models():
    assert interval_label(forecasts(0.9)) == "90% interval"
    assert interval_label(pd.concat([forecasts(0.9), forecasts(0.8)])) == "80%/90% interval"
    assert interval_label(forecasts(None)) == "interval"  # made before levels were recorded
    assert interval_label(forecasts(np.nan)) == "interval"


def test_one_titled_panel_per_symbol_renders():
    frame = pd.concat([forecasts(0.9), forecasts(0.9).assign(symbol="ETH/USDT")])
    candles = frame[["symbol", "ts"]].assign(close=101.0)
    png = forecast_plot_png(frame, candles, "title", {"BTC/USDT": "BTC/USDT: ridge"})
    assert png.startswith(b"\x89PNG")


def test_the_equity_plot_draws_a_panel_per_symbol():
    ends = pd.date_range("2025-01-02 01:00", periods=48, freq="h", tz="UTC")
    curves = {
        symbol: {
            "ridge": pd.Series(1 + 0.001 * np.arange(48), index=ends),
            "buy and hold": pd.Series(1 - 0.001 * np.arange(48), index=ends),
        }
        for symbol in ("BTC/USDT", "ETH/USDT")
    }
    png = equity_plot_png(curves, "equity")
    assert png.startswith(b"\x89PNG")
    # two panels are taller than one
    one = equity_plot_png({"BTC/USDT": curves["BTC/USDT"]}, "equity")
    assert int.from_bytes(png[20:24]) > int.from_bytes(one[20:24])
