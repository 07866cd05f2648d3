"""A local HTTP server that speaks Yahoo Finance's chart JSON, and a ``requests`` session that
routes yfinance's requests to it, for testing yfinance's real fetching and parsing.

It serves ``/v8/finance/chart/<symbol>`` (hourly bars of the sample market's index for
``period1``/``period2``, the timezone lookup for ``range=1d``) and ``/v1/test/getcrumb``; other
paths (the cookie page) answer 404, which yfinance tolerates. The session is yfinance's own
option (``Ticker(symbol, session=...)``): its adapter sends every https request to this server
over real HTTP, keeping path and query. Faults are queued per chart request of a range: an
HTTP status with a body. Every request is logged.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import requests
from requests.adapters import HTTPAdapter

from cryptify_pipeline.market.sample import sample_equity_index
from cryptify_pipeline_tests.support.json_handler import JsonHandler


class _ToLocal(HTTPAdapter):
    def __init__(self, netloc: str):
        super().__init__()
        self.netloc = netloc

    def send(self, request, **kwargs):
        parts = urlsplit(request.url)
        request.url = urlunsplit(("http", self.netloc, parts.path, parts.query, ""))
        return super().send(request, **kwargs)


def _meta(symbol: str, granularity: str) -> dict:
    return {
        "currency": "USD", "symbol": symbol, "exchangeName": "CME", "fullExchangeName": "CME",
        "instrumentType": "FUTURE", "firstTradeDate": 969249600, "regularMarketTime": 1741384800,
        "hasPrePostMarketData": False, "gmtoffset": -18000, "timezone": "EST",
        "exchangeTimezoneName": "America/New_York", "regularMarketPrice": 5800.0,
        "chartPreviousClose": 5790.0, "priceHint": 2, "dataGranularity": granularity,
        "range": "", "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y",
                                     "ytd", "max"],
    }  # fmt: skip


class FakeYahoo:
    """Serves the sample market's index bars (traded hours only) as Yahoo does."""

    def __init__(self):
        self.faults: deque[tuple[int, object]] = deque()
        self.requests: list[tuple[str, dict]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def session(self) -> requests.Session:
        session = requests.Session()
        adapter = _ToLocal(f"127.0.0.1:{self._server.server_port}")
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def chart_requests(self) -> list[dict]:
        return [p for path, p in self.requests if path.startswith("/v8/") and "period1" in p]

    def __enter__(self) -> FakeYahoo:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _chart(self, symbol: str, params: dict) -> tuple[int, object]:
        if "period1" not in params:  # yfinance's timezone lookup
            return 200, {"chart": {"result": [{"meta": _meta(symbol, "1d"), "timestamp": [],
                         "indicators": {"quote": [{}]}}], "error": None}}  # fmt: skip
        if self.faults:
            return self.faults.popleft()
        start = datetime.fromtimestamp(int(params["period1"]), UTC)
        end = datetime.fromtimestamp(int(params["period2"]), UTC)
        bars = sample_equity_index(symbol, start, end)
        bars = bars[bars["market_open"]]
        if bars.empty:
            error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
            return 404, {"chart": {"result": None, "error": error}}

        def values(column: str) -> list:
            return [None if np.isnan(v) else float(v) for v in bars[column]]

        quote = {c: values(c) for c in ("open", "high", "low", "close")}
        quote["volume"] = [int(v) for v in bars["volume"]]
        result = {
            "meta": _meta(symbol, "1h"),
            "timestamp": [int(ts.timestamp()) for ts in bars["ts"]],
            "indicators": {"quote": [quote]},
        }
        return 200, {"chart": {"result": [result], "error": None}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                path, params = self.request_url()
                fake.requests.append((path, params))
                if path.startswith("/v8/finance/chart/"):
                    self._send(*fake._chart(path.rsplit("/", 1)[1], params))
                elif path == "/v1/test/getcrumb":
                    self._send(200, "local-crumb", kind="text/plain")
                else:
                    self._send(404, "<html>not here</html>", kind="text/html")

        return Handler
