"""Equity-index bars from Yahoo Finance through yfinance (``CRYPTIFY_EQUITY_INDEX_SOURCE=
yfinance``, the old system's source; ``pip install '.[yfinance]'``).

``Ticker(symbol).history(start, end, interval='1h')`` returns the traded hours; the hours
between them where CME's equity futures are shut (holidays included) become
``market_open = false`` rows (``context.shut_hours``). Yahoo keeps hourly bars for about the
last 730 days. ``session`` is yfinance's own option (a ``requests`` or ``curl_cffi`` session);
the tests pass one that routes to a local server speaking Yahoo's chart JSON.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from cryptify_pipeline.market.context import shut_hours
from cryptify_pipeline.market.errors import RetryableSourceError, SourceError
from cryptify_pipeline.redaction import redact_urls


class YahooFinance:
    """Hourly bars of index futures from Yahoo Finance."""

    name = "yfinance"

    def __init__(self, session: Any = None, timeout_seconds: float = 30.0):
        self.session = session
        self.timeout_seconds = timeout_seconds

    def fetch(self, index_symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        bars = [self._bars(index_symbol, start, end) for index_symbol in index_symbols]
        frame = pd.concat(bars) if bars else pd.DataFrame()
        return shut_hours(frame, index_symbols, start, end, self.name)

    def _bars(self, index_symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        try:
            import yfinance
        except ImportError as error:
            raise SourceError(
                "CRYPTIFY_EQUITY_INDEX_SOURCE=yfinance needs the optional extra: "
                "pip install 'cryptify-pipeline[yfinance]'"
            ) from error
        import requests

        # our errors carry yfinance's reason; its own log of them would say it twice
        logging.getLogger("yfinance").setLevel(logging.CRITICAL)
        failure: SourceError | None = None
        try:
            with warnings.catch_warnings():  # raise_errors is deprecated for a global switch
                warnings.simplefilter("ignore", DeprecationWarning)
                # prepost: futures trade outside the cash session; every traded hour counts
                history = yfinance.Ticker(index_symbol, session=self.session).history(
                    start=start, end=end, interval="1h", prepost=True, auto_adjust=False,
                    actions=False, raise_errors=True, timeout=self.timeout_seconds,
                )  # fmt: skip
        except yfinance.exceptions.YFRateLimitError:
            failure = RetryableSourceError(f"yfinance: {index_symbol}: rate limited")
        except (requests.RequestException, OSError) as error:  # curl_cffi's are OSErrors too
            failure = RetryableSourceError(f"yfinance: {index_symbol}: {_short(error)}")
        except yfinance.exceptions.YFPricesMissingError:
            return pd.DataFrame()  # no bars in the range: a holiday, or all shut hours
        except yfinance.exceptions.YFException as error:
            failure = SourceError(f"yfinance: {index_symbol}: {_short(error)}")
        if failure is not None:
            # raised outside the except clauses: the library's error, which may quote the URL
            # it reached (a proxy's password with it), is neither its cause nor its context
            raise failure
        if history.empty:
            return pd.DataFrame()
        ts = pd.DatetimeIndex(history.index).tz_convert("UTC")
        frame = pd.DataFrame(
            {
                "ts": ts,
                "open": history["Open"].to_numpy(),
                "high": history["High"].to_numpy(),
                "low": history["Low"].to_numpy(),
                "close": history["Close"].to_numpy(),
                "volume": history["Volume"].to_numpy(dtype="float64"),
            }
        )
        # Yahoo labels the last, still forming bar with the current minute: whole hours only
        frame = frame[(frame["ts"] == frame["ts"].dt.floor("h")) & frame["close"].notna()]
        frame = frame[(frame["ts"] >= start) & (frame["ts"] < end)]
        return frame.assign(index_symbol=index_symbol, market_open=True, source=self.name)


def _short(error: Exception, limit: int = 300) -> str:
    text = redact_urls(str(error))
    return text if len(text) <= limit else text[:limit] + "..."
