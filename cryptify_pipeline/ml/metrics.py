"""Forecast accuracy, with additive sums so that days can be pooled exactly."""

import numpy as np


def accuracy(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """n, MAE, RMSE, R2 out of sample against the zero forecast (1 - SSE / sum(y^2)) and
    directional accuracy with ties (a zero actual or forecast) excluded, plus their sums."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    error = actual - predicted
    decided = (np.sign(actual) != 0) & (np.sign(predicted) != 0)
    sums = {
        "n": len(actual),
        "sum_abs_error": float(np.abs(error).sum()),
        "sse": float((error**2).sum()),
        "sum_y2": float((actual**2).sum()),
        "direction_n": int(decided.sum()),
        "direction_hits": int((np.sign(actual) == np.sign(predicted))[decided].sum()),
    }
    return {**sums, **figures(sums)}


def figures(sums: dict[str, float]) -> dict[str, float]:
    """The figures from (possibly pooled) sums; NaN where undefined."""
    n = sums["n"]
    return {
        "mae": sums["sum_abs_error"] / n if n else np.nan,
        "rmse": float(np.sqrt(sums["sse"] / n)) if n else np.nan,
        "r2_vs_zero": 1 - sums["sse"] / sums["sum_y2"] if sums["sum_y2"] else np.nan,
        "directional_accuracy": (
            sums["direction_hits"] / sums["direction_n"] if sums["direction_n"] else np.nan
        ),
    }
