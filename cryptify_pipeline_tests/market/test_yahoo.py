"""yfinance's real fetching and parsing against a local server speaking Yahoo's chart JSON,
reached through yfinance's own session option (no patching)."""

from datetime import UTC, datetime

import pytest

yfinance = pytest.importorskip("yfinance")

from cryptify_pipeline.market.context import validate_context  # noqa: E402
from cryptify_pipeline.market.errors import RetryableSourceError  # noqa: E402
from cryptify_pipeline.market.sample import sample_equity_index  # noqa: E402
from cryptify_pipeline.market.yahoo import YahooFinance  # noqa: E402
from cryptify_pipeline_tests.support.fake_yahoo import FakeYahoo  # noqa: E402


@pytest.fixture
def yahoo(tmp_path):
    yfinance.set_tz_cache_location(str(tmp_path / "yf-cache"))
    with FakeYahoo() as fake:
        yield fake


def test_bars_parsed_and_shut_hours_completed(yahoo):
    # Friday evening to Monday morning: trading stops at 22:00 UTC (16:00 Chicago, CST) and
    # resumes Sunday 22:00 UTC (17:00 Chicago: daylight saving began that morning)
    start, end = datetime(2025, 3, 7, 18, tzinfo=UTC), datetime(2025, 3, 10, 3, tzinfo=UTC)
    frame = YahooFinance(session=yahoo.session()).fetch(["ES=F"], start, end)
    validate_context(frame, "equity_index", start, end)
    expected = sample_equity_index("ES=F", start, end)
    assert frame["ts"].tolist() == expected["ts"].tolist()
    assert frame["market_open"].tolist() == expected["market_open"].tolist()
    traded = frame[frame["market_open"]]
    assert len(traded) == 4 + 5  # Friday 18:00-21:00, Sunday 22:00 to Monday 02:00
    assert traded["close"].round(6).tolist() == expected.dropna()["close"].round(6).tolist()
    assert (frame["source"] == "yfinance").all()
    [request] = yahoo.chart_requests()
    assert request["interval"] == "1h"
    assert int(request["period1"]) == int(start.timestamp())


def test_a_weekend_without_bars_is_all_shut(yahoo):
    start, end = datetime(2025, 3, 8, 6, tzinfo=UTC), datetime(2025, 3, 8, 12, tzinfo=UTC)
    frame = YahooFinance(session=yahoo.session()).fetch(["ES=F"], start, end)
    assert len(frame) == 6 and not frame["market_open"].any()


@pytest.mark.parametrize(
    ("fault", "day"), [((429, "Too Many Requests"), 1), ((502, "<html>Bad Gateway</html>"), 2)]
)
def test_rate_limits_and_server_errors_are_retryable(yahoo, fault, day):
    # a day of its own each: yfinance caches the answers for past ranges in the process
    start, end = datetime(2025, 4, day, 14, tzinfo=UTC), datetime(2025, 4, day, 16, tzinfo=UTC)
    yahoo.faults.extend([fault] * 2)  # yfinance retries once with its other cookie strategy
    with pytest.raises(RetryableSourceError, match="ES=F") as raised:
        YahooFinance(session=yahoo.session()).fetch(["ES=F"], start, end)
    assert len(yahoo.chart_requests()) == 2
    # the library's error (it quotes the URL it reached) is not chained to ours
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    if fault[0] == 429:  # yfinance keeps other answers for past ranges: see docs/forecasting.md
        frame = YahooFinance(session=yahoo.session()).fetch(["ES=F"], start, end)
        assert frame["market_open"].all() and len(frame) == 2
