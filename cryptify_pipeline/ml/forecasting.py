"""Forecasts from stored models: each model's log return, price and interval at every hour."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from cryptify_pipeline.ml import lstm
from cryptify_pipeline.ml.artifacts import load_model, verify_model
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.training import SCALE_COLUMNS, interval_scale


class MissingInputs(ValueError):
    """Features or models that a forecast needs are not there."""


def model_day(ts: pd.Series) -> pd.Series:
    """The model a forecast at ``ts`` uses: the one trained through the end of the day before."""
    return ts.dt.floor("D") - timedelta(days=1)


def forecast(
    features: pd.DataFrame,
    models: pd.DataFrame,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    signing_key: SigningKey,
) -> pd.DataFrame:
    """Every model's forecast for every symbol and hour in [start, end), from models that
    ``signing_key`` signed (``artifacts.ModelIntegrityError`` names the first that it did not)."""
    rows = _rows_to_forecast(features, models, symbols, start, end)
    loaded: dict[str, object] = {}
    batches = _batches_by_model(rows, models)
    for records, batch in batches:
        # every row that serves a forecast is verified, not only the one whose bytes are loaded
        for record in records:
            verify_model(record._asdict(), signing_key)
        record = records[0]
        if record.interval_method not in SCALE_COLUMNS:
            raise MissingInputs(
                f"{record.model} for {record.symbol} ({record.horizon_h}h) has an interval made "
                f"by {record.interval_method!r}, which this code cannot apply (it knows "
                f"{', '.join(SCALE_COLUMNS)}; retrain the model)"
            )
        needed = [*record.features, SCALE_COLUMNS[record.interval_method]]
        if absent := [column for column in needed if column not in batch.columns]:
            raise MissingInputs(
                f"{record.model} for {record.symbol} ({record.horizon_h}h) was fitted on "
                f"feature column(s) the features lack: {', '.join(absent)} (re-materialise "
                "features with this version for those hours)"
            )
        if record.sha256 not in loaded:
            loaded[record.sha256] = load_model(record._asdict(), signing_key)
    # a symbol's models share its rows and mostly their columns: each selection is made once
    inputs: dict[tuple[int, tuple[str, ...]], pd.DataFrame] = {}
    # One thread inside each predict: an hour is one row per model, and the BLAS / OpenMP
    # pools spun up for every one of ~1,000 tiny calls took more CPU than the predictions
    # (2x the step's CPU on a busy 2-core machine). The same values, bit for bit (the scale
    # benchmark's 1,050 forecasts; a test for the boosted models): those threads split rows,
    # and an hour has one. After loading, as threadpoolctl limits only loaded libraries.
    with threadpool_limits(limits=1):
        out = []
        for records, batch in batches:
            record = records[0]
            columns = tuple(record.features)
            x = inputs.get((id(batch), columns))
            if x is None:
                x = inputs[(id(batch), columns)] = batch[list(columns)]
            model = loaded[record.sha256]
            if lstm.is_lstm(model):  # its input is the hours before each row too
                predicted = _windowed_predictions(model, features, record, batch)
            else:
                predicted = _predictions(model, x)
            out.append(_forecast_batch(predicted, record, batch))
    return _frame(out).sort_values(["symbol", "ts", "model", "horizon_h"], ignore_index=True)


def _predictions(model, x: pd.DataFrame) -> np.ndarray:
    # XGBoost predicts float32: in float64 before exp, so every price is close * exp(r) exactly
    # as anyone recomputes it from the stored log return
    return np.asarray(model.predict(x), dtype="float64")


def _windowed_predictions(model, features: pd.DataFrame, record, batch: pd.DataFrame) -> np.ndarray:
    """An LSTM's forecasts of ``batch``'s rows, each from the window of feature rows of its
    symbol ending at its hour (``features`` holds the hours before the forecast window too);
    refused, naming the symbol, where the symbol's features begin inside a window."""
    history = features[features["symbol"] == record.symbol]
    hours = model.window_hours
    if len(short := lstm.short_of_history(history, batch["ts"], hours)):
        first = f"{history['ts'].min():%Y-%m-%d %H:%M}" if len(history) else "nowhere"
        raise MissingInputs(
            f"{record.model} for {record.symbol} ({record.horizon_h}h) needs the {hours} hours "
            f"of features ending at each forecast hour, and {record.symbol}'s features begin "
            f"at {first}: too little history for {len(short)} hour(s) from "
            f"{short[0]:%Y-%m-%d %H:%M} (backfill candles and features first)"
        )
    return model.predict(lstm.windows(history, batch["ts"], list(record.features), hours))


