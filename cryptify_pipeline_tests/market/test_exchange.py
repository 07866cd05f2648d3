"""ccxt, for real, against a local server speaking Binance's format."""

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from cryptify_pipeline.market.candles import validate_candles
from cryptify_pipeline.market.exchange import ExchangeSource, RetryableSourceError, SourceError
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline_tests.support.fake_binance import FakeBinance

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
