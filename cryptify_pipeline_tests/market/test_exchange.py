"""ccxt, for real, against a local server speaking Binance's format."""

import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer

import pandas as pd
import pytest

from cryptify_pipeline.market.candles import validate_candles
from cryptify_pipeline.market.exchange import ExchangeSource, RetryableSourceError, SourceError
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline_tests.support.fake_binance import FakeBinance
from cryptify_pipeline_tests.support.json_handler import JsonHandler

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def binance():
    with FakeBinance(SYMBOLS, START, START + timedelta(hours=3000)) as server:
        yield server


def source(server: FakeBinance, **options) -> ExchangeSource:
    return ExchangeSource("binance", api_url=server.api_url, **options)


def test_pages_forward_one_call_per_thousand_candles(binance):
    end = START + timedelta(hours=2500)
    frame = source(binance).fetch(SYMBOLS, START, end)
    assert len(frame) == 2 * 2500
    validate_candles(frame, SYMBOLS, START, end)
    requests = binance.kline_requests()
    assert [(r["symbol"], r["limit"]) for r in requests] == [("BTCUSDT", "1000")] * 3 + [
        ("ETHUSDT", "1000")
    ] * 3
    assert [int(r["startTime"]) for r in requests[:3]] == [
        int((START + timedelta(hours=h)).timestamp() * 1000) for h in (0, 1000, 2000)
    ]
    expected = SampleMarket().fetch(SYMBOLS, START, end)
    pd.testing.assert_series_equal(frame["close"], expected["close"], rtol=1e-8)
    # Binance's quote volume and trade count come through from the raw rows
    assert frame["trades"].tolist() == expected["trades"].tolist()
    pd.testing.assert_series_equal(frame["quote_volume"], expected["quote_volume"], rtol=1e-8)


def test_rate_limit_429_is_retried_after_retry_after(binance):
    binance.faults.append(("status", 429, {"code": -1003, "msg": "Too many requests"},
                           {"Retry-After": "1"}))  # fmt: skip
    exchange = source(binance, backoff_seconds=0.01)
    started = time.monotonic()
    frame = exchange.fetch(["BTC/USDT"], START, START + timedelta(hours=5))
    assert len(frame) == 5
    assert len(binance.kline_requests()) == 2
    assert time.monotonic() - started >= 1.0  # waited as long as the exchange asked


def test_short_5xx_storm_is_ridden_out(binance):
    binance.faults.extend([("status", 503, "<html>Service Unavailable</html>")] * 2)
    frame = source(binance, backoff_seconds=0.01).fetch(
        ["ETH/USDT"], START, START + timedelta(hours=3)
    )
    assert len(frame) == 3
    assert len(binance.kline_requests()) == 3


def test_long_5xx_storm_becomes_a_retryable_error(binance):
    binance.faults.extend([("status", 502, "<html>Bad Gateway</html>")] * 10)
    with pytest.raises(RetryableSourceError, match="still failing after 3 attempts") as raised:
        source(binance, max_attempts=3, backoff_seconds=0.01).fetch(
            ["BTC/USDT"], START, START + timedelta(hours=3)
        )
    assert "ExchangeNotAvailable" in str(raised.value)
    assert len(binance.kline_requests()) == 3


def test_malformed_row_is_not_retried(binance):
    binance.faults.append(("malformed", 3))
    with pytest.raises(
        SourceError, match="malformed candle for BTC/USDT at 2024-01-01 03:00"
    ) as raised:
        source(binance).fetch(["BTC/USDT"], START, START + timedelta(hours=10))
    assert not isinstance(raised.value, RetryableSourceError)
    assert len(binance.kline_requests()) == 1


def test_unknown_symbol_is_not_retried(binance):
    with pytest.raises(SourceError, match="no market DOGE/USDT") as raised:
        source(binance).fetch(["DOGE/USDT"], START, START + timedelta(hours=3))
    assert not isinstance(raised.value, RetryableSourceError)
    assert binance.kline_requests() == []


