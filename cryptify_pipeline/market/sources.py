"""Candle sources: the interface every source meets, and the source ``CRYPTIFY_SOURCE`` names.

Their errors are in ``errors.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import pandas as pd

from cryptify_pipeline.market.exchange import ExchangeSource
from cryptify_pipeline.market.files import FileSource
from cryptify_pipeline.market.sample import SampleMarket


class CandleSource(Protocol):
    name: str  # what the candles' ``source`` column says

    def fetch(self, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        """Hourly candles of ``symbols`` with open time in [start, end), source columns."""
        ...


def source_for(
    setting: str, exchange_api_url: str | None = None, backoff_seconds: float = 1.0
) -> CandleSource:
    """``sample``, ``file:<dir or glob>``, or a ccxt exchange id such as ``binance`` (retrying
    transient errors in the call after ``backoff_seconds``, doubling)."""
    if setting == "sample":
        return SampleMarket()
    if setting.startswith("file:"):
        return FileSource(setting.removeprefix("file:"))
    return ExchangeSource(setting, api_url=exchange_api_url, backoff_seconds=backoff_seconds)
