"""Column types between pandas, Arrow and Postgres.

Postgres names are those ``format_type()`` prints, so a table's catalog compares directly.
Timestamps are stored at Postgres's precision (microseconds) and read back as
``datetime64[us, UTC]``, which is also what pandas 3 makes by default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

TIMESTAMPTZ = "timestamp with time zone"
DOUBLE = "double precision"
BIGINT = "bigint"
TEXT = "text"
BOOLEAN = "boolean"
BYTEA = "bytea"
JSONB = "jsonb"

# The dtype instants are stored and read back as: Postgres's precision, pandas 3's default.
STORED_TIMESTAMP = pd.DatetimeTZDtype("us", "UTC")

# Binary COPY sends a jsonb field as a version byte followed by the JSON text.
_JSONB_VERSION = b"\x01"


class ColumnTypeError(TypeError):
    """A frame column whose type cannot be stored, or does not match its table."""


def infer_pg_type(name: str, column: pd.Series) -> str | None:
    """The Postgres type for ``column``; None when it is all-null object data (no evidence)."""
    dtype = column.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return TIMESTAMPTZ
    if pd.api.types.is_datetime64_dtype(dtype):
        raise ColumnTypeError(
            f"column {name!r} holds time-zone-naive timestamps; store UTC instants "
            "(e.g. Series.dt.tz_localize('UTC'))"
        )
    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN
    if pd.api.types.is_integer_dtype(dtype):
        return BIGINT
    if pd.api.types.is_float_dtype(dtype):
        return DOUBLE
    if pd.api.types.is_object_dtype(dtype):
        return _infer_object_type(name, column)
    if pd.api.types.is_string_dtype(dtype):
        return TEXT
    raise ColumnTypeError(
        f"column {name!r} has dtype {dtype}, which cannot be stored; supported: tz-aware "
        "datetimes, floats, integers, booleans, strings, bytes and dict/list (JSON)"
    )


def _infer_object_type(name: str, column: pd.Series) -> str | None:
    kinds = {_object_kind(value) for value in column if not _is_null(value)}
    if not kinds:
        return None
    if len(kinds) == 1:
        return kinds.pop()
    raise ColumnTypeError(f"column {name!r} mixes value types ({', '.join(sorted(kinds))})")


def _object_kind(value: object) -> str:
    if isinstance(value, str):
        return TEXT
    if isinstance(value, bytes | bytearray | memoryview):
        return BYTEA
    if isinstance(value, dict | list):
        return JSONB
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, datetime) and value.tzinfo is not None:
        return TIMESTAMPTZ
    return type(value).__name__


def _is_null(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def storage_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the dtypes its columns are stored and read back as: the one place that
    decides them, so assets and ``ml/`` need not cast. Instants become ``datetime64[us, UTC]``
    (also object columns of tz-aware datetimes) and object columns of text become ``str``.

    Columns already stored as they are stay untouched: no column is copied for nothing, and a
    frame that needs no change is returned as it is.
    """
    changed: dict[int, pd.Series] = {}
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            if column.dtype != STORED_TIMESTAMP:
                changed[position] = column.dt.tz_convert("UTC").dt.as_unit("us")
        elif pd.api.types.is_object_dtype(column.dtype):
            kinds = {_object_kind(value) for value in column if not _is_null(value)}
            if kinds == {TIMESTAMPTZ}:
                changed[position] = pd.to_datetime(column, utc=True).dt.as_unit("us")
            elif kinds == {TEXT}:
                changed[position] = column.astype("str")
    if not changed:
        return frame
    stored = frame.copy(deep=False)  # copy-on-write: the unchanged columns are shared
    for position, column in changed.items():
        stored.isetitem(position, column)
    return stored


def to_arrow(frame: pd.DataFrame, pg_types: Mapping[str, str]) -> pa.Table:
    """``frame``'s columns, in ``pg_types`` order, as Arrow arrays that COPY into those types.

    Numbers and instants already in their stored dtype are wrapped, not copied."""
    arrays = [_to_arrow_array(name, frame[name], pg_type) for name, pg_type in pg_types.items()]
    return pa.Table.from_arrays(arrays, names=list(pg_types))


