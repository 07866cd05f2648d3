"""Hourly candles from files: Binance's public kline dumps and plain OHLCV CSVs.

``CRYPTIFY_SOURCE=file:<dir or glob>``. Two formats, told apart by their first line:

- Binance dumps (``BTCUSDT-1h-2024-01.csv`` monthly, ``BTCUSDT-1h-2024-01-15.csv`` daily), as
  ``.csv`` or the ``.zip`` they are published in, with or without a header row: ``open_time,
  open, high, low, close, volume, close_time, quote_volume, count, ...``. Spot dumps switched
  ``open_time`` from milliseconds to microseconds in 2025; the unit is read off each value.
- Plain CSV with a header ``timestamp,open,high,low,close,volume`` (more columns are ignored);
  ``timestamp`` is ISO 8601 (UTC unless it says otherwise) or epoch seconds/ms/us.

The symbol comes from the file name: ``BTCUSDT...``, ``BTC-USDT...`` and ``btc_usdt...`` all
name ``BTC/USDT``. Files whose name carries a date outside the asked range are not opened.
"""

from __future__ import annotations

import glob
import io
import logging
import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cryptify_pipeline.market.candles import empty_candles, typed_candles
from cryptify_pipeline.market.sources import SourceError

log = logging.getLogger(__name__)

_DUMP_NAME = re.compile(
    r"-(?P<interval>\d+[smhdwM])-(?P<year>\d{4})-(?P<month>\d{2})(?:-(?P<day>\d{2}))?$"
)
_BINANCE_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]  # fmt: skip
_PLAIN_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


class CandleFileError(SourceError):
    """A file that cannot be read as hourly candles; names the file and the problem."""


class FileSource:
    """Candles from the files matching ``location`` (a directory or a glob)."""

    def __init__(self, location: str):
        self.location = location
        self.name = f"file:{location}"

    def files(self) -> list[Path]:
        path = Path(self.location).expanduser()
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.suffix.lower() in {".csv", ".zip"}]
        else:
            found = [Path(p) for p in glob.glob(str(path), recursive=True)]
        if not found:
            raise CandleFileError(f"no .csv or .zip files at {self.location!r}")
        return sorted(found)

    def fetch(self, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        frames = []
        for path in self.files():
            symbol = symbol_for_file(path, symbols)
            if symbol is None or not _may_cover(path, start, end):
                continue
            for member, text in _csv_texts(path):
                frame = read_candle_csv(text, symbol, source_name=member)
                frames.append(frame[(frame["ts"] >= start) & (frame["ts"] < end)])
        if not frames:
            return empty_candles()
        # monthly and daily dumps may overlap: identical rows are one candle, differing ones
        # are left for validation to reject as duplicates
        return typed_candles(pd.concat(frames).drop_duplicates())


def symbol_for_file(path: Path, symbols: Sequence[str]) -> str | None:
    """The configured symbol the file name starts with (longest match), if any."""
    compact = re.sub(r"[^A-Z0-9]", "", path.name.upper())
    matches = [s for s in symbols if compact.startswith(s.replace("/", ""))]
    return max(matches, key=len) if matches else None


def _may_cover(path: Path, start: datetime, end: datetime) -> bool:
    match = _DUMP_NAME.search(path.name.split(".")[0])
    if match is None:
        return True
    if match["interval"] != "1h":
        log.warning("skipping %s: interval %s, not 1h", path, match["interval"])
        return False
    year, month = int(match["year"]), int(match["month"])
    if match["day"]:
        first = datetime(year, month, int(match["day"]), tzinfo=UTC)
        last = first + pd.Timedelta(days=1)
    else:
        first = datetime(year, month, 1, tzinfo=UTC)
        last = first + pd.DateOffset(months=1)
    return first < end and last > start


def _csv_texts(path: Path) -> Iterator[tuple[str, str]]:
    if path.suffix.lower() != ".zip":
        yield str(path), path.read_text()
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.lower().endswith(".csv"):
                    yield f"{path}!{member}", archive.read(member).decode()
    except zipfile.BadZipFile:
        raise CandleFileError(f"{path}: not a readable zip archive") from None


def read_candle_csv(text: str, symbol: str, source_name: str = "<text>") -> pd.DataFrame:
    """One file's candles as source columns (not yet validated)."""
    first_line = text.lstrip().split("\n", 1)[0].lower()
    fields = [f.strip() for f in first_line.split(",")]
    try:
        if "timestamp" in fields:
            return _read_plain(text, symbol)
        return _read_binance(text, symbol, has_header=not _is_number(fields[0]))
    except CandleFileError as error:
        raise CandleFileError(f"{source_name}: {error}") from None
    except (ValueError, KeyError, pd.errors.ParserError) as error:
        raise CandleFileError(f"{source_name}: not a kline or OHLCV CSV ({error})") from None


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_binance(text: str, symbol: str, has_header: bool) -> pd.DataFrame:
    raw = pd.read_csv(io.StringIO(text), header=0 if has_header else None, dtype=str)
    if raw.shape[1] < 6:
        raise CandleFileError(f"{raw.shape[1]} columns; a kline row has at least 6")
    raw = raw.iloc[:, : len(_BINANCE_COLUMNS)]
    raw.columns = _BINANCE_COLUMNS[: raw.shape[1]]
    return typed_candles(
        pd.DataFrame(
            {
                "ts": epoch_to_utc(pd.to_numeric(raw["open_time"]).to_numpy()),
                "symbol": symbol,
                **{c: pd.to_numeric(raw[c]) for c in ("open", "high", "low", "close", "volume")},
                "quote_volume": pd.to_numeric(raw["quote_volume"])
                if "quote_volume" in raw
                else np.nan,
                "trades": pd.to_numeric(raw["count"]) if "count" in raw else pd.NA,
            }
        )
    )


def _read_plain(text: str, symbol: str) -> pd.DataFrame:
    raw = pd.read_csv(io.StringIO(text), dtype=str)
    raw.columns = [c.strip().lower() for c in raw.columns]
    missing = [c for c in _PLAIN_COLUMNS if c not in raw.columns]
    if missing:
        raise CandleFileError(f"missing column(s) {', '.join(missing)}; need {_PLAIN_COLUMNS}")
    stamps = raw["timestamp"].str.strip()
    if stamps.map(_is_number).all():
        ts = epoch_to_utc(pd.to_numeric(stamps).to_numpy())
    else:
        ts = pd.to_datetime(stamps, utc=True, format="ISO8601")
    return typed_candles(
        pd.DataFrame(
            {
                "ts": ts,
                "symbol": symbol,
                **{c: pd.to_numeric(raw[c]) for c in ("open", "high", "low", "close", "volume")},
                "quote_volume": np.nan,
                "trades": pd.NA,
            }
        )
    )


def epoch_to_utc(values: np.ndarray) -> pd.DatetimeIndex:
    """Epoch numbers to UTC times, reading each value's unit off its size (s, ms or us)."""
    values = values.astype("float64")
    as_us = np.where(values >= 1e14, values, np.where(values >= 1e11, values * 1e3, values * 1e6))
    return pd.to_datetime(as_us.astype("int64"), unit="us", utc=True)