def test_errors_never_quote_the_exchange_urls_credentials(binance):
    # ccxt names the URL of a failed request: here with a user and password in it
    api_url = binance.api_url.replace("http://", "http://trader:s3cret@")
    binance.faults.append(("status", 503, "down"))
    with pytest.raises(RetryableSourceError) as raised:
        ExchangeSource("binance", api_url=api_url, max_attempts=1).fetch(
            ["BTC/USDT"], START, START + timedelta(hours=3)
        )
    message = str(raised.value)
    assert "127.0.0.1" in message  # the URL is named, without what it must not show
    assert "s3cret" not in message and "trader" not in message
    # nor is ccxt's error (nor requests' under it, which quote the URL) chained to ours
    assert raised.value.__cause__ is None and raised.value.__context__ is None


@pytest.mark.parametrize("refused", [False, True])
def test_errors_never_quote_a_token_in_the_exchange_urls_path(binance, refused):
    # a token in the path: the fake answers 404 to it, a closed port refuses it
    api_url = "http://127.0.0.1:9/api/P4THTOKEN" if refused else binance.api_url + "/P4THTOKEN"
    with pytest.raises(SourceError) as raised:
        ExchangeSource("binance", api_url=api_url, max_attempts=1).fetch(
            ["BTC/USDT"], START, START + timedelta(hours=3)
        )
    message = str(raised.value)
    host = api_url.split("/api/")[0]
    assert message.startswith(f"binance at {host}/…: loading markets: ")
    assert "P4THTOKEN" not in message  # nor where the fake's 404 echoes the path it was asked


class AnswersEverything(JsonHandler):
    """A server at the exchange URL that answers every request with ``answer``."""

    answer = ("", "")

    def do_GET(self) -> None:
        self._send(200, self.answer[0], kind=self.answer[1])


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (("<html><body>Sign in</body></html>", "text/html; charset=utf-8"),
         "answered with non-JSON (text/html; charset=utf-8)"),
        (('{"symbols": [', "application/json"), "answered with non-JSON (application/json)"),
        (('{"symbols": 5}', "application/json"),
         "answered with JSON ccxt could not read as binance's"),
    ],
)  # fmt: skip
def test_a_server_answering_no_markets_is_named_with_what_it_answered(answer, said):
    handler = type("Handler", (AnswersEverything,), {"answer": answer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(SourceError) as raised:
            ExchangeSource(
                "binance", api_url=f"http://127.0.0.1:{server.server_port}/api/v3"
            ).fetch(["BTC/USDT"], START, START + timedelta(hours=3))
    finally:
        server.shutdown()
        server.server_close()
    assert str(raised.value) == (
        f"binance at http://127.0.0.1:{server.server_port}/…: loading markets: {said}"
    )


def test_a_page_of_non_json_is_an_error_not_an_empty_page(binance):
    binance.faults.append(("status", 200, "<html>maintenance</html>"))
    with pytest.raises(SourceError, match="BTC/USDT candles from 2024-01-01 00:00: answered "
                       r"with non-JSON \(application/json\)"):  # fmt: skip
        source(binance).fetch(["BTC/USDT"], START, START + timedelta(hours=3))


def test_empty_page_means_no_candles_not_an_error(binance):
    binance.faults.append(("empty",))
    frame = source(binance).fetch(["BTC/USDT"], START, START + timedelta(hours=3))
    assert frame.empty


def test_still_open_candle_is_dropped():
    now = datetime.now(UTC)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    with FakeBinance(
        ["BTC/USDT"], this_hour - timedelta(hours=3), this_hour + timedelta(hours=1)
    ) as server:
        frame = source(server).fetch(
            ["BTC/USDT"], this_hour - timedelta(hours=3), this_hour + timedelta(hours=1)
        )
        served = len(server.klines["BTCUSDT"])
    assert served == 4  # the exchange served the forming candle ...
    assert frame["ts"].tolist() == [  # ... and only the closed ones were kept
        pd.Timestamp(this_hour - timedelta(hours=h)) for h in (3, 2, 1)
    ]


def test_unknown_exchange_id_is_named():
    with pytest.raises(SourceError, match="'notanexchange' is not a ccxt exchange id"):
        ExchangeSource("notanexchange").fetch(["BTC/USDT"], START, START + timedelta(hours=1))
