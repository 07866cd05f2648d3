"""A picture of recent forecasts: realised price against forecast price and its interval."""

import base64
import io
from collections.abc import Mapping

import pandas as pd


def forecast_plot_png(
    predictions: pd.DataFrame,
    candles: pd.DataFrame,
    title: str,
    panel_titles: Mapping[str, str] | None = None,
) -> bytes:
    """One panel per symbol: realised close, and each forecast placed at its target time;
    ``panel_titles`` names each panel (default: the symbol)."""
    # imported on use: matplotlib costs half a second in every process that loads the code
    import matplotlib

    matplotlib.use("Agg")  # no display: render to bytes
    import matplotlib.pyplot as plt

    symbols = sorted(predictions["symbol"].unique())
    figure, axes = plt.subplots(len(symbols), 1, figsize=(9, 2.6 * len(symbols)), squeeze=False)
    for axis, symbol in zip(axes[:, 0], symbols, strict=True):
        realised = candles[candles["symbol"] == symbol].sort_values("ts")
        forecast = predictions[predictions["symbol"] == symbol].sort_values("target_ts")
        axis.fill_between(forecast["target_ts"], forecast["lower"], forecast["upper"],
                          alpha=0.25, label=interval_label(forecast))  # fmt: skip
        axis.plot(forecast["target_ts"], forecast["pred_price"], lw=1, label="forecast")
        axis.plot(realised["ts"], realised["close"], lw=1.2, color="black", label="realised")
        axis.set_title((panel_titles or {}).get(symbol, symbol), fontsize=9)
        axis.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()


def interval_label(predictions: pd.DataFrame) -> str:
    """ "90% interval": the level the forecasts' models were calibrated for, from the data, so an
    older forecast keeps the level it was made with."""
    levels = sorted(predictions.get("interval_level", pd.Series(dtype=float)).dropna().unique())
    if not levels:
        return "interval"
    return "/".join(f"{level:.0%}" for level in levels) + " interval"


def as_markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def equity_plot_png(curves: Mapping[str, Mapping[str, pd.Series]], title: str) -> bytes:
    """One panel per symbol: each strategy's equity curve (start 1), buy-and-hold's in black
    and flat (cash) as a dashed line at 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    symbols = sorted(curves)
    figure, axes = plt.subplots(len(symbols), 1, figsize=(9, 2.8 * len(symbols)), squeeze=False)
    for axis, symbol in zip(axes[:, 0], symbols, strict=True):
        for name, equity in sorted(curves[symbol].items()):
            if name == "buy and hold":
                axis.plot(equity.index, equity.to_numpy(), lw=1.6, color="black", label=name)
            else:
                axis.plot(equity.index, equity.to_numpy(), lw=0.9, label=name)
        axis.axhline(1.0, lw=1, ls="--", color="grey", label="flat (cash)")
        axis.set_title(symbol, fontsize=9)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6, loc="upper left", ncol=3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()
