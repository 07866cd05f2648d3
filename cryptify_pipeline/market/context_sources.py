"""Market-context sources: the perpetual swaps' open interest and funding, and equity indexes.

One interface per kind (their errors are ``errors.py``'s), and the sources the settings name:
``CRYPTIFY_CONTEXT_SOURCE`` (``sample``, ``none`` or a ccxt exchange id such as ``bybit``) and
``CRYPTIFY_EQUITY_INDEX_SOURCE`` (``sample``, ``none``, ``yfinance`` or ``file:<dir>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import pandas as pd

from cryptify_pipeline.market.equity_files import EquityIndexFiles
from cryptify_pipeline.market.perpetuals import PerpetualSource
from cryptify_pipeline.market.sample import SampleContext, SampleEquityIndex
from cryptify_pipeline.market.yahoo import YahooFinance

NONE = "none"


class DerivativesSource(Protocol):
    name: str  # what the rows' ``source`` column says

    def fetch_open_interest(
        self, symbols: Sequence[str], start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Open interest of each symbol's perpetual at the whole hours in [start, end)."""
        ...

    def fetch_funding_rates(
        self, symbols: Sequence[str], start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Funding rates of each symbol's perpetual settled in [start, end)."""
        ...


class EquityIndexSource(Protocol):
    name: str

    def fetch(self, index_symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        """One row per index and hour in [start, end) the source knows: the bar, or
        ``market_open = false`` for an hour the market was shut."""
        ...


def derivatives_source_for(setting: str, api_url: str | None = None) -> DerivativesSource | None:
    """``sample``, a ccxt exchange id (``bybit``), or None for ``none``."""
    if setting == NONE:
        return None
    if setting == "sample":
        return SampleContext()
    return PerpetualSource(setting, api_url=api_url)


def equity_index_source_for(setting: str) -> EquityIndexSource | None:
    """``sample``, ``yfinance``, ``file:<dir>``, or None for ``none``."""
    if setting == NONE:
        return None
    if setting == "sample":
        return SampleEquityIndex()
    if setting.startswith("file:"):
        return EquityIndexFiles(setting.removeprefix("file:"))
    if setting == "yfinance":
        return YahooFinance()
    raise ValueError(f"unknown equity index source {setting!r}")