def _rows_to_forecast(
    features: pd.DataFrame,
    models: pd.DataFrame,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    """The feature rows in [start, end) with the day of their model; raises naming whatever
    feature row or model day is missing."""
    hours = pd.date_range(start, end, freq="h", inclusive="left", unit="us")
    expected = pd.MultiIndex.from_product([list(symbols), hours], names=["symbol", "ts"])
    absent = expected.difference(pd.MultiIndex.from_frame(features[["symbol", "ts"]]))
    if len(absent):
        shown = ", ".join(f"{s} {t:%Y-%m-%d %H:%M}" for s, t in absent[:10])
        raise MissingInputs(
            f"no features for {len(absent)} symbol-hour(s): {shown}"
            f"{' ...' if len(absent) > 10 else ''} (materialise candles and features first)"
        )
    in_window = (features["ts"] >= start) & (features["ts"] < end)
    rows = features[in_window & features["symbol"].isin(list(symbols))].assign(
        model_day=lambda f: model_day(f["ts"])
    )
    needed = set(zip(rows["model_day"], rows["symbol"], strict=True))
    have = set(zip(pd.to_datetime(models["day"], utc=True), models["symbol"], strict=True))
    if missing := sorted(needed - have):
        raise MissingInputs(
            "no models trained through the end of "
            + ", ".join(f"{day:%Y-%m-%d} for {symbol}" for day, symbol in missing[:10])
            + (" ..." if len(missing) > 10 else "")
            + " (materialise those days of the models asset first)"
        )
    return rows


def _batches_by_model(rows: pd.DataFrame, models: pd.DataFrame) -> list[tuple[list, pd.DataFrame]]:
    """(model records, the rows they forecast) pairs; a model that serves several days with the
    same interval and level (a baseline whose bytes do not change, a model kept while daily
    training is paused) gets all their rows in one batch, so it predicts once."""
    # one pass to split the rows: filtering them per model is quadratic over a long range
    by_day = dict(list(rows.groupby(["model_day", "symbol"], sort=False)))
    serving: dict[tuple, tuple[list, list[pd.DataFrame]]] = {}
    for record in models.itertuples(index=False):
        batch = by_day.get((pd.Timestamp(record.day), record.symbol))
        if batch is None:
            continue
        key = (
            record.sha256, record.symbol, record.model, record.horizon_h, record.interval_level,
            # absent from a row stored before intervals said how they were made: verification
            # then refuses it by name (its signed fields are missing), not an AttributeError
            getattr(record, "interval_method", None), getattr(record, "interval_residuals", None),
            *map(_nan_as_none, (record.interval_low, record.interval_high,
                                record.interval_scale_median)),
            tuple(record.features),
        )  # fmt: skip
        records, batches = serving.setdefault(key, ([], []))
        records.append(record)
        batches.append(batch)
    return [
        (records, pd.concat(batches) if len(batches) > 1 else batches[0])
        for records, batches in serving.values()
    ]


def _nan_as_none(value: float) -> float | None:
    # NaN != NaN: as a key part, two uncalibrated intervals would never be the same
    return None if pd.isna(value) else float(value)


def _forecast_batch(predicted: np.ndarray, record, batch: pd.DataFrame) -> dict[str, object]:
    """One model's forecasts of ``batch``'s rows from its ``predicted`` log returns: the
    columns of the predictions table (a scalar where every row has the same value)."""
    close = batch["close"].to_numpy()
    scale = interval_scale(batch, record.horizon_h, record.interval_method)
    # without its history (or from a features row older than the scale's column) the
    # volatility is unknown: the validation median stands in
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, record.interval_scale_median)
    ts = batch["ts"].array
    return {
        "ts": ts,
        "symbol": record.symbol,
        "model": record.model,
        "horizon_h": record.horizon_h,
        "target_ts": ts + timedelta(hours=record.horizon_h),
        "close": close,
        "pred_log_return": predicted,
        # a log return becomes a price through exp, never 1 + r
        "pred_price": close * np.exp(predicted),
        # an uncalibrated interval has NaN bounds: no interval is claimed
        "lower": close * np.exp(predicted + record.interval_low * scale),
        "upper": close * np.exp(predicted + record.interval_high * scale),
        "interval_level": record.interval_level,  # signed with the model
        "interval_calibrated": bool(
            np.isfinite(record.interval_low) and np.isfinite(record.interval_high)
        ),
        # how the interval was made: the method and the held-out residuals it rests on
        "interval_method": record.interval_method,
        "interval_residuals": int(record.interval_residuals),
        "model_day": batch["model_day"].array,
        "model_sha256": record.sha256,
    }


def _frame(batches: list[dict[str, object]]) -> pd.DataFrame:
    """The batches' columns as one frame: arrays joined, scalars repeated per row (a frame
    per batch, then concatenated, took longer than the ~1,000 predictions of an hour)."""
    if not batches:
        raise MissingInputs("nothing to forecast: the window holds no hour")
    lengths = np.array([len(batch["close"]) for batch in batches])  # type: ignore[arg-type]
    columns: dict[str, object] = {}
    for name in batches[0]:
        values = [batch[name] for batch in batches]
        if isinstance(values[0], pd.api.extensions.ExtensionArray):
            columns[name] = pd.concat([pd.Series(v, copy=False) for v in values]).array
        elif isinstance(values[0], np.ndarray):
            columns[name] = np.concatenate(values)
        else:
            columns[name] = np.repeat(np.array(values, dtype=_scalar_dtype(values)), lengths)
    return pd.DataFrame(columns)


def _scalar_dtype(values: list) -> object:
    # text as Python objects, which pandas makes its str dtype as it did for a frame per batch
    return object if isinstance(values[0], str) else None
