"""Equity-index bars from CSV files (``CRYPTIFY_EQUITY_INDEX_SOURCE=file:<dir>``).

One file per index in the directory, named after it (``ES=F.csv``, ``NQ=F.csv``), with a
header and one row per traded hour:

    ts,open,high,low,close,volume
    2025-03-03T14:00:00Z,5950.25,5961.0,5948.5,5958.75,182345

``ts`` is the bar's open time (ISO 8601, UTC when no offset is given; any offset is converted);
``volume`` may be empty. Hours that have no row and fall where CME's equity futures are shut
(``cme_calendar.cme_equity_open``, US holidays included) become ``market_open = false`` rows;
a row on an hour the calendar calls shut is kept as a bar. Hours with no row while CME trades
stay missing, and the completeness check names them. A row at a minute other than :00, a
duplicate hour or a non-positive price is refused with the file and line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cryptify_pipeline.market.context import EQUITY_PRICE_COLUMNS, shut_hours
from cryptify_pipeline.market.errors import SourceError

FILE_COLUMNS = ("ts", *EQUITY_PRICE_COLUMNS)


class EquityIndexFiles:
    """Hourly index bars from ``<directory>/<index symbol>.csv``."""

    name = "file"

    def __init__(self, directory: str):
        self.directory = Path(directory).expanduser()

    def fetch(self, index_symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        bars = [self._read(index_symbol, start, end) for index_symbol in index_symbols]
        frame = pd.concat(bars) if bars else pd.DataFrame()
        return shut_hours(frame, index_symbols, start, end, self.name)

    def _read(self, index_symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        path = self.directory / f"{index_symbol}.csv"
        if not path.is_file():
            raise SourceError(f"no file for {index_symbol}: {path} does not exist")
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise SourceError(f"{path}: not a CSV file: {error}") from error
        lacking = [column for column in FILE_COLUMNS if column not in raw.columns]
        if lacking:
            raise SourceError(f"{path}: no column {', '.join(lacking)}; expected {FILE_COLUMNS}")
        ts = pd.to_datetime(raw["ts"], utc=True, errors="coerce", format="ISO8601")
        numbers = {
            c: pd.to_numeric(raw[c].replace("", np.nan), errors="coerce")
            for c in EQUITY_PRICE_COLUMNS
        }
        frame = pd.DataFrame({"ts": ts, **numbers})
        bad = [
            ("a time that is not ISO 8601", ts.isna()),
            ("a time not on the hour", ts.notna() & (ts != ts.dt.floor("h"))),
            ("a duplicate hour", ts.notna() & ts.duplicated(keep=False)),
            (
                "a missing or non-positive price",
                ~(frame[["open", "high", "low", "close"]] > 0).all(axis=1),
            ),
            ("a negative volume", frame["volume"] < 0),
        ]
        for rule, mask in bad:
            if mask.any():
                line = int(np.flatnonzero(mask.to_numpy())[0]) + 2  # the header is line 1
                raise SourceError(f"{path}, line {line}: {rule}: {raw.iloc[line - 2].to_dict()}")
        frame = frame[(frame["ts"] >= start) & (frame["ts"] < end)]
        return frame.assign(index_symbol=index_symbol, market_open=True, source=self.name)
