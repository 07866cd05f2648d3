"""A local HTTP server that speaks Bybit's v5 REST format for linear perpetuals, for testing
ccxt's bybit for real.

It serves ``/v5/market/instruments-info`` (which ccxt loads first), ``/v5/market/open-interest``
(newest first, ``intervalTime=1h``, ``startTime``/``endTime``/``limit`` and cursor paging as
Bybit pages) and ``/v5/market/funding/history``, from the sample market's context. Faults are
queued per data request: an HTTP status with body, or an empty page. Every request is logged.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd

from cryptify_pipeline.market.sample import SampleContext
from cryptify_pipeline_tests.support.json_handler import JsonHandler

OI_MAX_LIMIT = 200
FUNDING_MAX_LIMIT = 200


def _instrument(symbol: str) -> dict:
    base, quote = symbol.split("/")
    return {
        "symbol": base + quote, "contractType": "LinearPerpetual", "status": "Trading",
        "baseCoin": base, "quoteCoin": quote, "launchTime": "1585526400000",
        "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": "2",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
        "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                          "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "119.000",
                          "minNotionalValue": "5"},
        "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": quote,
        "copyTrading": "both", "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375",
        "isPreListing": False, "preListingInfo": None,
    }  # fmt: skip


def _ok(result: dict) -> dict:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms}


def _ms(ts) -> int:
    return int(pd.Timestamp(ts).timestamp() * 1000)


class FakeBybit:
    """Serves linear perpetuals of ``symbols`` with open interest and funding in [start, until)."""

    def __init__(self, symbols: list[str], start: datetime, until: datetime):
        self.symbols = symbols
        context = SampleContext()
        oi = context.fetch_open_interest(symbols, start, until)
        funding = context.fetch_funding_rates(symbols, start, until)
        self.open_interest = {
            symbol.replace("/", ""): [
                {"openInterest": f"{row.open_interest:.3f}", "timestamp": str(_ms(row.ts))}
                for row in group.itertuples()
            ]
            for symbol, group in oi.groupby("symbol")
        }
        self.funding = {
            symbol.replace("/", ""): [
                {
                    "symbol": symbol.replace("/", ""),
                    "fundingRate": f"{row.funding_rate:.8f}",
                    "fundingRateTimestamp": str(_ms(row.ts)),
                }
                for row in group.itertuples()
            ]  # fmt: skip
            for symbol, group in funding.groupby("symbol")
        }
        self.faults: deque[tuple] = deque()
        self.requests: list[tuple[str, dict]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def data_requests(self, path: str) -> list[dict]:
        return [params for seen, params in self.requests if seen == path]

    def __enter__(self) -> FakeBybit:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _instruments(self, params: dict) -> tuple[int, dict]:
        listed = params.get("category") == "linear" and params.get("status") != "PreLaunch"
        instruments = [_instrument(symbol) for symbol in self.symbols] if listed else []
        return 200, _ok(
            {"category": params.get("category"), "list": instruments, "nextPageCursor": ""}
        )

    def _fault(self) -> tuple[int, object] | None:
        fault = self.faults.popleft() if self.faults else ("none",)
        if fault[0] == "status":
            return fault[1], fault[2]
        if fault[0] == "empty":
            return 200, _ok({"category": "linear", "list": [], "nextPageCursor": ""})
        return None

    def _open_interest(self, params: dict) -> tuple[int, object]:
        if (fault := self._fault()) is not None:
            return fault
        if params.get("intervalTime") != "1h":
            return 200, {"retCode": 10001, "retMsg": "invalid intervalTime", "result": {}}
        rows = self.open_interest.get(params.get("symbol", ""))
        if rows is None:
            return 200, {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}}
        page, cursor = self._page(rows, params, "timestamp", OI_MAX_LIMIT, 50)
        result = {"symbol": params["symbol"], "category": "linear", "list": page,
                  "nextPageCursor": cursor}  # fmt: skip
        return 200, _ok(result)

    def _funding(self, params: dict) -> tuple[int, object]:
        if (fault := self._fault()) is not None:
            return fault
        rows = self.funding.get(params.get("symbol", ""))
        if rows is None:
            return 200, {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}}
        page, _ = self._page(rows, params, "fundingRateTimestamp", FUNDING_MAX_LIMIT, 200)
        return 200, _ok({"category": "linear", "list": page})

    @staticmethod
    def _page(
        rows: list[dict], params: dict, stamp: str, max_limit: int, default: int
    ) -> tuple[list[dict], str]:
        """Bybit's paging: rows in [startTime, endTime], newest first, ``limit`` at a time from
        the offset the cursor names."""
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        limit = min(int(params.get("limit", default)), max_limit)
        chosen = [row for row in reversed(rows) if start <= int(row[stamp]) <= end]
        offset = int(params.get("cursor") or 0)
        page = chosen[offset : offset + limit]
        more = offset + limit < len(chosen)
        return page, str(offset + limit) if more else ""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self
        routes = {
            "/v5/market/instruments-info": fake._instruments,
            "/v5/market/open-interest": fake._open_interest,
            "/v5/market/funding/history": fake._funding,
        }

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                path, params = self.request_url()
                fake.requests.append((path, params))
                route = routes.get(path)
                if route is None:
                    self._send(404, {"retCode": 10404, "retMsg": f"no route {path}"})
                else:
                    self._send(*route(params))

        return Handler
