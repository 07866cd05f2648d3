"""A local HTTP server that speaks Binance's spot REST format, for testing ccxt for real.

It serves ``/api/v3/exchangeInfo`` (which ccxt loads first) and ``/api/v3/klines`` from candles
of the sample market, rendered as Binance renders them (string prices, ms times, 12 fields).
Faults are queued per kline request: an HTTP status with body and headers, a malformed row, or
an empty page. ``delay_seconds`` slows every kline request (a slow exchange, for timeouts and
cancellation); lowering it releases requests already waiting. ``basic_auth`` (``user:password``)
makes it a proxy that answers 401 to any other credentials. Every request is logged.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline_tests.support.json_handler import JsonHandler

MAX_LIMIT = 1000
HOUR_MS = 3_600_000


def _market(symbol: str) -> dict:
    base, quote = symbol.split("/")
    return {
        "symbol": base + quote,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
             "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.0",
             "stepSize": "0.00001"},
        ],
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
    }  # fmt: skip


class FakeBinance:
    """Serves ``symbols`` with candles whose open time is in [start, until)."""

    def __init__(self, symbols: list[str], start: datetime, until: datetime):
        self.symbols = symbols
        candles = SampleMarket().fetch(symbols, start, until)
        self.klines: dict[str, list[list]] = {
            symbol.replace("/", ""): [_kline(row) for row in group.itertuples()]
            for symbol, group in candles.groupby("symbol")
        }
        self.faults: deque[tuple] = deque()
        self.requests: list[tuple[str, dict]] = []
        self.delay_seconds = 0.0
        self.basic_auth: str | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/api/v3"

    def kline_requests(self) -> list[dict]:
        return [params for path, params in self.requests if path.endswith("/klines")]

    def __enter__(self) -> FakeBinance:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _wait(self) -> None:
        arrived = time.monotonic()
        while time.monotonic() - arrived < self.delay_seconds:
            time.sleep(0.05)

    def _klines(self, params: dict) -> tuple[int, object, dict]:
        self._wait()
        fault = self.faults.popleft() if self.faults else ("none",)
        if fault[0] == "status":
            return fault[1], fault[2], fault[3] if len(fault) > 3 else {}
        if fault[0] == "empty":
            return 200, [], {}
        rows = self.klines.get(params.get("symbol", ""))
        if rows is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}, {}
        start = int(params.get("startTime", 0))
        limit = min(int(params.get("limit", 500)), MAX_LIMIT)
        page = [list(row) for row in rows if row[0] >= start][:limit]
        if fault[0] == "malformed" and page:
            page[fault[1]][2] = "not-a-price"  # ("malformed", row index in the page)
        return 200, page, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                path, params = self.request_url()
                fake.requests.append((path, params))
                if fake.basic_auth is not None and self.headers.get("Authorization") != (
                    "Basic " + base64.b64encode(fake.basic_auth.encode()).decode()
                ):
                    self._send(401, {"code": -2015, "msg": "Unauthorized."}, {})
                elif path == "/api/v3/exchangeInfo":
                    now_ms = int(datetime.now(UTC).timestamp() * 1000)
                    body = {
                        "timezone": "UTC",
                        "serverTime": now_ms,
                        "rateLimits": [],
                        "exchangeFilters": [],
                        "symbols": [_market(symbol) for symbol in fake.symbols],
                    }
                    self._send(200, body, {})
                elif path == "/api/v3/klines":
                    self._send(*fake._klines(params))
                else:
                    self._send(404, {"code": -1, "msg": f"no route {path}"}, {})

        return Handler


def _kline(row) -> list:
    open_ms = int(pd.Timestamp(row.ts).timestamp() * 1000)
    return [
        open_ms,
        f"{row.open:.8f}",
        f"{row.high:.8f}",
        f"{row.low:.8f}",
        f"{row.close:.8f}",
        f"{row.volume:.8f}",
        open_ms + HOUR_MS - 1,
        f"{row.quote_volume:.8f}",
        int(row.trades),
        f"{row.volume / 2:.8f}",
        f"{row.quote_volume / 2:.8f}",
        "0",
    ]