def _to_arrow_array(name: str, column: pd.Series, pg_type: str) -> pa.Array:
    if pg_type == TIMESTAMPTZ:
        if column.dtype != STORED_TIMESTAMP:
            if isinstance(column.dtype, pd.DatetimeTZDtype):
                column = column.dt.tz_convert("UTC").dt.as_unit("us")
            else:
                column = column.astype(STORED_TIMESTAMP)  # all-null object column
        return pa.array(column, type=pa.timestamp("us", tz="UTC"))
    if pg_type == JSONB:
        return pa.array([_jsonb_bytes(name, value) for value in column], type=pa.binary())
    if pg_type == BYTEA:
        values = [None if _is_null(v) else bytes(v) for v in column]
        return pa.array(values, type=pa.binary())
    arrow_type = {DOUBLE: pa.float64(), BIGINT: pa.int64(), TEXT: pa.string(), BOOLEAN: pa.bool_()}
    if pd.api.types.is_object_dtype(column.dtype):
        column = column.map(lambda v: None if _is_null(v) else v)
    # from_pandas: NaN and pd.NA become SQL NULL, so aggregates skip them as pandas does
    return pa.array(column, type=arrow_type[pg_type], from_pandas=True)


def _jsonb_bytes(name: str, value: object) -> bytes | None:
    if _is_null(value):
        return None
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ColumnTypeError(f"column {name!r} holds a value that is not JSON: {error}") from None
    return _JSONB_VERSION + text.encode()


def to_pandas(batches: pa.RecordBatchReader) -> pd.DataFrame:
    """A query result as a frame with the dtypes the writer used.

    Nullability is not stored, so integer and boolean columns come back as the nullable
    ``Int64`` / ``boolean`` dtypes exactly when the slice read holds a null.

    Memory: the driver frees a batch only once all its columns are gone, so each batch is
    copied out as it arrives (float columns straight into NumPy, the others into Arrow), and
    each column's pieces are released as soon as that column is joined: a read of a million
    candle rows peaks ~80 MB above the frame, where converting a fetched table held both.
    """
    schema = batches.schema
    pieces: list[list[object]] = [[] for _ in schema]
    for batch in batches:
        _copy_out(batch, pieces)
        del batch
    series = {}
    for field in schema:
        kept = pieces.pop(0)
        if pa.types.is_float64(field.type) and kept:
            series[field.name] = pd.Series(np.concatenate(kept), copy=False)
        else:
            series[field.name] = _to_series(pa.chunked_array(kept, field.type))
        del kept
    return pd.DataFrame(series, columns=schema.names, copy=False)


def _copy_out(batch: pa.RecordBatch, pieces: list[list[object]]) -> None:
    for kept, column in zip(pieces, batch.columns, strict=True):
        if pa.types.is_float64(column.type):  # NaN for NULL, as to_pandas does
            kept.append(column.to_numpy(zero_copy_only=False, writable=True))
        else:
            kept.append(pa.concat_arrays([column]))  # a copy, in Arrow's own memory


def _to_series(column: pa.ChunkedArray) -> pd.Series:
    arrow_type = column.type
    if getattr(arrow_type, "extension_name", None) == "arrow.json":  # how ADBC returns jsonb
        texts = column.cast(arrow_type.storage_type).to_pylist()
        return pd.Series([None if t is None else json.loads(t) for t in texts], dtype=object)
    if column.null_count and pa.types.is_integer(arrow_type):
        return column.to_pandas(types_mapper={arrow_type: pd.Int64Dtype()}.get)
    if column.null_count and pa.types.is_boolean(arrow_type):
        return column.to_pandas(types_mapper={arrow_type: pd.BooleanDtype()}.get)
    if pa.types.is_string(arrow_type) and column.num_chunks > 1:
        # pandas keeps Arrow strings as they come: one array of them, not one per batch.
        column = pa.chunked_array([pa.concat_arrays(column.chunks).cast(pa.large_string())])
    series = column.to_pandas()
    if pa.types.is_timestamp(arrow_type) and series.dtype != STORED_TIMESTAMP:
        return series.dt.tz_convert("UTC").dt.as_unit("us")
    return series
