"""What the lstm adds: a day of models and an hour of forecasts, without and with it.

Each measurement runs in a fresh process, as a Dagster run does, so Keras's import (~2 s) and
the training step's compilation (~1.6 s) are counted once per process, as they are paid:

- models: one day of the default config (180 days, 6/12/24 h, the price zoo) for the default
  two symbols, on ``default_training_jobs()`` workers (one on two cores);
- predictions: one hour of forecasts for those symbols from the stored, signed models:
  verifying, loading (the lstm read from its archive by h5py, run in numpy: no Keras) and
  predicting.

Variants alternate, ``--rounds`` times each. Wall and CPU seconds (the children's included).
Results go to benchmarks/results/lstm.json.

    python -m benchmarks.lstm --rounds 2
"""

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
RESULTS = Path(__file__).parent / "results" / "lstm.json"


def _train(variant: str, keep: str | None) -> dict:
    from cryptify_pipeline.market.sample import SampleMarket
    from cryptify_pipeline.ml.artifacts import sign_models
    from cryptify_pipeline.ml.features import LOOKBACK_HOURS, build_features
    from cryptify_pipeline.ml.models import MODEL_ZOO
    from cryptify_pipeline.ml.signing import SigningKey
    from cryptify_pipeline.ml.targets import HORIZONS, with_targets
    from cryptify_pipeline.ml.training import default_training_jobs, train_all

    start = CUTOFF - timedelta(days=180)
    candles = SampleMarket().fetch(SYMBOLS, start - timedelta(hours=LOOKBACK_HOURS), CUTOFF)
    rows = with_targets(build_features(candles, start, CUTOFF))
    models = [model for model in MODEL_ZOO if variant == "with" or model != "lstm"]
    wall, cpu = time.time(), time.process_time()
    records = train_all(
        rows, CUTOFF, HORIZONS, models, 180, interval_level=0.9, n_jobs=default_training_jobs()
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "seconds": round(time.time() - wall, 2),
        "cpu_seconds": round(time.process_time() - cpu + children.ru_utime + children.ru_stime, 2),
        "models": len(records),
    }
    if keep:
        key = SigningKey.generate()
        # signed as the models of the day before the forecast hour's day
        day = CUTOFF - timedelta(days=2)
        signed = sign_models(records.assign(day=day), key)
        recent = rows[rows["ts"] >= CUTOFF - timedelta(days=8)]
        Path(keep).write_bytes(pickle.dumps((key.hex(), signed, recent)))
    return result


def _predict(variant: str, kept: str) -> dict:
    wall, cpu = time.time(), time.process_time()
    from cryptify_pipeline.ml.forecasting import forecast
    from cryptify_pipeline.ml.signing import SigningKey

    key, models, rows = pickle.loads(Path(kept).read_bytes())
    if variant == "without":
        models = models[models["model"] != "lstm"]
    hour = CUTOFF - timedelta(hours=1)
    made = forecast(rows, models, SYMBOLS, hour, hour + timedelta(hours=1), SigningKey.parse(key))
    return {
        "seconds": round(time.time() - wall, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "forecasts": len(made),
    }


def _child(what: str, variant: str, path: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.lstm", "--child", what, variant, path]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        what, variant, path = args.child
        keep = path if what == "train" and variant == "with" else None
        result = _train(variant, keep) if what == "train" else _predict(variant, path)
        print(json.dumps(result))
        return
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as directory:
        kept = str(Path(directory) / "models.pickle")
        for what in ("train", "predict"):
            for _ in range(args.rounds):
                for variant in ("without", "with"):
                    runs.setdefault(f"{what}_{variant}", []).append(_child(what, variant, kept))
    summary = {
        name: {
            "seconds_each": [run["seconds"] for run in measured],
            "seconds_median": median(run["seconds"] for run in measured),
            "cpu_seconds_median": median(run["cpu_seconds"] for run in measured),
        }
        for name, measured in runs.items()
    }
    for what in ("train", "predict"):
        for unit in ("seconds_median", "cpu_seconds_median"):
            ratio = summary[f"{what}_with"][unit] / summary[f"{what}_without"][unit]
            summary[f"{what}_ratio_{unit}"] = round(ratio, 2)
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
