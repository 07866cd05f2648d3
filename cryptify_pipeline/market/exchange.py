"""Hourly candles from an exchange through ccxt (``CRYPTIFY_SOURCE=binance`` or any ccxt id).

Ranges are paged forward with ``fetch_ohlcv(symbol, '1h', since, limit)``, one call per
``page_limit`` candles per symbol, under ccxt's rate limiter. Failures are sorted into
retryable ones (timeouts, 5xx, 429 / rate limits, ccxt ``NetworkError``), which are retried a
few times in the call with exponential backoff and jitter and then surface as
``RetryableSourceError`` for the asset's ``RetryPolicy``, and the rest (unknown symbol, auth,
malformed payload), which fail at once as ``SourceError``.

Errors never chain ccxt's: its errors, and the ``requests`` errors under them, quote the URL
they reached, password, path token and query key included. Ours carry their redacted text
instead, and name a configured URL by its scheme, host and port only.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from cryptify_pipeline.market.candles import drop_forming, empty_candles, typed_candles
from cryptify_pipeline.market.errors import RetryableSourceError, SourceError
from cryptify_pipeline.redaction import redact_url, redact_url_in, redact_urls

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
MAX_BACKOFF_SECONDS = 60.0


class ExchangeSource:
    """Closed hourly candles from one ccxt exchange."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_url: str | None = None,
        page_limit: int = 1000,
        max_attempts: int = 4,
        backoff_seconds: float = 1.0,
        timeout_ms: int = 10_000,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.name = exchange_id
        self.exchange_id = exchange_id
        self.api_url = api_url
        self.page_limit = page_limit
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.timeout_ms = timeout_ms
        self.now = now
        self._exchange: Any = None
        # what errors call the exchange: with the configured URL's scheme, host and port
        self.shown = f"{exchange_id} at {redact_url(api_url)}" if api_url else exchange_id

    @property
    def exchange(self) -> Any:
        if self._exchange is None:
            self._exchange = self._connect()
        return self._exchange

    def options(self) -> dict[str, Any]:
        # spot markets only, and no currency list (that endpoint needs an API key)
        return {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False}

    def _connect(self) -> Any:
        import ccxt  # imported here: large, and only needed for this source

        if self.exchange_id not in ccxt.exchanges:
            raise SourceError(f"{self.exchange_id!r} is not a ccxt exchange id")
        exchange = getattr(ccxt, self.exchange_id)(
            {
                "enableRateLimit": True,
                "timeout": self.timeout_ms,
                # kept so Binance's quote volume and trade count can be read off the raw rows,
                # and Retry-After off a 429
                "enableLastJsonResponse": True,
                "enableLastResponseHeaders": True,
                "options": self.options(),
            }
        )
        if self.api_url:
            api = exchange.urls["api"]
            exchange.urls["api"] = (
                {key: self.api_url for key in api} if isinstance(api, dict) else self.api_url
            )
        self._call(exchange.load_markets, what="loading markets")
        if not exchange.markets:  # ccxt takes HTML or an unexpected JSON for no markets
            raise SourceError(f"{self.shown}: loading markets: {_answer(exchange)}")
        return exchange

    def fetch(self, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        frames = [self._fetch_symbol(symbol, start, end) for symbol in symbols]
        frames = [frame for frame in frames if not frame.empty]
        return typed_candles(pd.concat(frames)) if frames else empty_candles()

    def _fetch_symbol(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        exchange = self.exchange
        if symbol not in exchange.markets:
            raise SourceError(f"{self.exchange_id} has no market {symbol}")
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        rows: list[dict] = []
        since = start_ms
        while since < end_ms:
            page, raw = self._call(
                lambda since=since: (
                    exchange.fetch_ohlcv(symbol, "1h", since=since, limit=self.page_limit),
                    exchange.last_json_response,
                ),
                what=f"fetching {symbol} candles from {describe_epoch_ms(since)}",
            )
            if raw is None:  # ccxt takes HTML for an empty page
                raise SourceError(
                    f"{self.shown}: fetching {symbol} candles from {describe_epoch_ms(since)}: "
                    f"{_answer(exchange)}"
                )
            if not page:
                break  # nothing from here on: the missing hours are recorded, not an error
            extras = _raw_extras(raw)
            rows += [
                _row(symbol, candle, extras) for candle in page if start_ms <= candle[0] < end_ms
            ]
            last = page[-1][0]
            if last < since:
                raise SourceError(
                    f"{self.exchange_id} paged backwards for {symbol} at {describe_epoch_ms(since)}"
                )
            since = last + HOUR_MS
        if not rows:
            return empty_candles()
        return drop_forming(typed_candles(pd.DataFrame(rows)), self.now())

    def _call(self, request: Callable[[], Any], what: str) -> Any:
        import ccxt

        for attempt in range(1, self.max_attempts + 1):
            try:
                return request()
            except ccxt.NetworkError as error:  # timeouts, 5xx, 429, DDoS protection
                if attempt == self.max_attempts:
                    failure: SourceError = RetryableSourceError(
                        f"{self.shown}: {what}: still failing after {attempt} attempts: "
                        f"{type(error).__name__}: {self._short(error)}"
                    )
                    break
                delay = self._backoff(attempt, error)
                log.warning(
                    "%s: %s: %s (attempt %d of %d); retrying in %.1f s",
                    self.shown, what, type(error).__name__, attempt, self.max_attempts, delay,
                )  # fmt: skip
                time.sleep(delay)
            except ccxt.BaseError as error:  # bad symbol, auth, malformed response: final
                failure = SourceError(f"{self.shown}: {what}: {self._short(error)}")
                break
        else:
            raise AssertionError("unreachable")
        # raised here, outside the except clauses: ccxt's error is neither its cause nor its
        # context, so no traceback, log or stored event carries the URL it quotes
        raise failure

    def _short(self, error: Exception, limit: int = 300) -> str:
        """The redacted text of ``error`` (ccxt quotes the URL it failed to reach)."""
        text = redact_url_in(str(error), self.api_url) if self.api_url else redact_urls(str(error))
        return text if len(text) <= limit else text[:limit] + "..."

    def _backoff(self, attempt: int, error: Exception) -> float:
        import ccxt

        delay = self.backoff_seconds * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
        if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            headers = getattr(self._exchange, "last_response_headers", None) or {}
            retry_after = {k.lower(): v for k, v in headers.items()}.get("retry-after")
            if retry_after and retry_after.strip().isdigit():
                delay = max(delay, float(retry_after))
        return min(delay, MAX_BACKOFF_SECONDS)


def _row(symbol: str, candle: list, extras: dict[int, tuple[float | None, int | None]]) -> dict:
    ts, open_, high, low, close, volume = candle[:6]
    if None in (ts, open_, high, low, close, volume):
        raise SourceError(f"malformed candle for {symbol} at {describe_epoch_ms(ts)}: {candle!r}")
    quote_volume, trades = extras.get(ts, (None, None))
    return {
        "ts": pd.Timestamp(ts, unit="ms", tz="UTC"),
        "symbol": symbol,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "quote_volume": quote_volume,
        "trades": trades,
    }


def _raw_extras(raw: Any) -> dict[int, tuple[float | None, int | None]]:
    """Quote volume and trade count by open time, from Binance-style raw kline rows."""
    extras: dict[int, tuple[float | None, int | None]] = {}
    if not isinstance(raw, list):
        return extras
    for row in raw:
        if isinstance(row, list) and len(row) >= 9:
            try:
                extras[int(row[0])] = (float(row[7]), int(row[8]))
            except (TypeError, ValueError):
                continue  # a malformed raw row: the parsed candle decides whether it is usable
    return extras


def describe_epoch_ms(ms: Any) -> str:
    try:
        return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return repr(ms)


def _answer(exchange: Any) -> str:
    """What the exchange answered instead of what ccxt expected."""
    if exchange.last_json_response is None:
        headers = {k.lower(): v for k, v in (exchange.last_response_headers or {}).items()}
        return f"answered with non-JSON ({headers.get('content-type') or 'no content type'})"
    return f"answered with JSON ccxt could not read as {exchange.id}'s"
