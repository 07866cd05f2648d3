"""Binance kline dump files written from the sample market, for the file source's tests."""

import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from cryptify_pipeline.market.sample import SampleMarket

HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)


def binance_dump(
    symbol: str, start: datetime, hours: int, unit: str = "ms"
) -> tuple[str, pd.DataFrame]:
    candles = SampleMarket().fetch([symbol], start, start + timedelta(hours=hours))
    scale = {"ms": 1_000, "us": 1_000_000}[unit]
    lines = []
    for row in candles.itertuples():
        open_time = int(row.ts.timestamp()) * scale
        lines.append(
            f"{open_time},{row.open!r},{row.high!r},{row.low!r},{row.close!r},{row.volume!r},"
            f"{open_time + 3600 * scale - 1},{row.quote_volume!r},{row.trades},0,0,0"
        )
    return "\n".join(lines) + "\n", candles


def set_field(text: str, line: int, column: int, value: str) -> str:
    """``text`` with field ``column`` (0-based) of line ``line`` (1-based) set to ``value``."""
    lines = text.split("\n")
    fields = lines[line - 1].split(",")
    fields[column] = value
    lines[line - 1] = ",".join(fields)
    return "\n".join(lines)


def write_zip(path: Path, member: str, data: str | bytes) -> Path:
    """A deflated zip at ``path`` holding ``data`` as ``member``, as Binance publishes dumps."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return path
