"""Is one lstm network per symbol (an output per horizon) as accurate as one per horizon?

The default day of models (180 days, 6/12/24 h) for the default two symbols, the lstm trained
both ways on the same rows and splits: each record's held-out figures side by side, with the
ridge's for scale. Results go to benchmarks/results/lstm_accuracy.json.

    python -m benchmarks.lstm_accuracy
"""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
RESULTS = Path(__file__).parent / "results" / "lstm_accuracy.json"
FIGURES = ["val_mae", "val_rmse", "val_directional_accuracy"]


def main() -> None:
    from cryptify_pipeline.market.sample import SampleMarket
    from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features
    from cryptify_pipeline.ml.targets import HORIZONS, with_targets
    from cryptify_pipeline.ml.training import train_all

    start = CUTOFF - timedelta(days=180)
    candles = SampleMarket().fetch(SYMBOLS, start - timedelta(hours=LOOKBACK_HOURS), CUTOFF)
    rows = with_targets(build_features(candles, start, CUTOFF))
    wall = time.time()
    joint = train_all(rows, CUTOFF, HORIZONS, ["ridge", "lstm"], 180, interval_level=0.9)
    joint_seconds = time.time() - wall
    wall = time.time()
    apart = pd.concat(
        [train_all(rows, CUTOFF, [h], ["lstm"], 180, interval_level=0.9) for h in HORIZONS]
    )
    apart_seconds = time.time() - wall
    keys = ["symbol", "horizon_h"]
    table = (
        joint[joint["model"] == "lstm"][[*keys, *FIGURES, "boosting_rounds"]]
        .merge(apart[[*keys, *FIGURES, "boosting_rounds"]], on=keys, suffixes=("_joint", "_apart"))
        .merge(joint[joint["model"] == "ridge"][[*keys, "val_mae"]].rename(
            columns={"val_mae": "val_mae_ridge"}), on=keys)
    )  # fmt: skip
    summary = {
        "records": json.loads(table.to_json(orient="records")),
        "mean_val_mae_joint": float(table["val_mae_joint"].mean()),
        "mean_val_mae_apart": float(table["val_mae_apart"].mean()),
        "mean_val_rmse_joint": float(table["val_rmse_joint"].mean()),
        "mean_val_rmse_apart": float(table["val_rmse_apart"].mean()),
        "seconds_joint_with_ridge": round(joint_seconds, 2),
        "seconds_apart": round(apart_seconds, 2),
    }
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    print(table.to_string())
    print(json.dumps({k: v for k, v in summary.items() if k != "records"}, indent=1))


if __name__ == "__main__":
    main()
