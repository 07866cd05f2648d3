"""One candle file's text to candles, every row checked and named by its line.

Two formats, told apart by their first line:

- Binance kline dumps, with or without a header row: ``open_time, open, high, low, close,
  volume, close_time, quote_volume, count, ...``. Spot dumps switched ``open_time`` from
  milliseconds to microseconds in 2025; the unit is read off each value.
- Plain CSV with a header ``timestamp,open,high,low,close,volume`` (more columns are ignored);
  ``timestamp`` is ISO 8601 (UTC unless it says otherwise) or epoch seconds/ms/us.

Every row of a file is read and checked before the caller keeps the hours it asked for: a
corrupt row anywhere refuses the whole file, naming its line, instead of quietly dropping out
of the range (a ``1e25`` open time used to overflow into 1677 and vanish).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from cryptify_pipeline.market.candles import first_broken, row_rules, typed_candles
from cryptify_pipeline.market.errors import SourceError

# No crypto market is older than bitcoin's first block (2009-01-03); an open time before this,
# or after the moment of reading, is a corrupt value, not a candle.
EARLIEST_OPEN_TIME = datetime(2009, 1, 1, tzinfo=UTC)
# 22 years of hours: more rows than one symbol's hourly file can hold without duplicates.
MAX_ROWS = 200_000
# a kline row has 12 fields; a first line with more than this is not a candle file
MAX_COLUMNS = 100
LARGEST_COUNT = np.iinfo(np.int64).max  # Postgres bigint

_BINANCE_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]  # fmt: skip
_PLAIN_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
_OHLCV = ("open", "high", "low", "close", "volume")
_TIMES = "from 2009-01-01 to now"


class CandleFileError(SourceError):
    """A file that cannot be read as hourly candles; names the file, the line and the problem."""


def read_candle_csv(
    text: str, symbol: str, source_name: str = "<text>", latest: datetime | None = None
) -> pd.DataFrame:
    """Every candle of one file, checked row by row; open times must lie in [2009, ``latest``]
    (default: now)."""
    try:
        return _read(text, symbol, latest or datetime.now(UTC))
    except CandleFileError as error:
        raise CandleFileError(f"{source_name}: {error}") from None
    except (ValueError, KeyError, pd.errors.ParserError) as error:
        raise CandleFileError(f"{source_name}: not a kline or OHLCV CSV ({error})") from None


def count_rows(text: str) -> int:
    """The lines of ``text`` after its header, if it has one, without parsing it (blank lines
    count too: an upper bound of its candles)."""
    body = text.lstrip()
    if not body:
        return 0
    lines = body.count("\n") + (not body.endswith("\n"))
    end = body.find("\n")
    first_field = (body if end < 0 else body[:end]).split(",", 1)[0]
    return lines - (not _is_number(first_field.strip()))  # a header is not a row


def _read(text: str, symbol: str, latest: datetime) -> pd.DataFrame:
    body = text.lstrip()
    skipped_lines = text[: len(text) - len(body)].count("\n")
    if not body:
        raise CandleFileError("the file is empty (not even a header row)")
    if (lines := body.count("\n")) > MAX_ROWS + 1:
        raise CandleFileError(
            f"{lines:,} lines; a candle file may hold at most {MAX_ROWS:,} rows (22 years of hours)"
        )
    first_line = body.split("\n", 1)[0].lower()
    if (columns := first_line.count(",") + 1) > MAX_COLUMNS:
        raise CandleFileError(f"{columns} columns; a candle file has at most {MAX_COLUMNS}")
    fields = [f.strip() for f in first_line.split(",")]
    if "timestamp" in fields:
        missing = [c for c in _PLAIN_COLUMNS if c not in fields]
        if missing:
            raise CandleFileError(f"missing column(s) {', '.join(missing)}; need {_PLAIN_COLUMNS}")
        used = [fields.index(c) for c in _PLAIN_COLUMNS]
        raw = _raw_rows(body, used, _PLAIN_COLUMNS, header=True, first_line=skipped_lines + 1)
        frame = _plain(raw, symbol, latest)
    else:
        if len(fields) < 6:
            raise CandleFileError(f"{len(fields)} columns; a kline row has at least 6")
        names = _BINANCE_COLUMNS[: len(fields)]
        has_header = not _is_number(fields[0])
        raw = _raw_rows(
            body, list(range(len(names))), names, header=has_header, first_line=skipped_lines + 1
        )
        frame = _binance(raw, symbol, latest)
    _check_rows(frame)
    return typed_candles(frame)


def _raw_rows(
    body: str, positions: list[int], names: list[str], header: bool, first_line: int
) -> pd.DataFrame:
    """The fields at ``positions`` as stripped strings (missing: NA), named ``names`` and
    indexed by line number; other columns are not kept."""
    try:
        raw = pd.read_csv(
            io.StringIO(body),
            header=None,
            skiprows=1 if header else 0,
            usecols=positions,
            dtype=str,
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError:  # a header and no rows: no candles
        return pd.DataFrame({name: pd.Series(dtype="str") for name in names})
    raw = raw[positions].set_axis(names, axis="columns")
    raw = raw.apply(lambda column: column.str.strip()).replace("", pd.NA)
    raw.index = raw.index + first_line + (1 if header else 0)
    return raw.dropna(how="all")  # blank lines


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _binance(raw: pd.DataFrame, symbol: str, latest: datetime) -> pd.DataFrame:
    open_times = pd.to_numeric(raw["open_time"], errors="coerce")
    ts = pd.Series(epoch_to_utc(open_times.to_numpy(), latest), index=raw.index)
    _refuse_unreadable(ts.isna(), raw["open_time"], f"open time is not an epoch time {_TIMES}")
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": symbol,
            **{c: _numbers(raw, c) for c in _OHLCV},
            "quote_volume": _numbers(raw, "quote_volume") if "quote_volume" in raw else np.nan,
            "trades": _counts(raw["count"]) if "count" in raw else pd.NA,
        },
        index=raw.index,
    )


def _plain(raw: pd.DataFrame, symbol: str, latest: datetime) -> pd.DataFrame:
    stamps = raw["timestamp"]
    as_numbers = pd.to_numeric(stamps, errors="coerce")
    from_epoch = pd.Series(epoch_to_utc(as_numbers.to_numpy(), latest), index=raw.index)
    from_iso = pd.to_datetime(stamps, utc=True, format="ISO8601", errors="coerce")
    from_iso = from_iso.where((from_iso >= EARLIEST_OPEN_TIME) & (from_iso <= latest))
    ts = from_epoch.where(as_numbers.notna(), from_iso)
    _refuse_unreadable(ts.isna(), stamps, f"timestamp is not an ISO 8601 or epoch time {_TIMES}")
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": symbol,
            **{c: _numbers(raw, c) for c in _OHLCV},
            "quote_volume": np.nan,
            "trades": pd.NA,
        },
        index=raw.index,
    )


def _numbers(raw: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(raw[column], errors="coerce")
    # an empty field stays NaN for the rules to name; text that is no number is named here
    unreadable = values.isna() & raw[column].notna()
    _refuse_unreadable(unreadable, raw[column], f"{column} is not a number")
    return values.astype("float64")


def _counts(fields: pd.Series) -> pd.Series:
    digits = fields.str.lstrip("0").str.replace(r"^$", "0", regex=True)
    whole = digits.str.fullmatch(r"\d+").fillna(False).astype(bool)
    fits = digits.str.len().lt(19) | (
        digits.str.len().eq(19) & digits.fillna("").le(str(LARGEST_COUNT))
    )
    _refuse_unreadable(
        fields.notna() & ~(whole & fits),
        fields,
        f"trade count is not a whole number from 0 to {LARGEST_COUNT}",
    )
    return digits.where(fields.notna()).astype("Int64")


def _refuse_unreadable(bad: pd.Series, fields: pd.Series, problem: str) -> None:
    if not bad.any():
        return
    lines = bad.index[bad.to_numpy(dtype=bool)]
    more = f" ({len(lines)} rows like it, lines {_some(lines)})" if len(lines) > 1 else ""
    value = fields.loc[lines[0]]
    shown = "(empty)" if pd.isna(value) else repr(value)
    raise CandleFileError(f"line {lines[0]}: {problem}: {shown}{more}")


def _check_rows(frame: pd.DataFrame) -> None:
    """The candle rules over every row of the file, before any range is cut out of it."""
    typed = typed_candles(frame, sort=False)
    if (broken := first_broken(row_rules(typed))) is None:
        return
    rule, mask = broken
    lines = typed.index[mask]
    first = typed.loc[lines[0]]
    raise CandleFileError(
        f"line {lines[0]}: {rule} ({first['symbol']} {first['ts']:%Y-%m-%d %H:%M}; "
        f"{len(lines)} row(s) break this rule, lines {_some(lines)})"
    )


def _some(lines: pd.Index, shown: int = 5) -> str:
    listed = ", ".join(str(line) for line in lines[:shown])
    return listed + (", ..." if len(lines) > shown else "")


def epoch_to_utc(values: np.ndarray, latest: datetime | None = None) -> pd.DatetimeIndex:
    """Epoch numbers to UTC times, reading each value's unit off its size (s, ms or us).

    A value that is not a finite number of a time from 2009-01-01 to ``latest`` (default: now)
    becomes NaT, for the caller to name; values are checked before the conversion to int64,
    which a huge value would overflow.
    """
    values = np.asarray(values, dtype="float64")
    scale = np.where(values >= 1e14, 1.0, np.where(values >= 1e11, 1e3, 1e6))
    with np.errstate(invalid="ignore", over="ignore"):
        micros = values * scale
    earliest = EARLIEST_OPEN_TIME.timestamp() * 1e6
    last = (latest or datetime.now(UTC)).timestamp() * 1e6
    readable = np.isfinite(micros) & (micros >= earliest) & (micros <= last)
    stamps = pd.to_datetime(np.where(readable, micros, 0).astype("int64"), unit="us", utc=True)
    return stamps.where(readable)
