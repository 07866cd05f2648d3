"""Open interest and funding through ccxt's real bybit client against a local server speaking
Bybit's v5 JSON: paging, empty pages, 429 and 5xx then recovery, a symbol without a perpetual."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from cryptify_pipeline.market.context import validate_context
from cryptify_pipeline.market.errors import RetryableSourceError, SourceError
from cryptify_pipeline.market.perpetuals import PerpetualSource
from cryptify_pipeline.market.sample import SampleContext
from cryptify_pipeline_tests.support.fake_bybit import FakeBybit

START, UNTIL = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 21, tzinfo=UTC)
OI_PATH, FUNDING_PATH = "/v5/market/open-interest", "/v5/market/funding/history"


@pytest.fixture
def bybit():
    with FakeBybit(["BTC/USDT"], START, UNTIL) as fake:
        yield fake


def source(fake: FakeBybit, **options) -> PerpetualSource:
    return PerpetualSource("bybit", api_url=fake.api_url, backoff_seconds=0.01, **options)


def test_open_interest_and_funding_over_several_pages(bybit):
    start, end = datetime(2025, 3, 2, tzinfo=UTC), datetime(2025, 3, 19, 5, tzinfo=UTC)
    found = source(bybit, page_hours=100).fetch_open_interest(["BTC/USDT"], start, end)
    expected = SampleContext().fetch_open_interest(["BTC/USDT"], start, end)
    assert len(found) == len(expected) == 17 * 24 + 5
    assert (found["source"] == "bybit").all() and found["open_interest_usd"].isna().all()
    pd.testing.assert_series_equal(
        found["open_interest"], expected["open_interest"].round(3), check_exact=False, rtol=1e-12
    )
    pd.testing.assert_series_equal(found["ts"], expected["ts"])
    validate_context(found, "open_interest", start, end)
    requests = bybit.data_requests(OI_PATH)
    assert len(requests) == 5 and {r["intervalTime"] for r in requests} == {"1h"}
    assert [int(r["startTime"]) for r in requests] == sorted(int(r["startTime"]) for r in requests)

    funding = source(bybit, page_hours=100).fetch_funding_rates(["BTC/USDT"], start, end)
    expected = SampleContext().fetch_funding_rates(["BTC/USDT"], start, end)
    assert funding["ts"].tolist() == expected["ts"].tolist() and len(funding) == 17 * 3 + 1
    assert funding["funding_rate"].round(8).tolist() == expected["funding_rate"].round(8).tolist()


def test_an_empty_page_is_a_gap_not_the_end(bybit):
    start, end = datetime(2025, 3, 2, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC)
    bybit.faults.append(("empty",))
    found = source(bybit, page_hours=24).fetch_open_interest(["BTC/USDT"], start, end)
    assert len(found) == 24 and found["ts"].min() == pd.Timestamp("2025-03-03", tz="UTC")


def test_rate_limits_and_server_errors_are_retried_then_recover(bybit):
    start, end = datetime(2025, 3, 2, tzinfo=UTC), datetime(2025, 3, 3, tzinfo=UTC)
    bybit.faults.extend([
        ("status", 429, {"retCode": 10006, "retMsg": "Too many visits!"}),
        ("status", 502, "<html>Bad Gateway</html>"),
    ])  # fmt: skip
    found = source(bybit).fetch_open_interest(["BTC/USDT"], start, end)
    assert len(found) == 24 and len(bybit.data_requests(OI_PATH)) == 3
    bybit.faults.extend([("status", 503, "unavailable")] * 3)
    with pytest.raises(RetryableSourceError, match="still failing after 3 attempts"):
        source(bybit, max_attempts=3).fetch_funding_rates(["BTC/USDT"], start, end)


def test_a_symbol_without_a_perpetual_is_named(bybit):
    start, end = datetime(2025, 3, 2, tzinfo=UTC), datetime(2025, 3, 3, tzinfo=UTC)
    with pytest.raises(SourceError, match="bybit has no perpetual swap ETH/USDT:USDT for ETH/USDT"):
        source(bybit).fetch_open_interest(["BTC/USDT", "ETH/USDT"], start, end)
