"""Open interest and funding rates of perpetual swaps through ccxt (``CRYPTIFY_CONTEXT_SOURCE=
bybit`` or any ccxt exchange that has ``fetchOpenInterestHistory`` and
``fetchFundingRateHistory``).

The spot pair ``BTC/USDT`` is read from its linear perpetual ``BTC/USDT:USDT``. Ranges are paged
forward in windows of ``page_hours`` hours, each one unified call with ``since`` and ``until``
(Bybit's open-interest endpoint walks backwards from its end time by cursor; a window of at
most its page size needs no cursor). Connection, rate limiting and the sorting of failures into
retryable and final ones are the candle source's (``exchange.ExchangeSource``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from cryptify_pipeline.market.context import (
    empty_funding_rates,
    empty_open_interest,
    perpetual_of,
    typed_funding_rates,
    typed_open_interest,
)
from cryptify_pipeline.market.errors import SourceError
from cryptify_pipeline.market.exchange import HOUR_MS, ExchangeSource, describe_epoch_ms

PAGE_HOURS = 200  # Bybit's largest open-interest page


class PerpetualSource(ExchangeSource):
    """The perpetual swaps of one ccxt exchange."""

    def __init__(self, exchange_id: str, *, page_hours: int = PAGE_HOURS, **kwargs: Any):
        super().__init__(exchange_id, **kwargs)
        self.page_hours = page_hours

    def options(self) -> dict[str, Any]:
        # swaps settled in the quote currency only (the ones BTC/USDT:USDT names)
        return {"fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": False}

    def fetch_open_interest(
        self, symbols: Sequence[str], start: datetime, end: datetime
    ) -> pd.DataFrame:
        rows = [
            {
                "symbol": symbol,
                "ts": pd.Timestamp(item["timestamp"], unit="ms", tz="UTC"),
                "open_interest": _number(item, "openInterestAmount", symbol),
                "open_interest_usd": item.get("openInterestValue"),
            }
            for symbol in symbols
            for item in self._paged(
                symbol, start, end, "open interest",
                lambda perpetual, since, until: self.exchange.fetch_open_interest_history(
                    perpetual, "1h", since=since, limit=self.page_hours, params={"until": until}
                ),
            )
        ]  # fmt: skip
        if not rows:
            return empty_open_interest()
        frame = pd.DataFrame(rows).assign(source=self.name)
        return typed_open_interest(frame.drop_duplicates(["symbol", "ts"], keep="last"))

    def fetch_funding_rates(
        self, symbols: Sequence[str], start: datetime, end: datetime
    ) -> pd.DataFrame:
        rows = [
            {
                "symbol": symbol,
                "ts": pd.Timestamp(item["timestamp"], unit="ms", tz="UTC"),
                "funding_rate": _number(item, "fundingRate", symbol),
            }
            for symbol in symbols
            for item in self._paged(
                symbol, start, end, "funding rates",
                lambda perpetual, since, until: self.exchange.fetch_funding_rate_history(
                    perpetual, since=since, limit=self.page_hours, params={"until": until}
                ),
            )
        ]  # fmt: skip
        if not rows:
            return empty_funding_rates()
        frame = pd.DataFrame(rows).assign(source=self.name)
        return typed_funding_rates(frame.drop_duplicates(["symbol", "ts"], keep="last"))

    def _paged(
        self,
        symbol: str,
        start: datetime,
        end: datetime,
        what: str,
        request: Callable[[str, int, int], list[dict]],
    ) -> list[dict]:
        """Every item with a timestamp in [start, end), window by window; an empty window is
        a gap in the exchange's history, not the end of it."""
        perpetual = self._perpetual(symbol)
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        found: list[dict] = []
        since = start_ms
        while since < end_ms:
            until = min(since + self.page_hours * HOUR_MS, end_ms)
            page = self._call(
                lambda since=since, until=until: request(perpetual, since, until - 1),
                what=f"fetching {perpetual} {what} from {describe_epoch_ms(since)}",
            )
            for item in page or []:
                stamp = item.get("timestamp")
                if not isinstance(stamp, int | float):
                    raise SourceError(f"{self.exchange_id}: {what} of {perpetual} without a time")
                if start_ms <= stamp < end_ms:
                    found.append(item)
            since = until
        return found

    def _perpetual(self, symbol: str) -> str:
        perpetual = perpetual_of(symbol)
        market = self.exchange.markets.get(perpetual)
        if market is None or not market.get("swap"):
            raise SourceError(
                f"{self.exchange_id} has no perpetual swap {perpetual} for {symbol}: no open "
                "interest or funding for it (set CRYPTIFY_CONTEXT_SOURCE=none or drop the symbol)"
            )
        return perpetual


def _number(item: dict, field: str, symbol: str) -> float:
    value = item.get(field)
    if value is None:
        raise SourceError(
            f"{symbol}: {field} missing at {describe_epoch_ms(item.get('timestamp'))}: {item!r}"
        )
    return float(value)
