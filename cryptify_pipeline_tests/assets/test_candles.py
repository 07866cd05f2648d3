"""The candles asset through real Dagster runs on Postgres, with each source."""

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from dagster import DagsterEventType, materialize

from cryptify_pipeline.assets.candle_checks import price_jumps
from cryptify_pipeline.hours import last_closed_hour
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.resources import MarketData
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.dumps import binance_dump
from cryptify_pipeline_tests.support.fake_binance import FakeBinance
from cryptify_pipeline_tests.support.pipeline import SYMBOLS, range_tags

CANDLES = pipeline.assets()["candles"]
CHECKS = pipeline.checks()


def collect(instance, schema, market: MarketData, *, with_checks=False, **run):
    return materialize(
        [CANDLES, *(CHECKS if with_checks else [])],
        instance=instance,
        resources=pipeline.resources(schema, market),
        raise_on_error=False,
        **run,
    )


def stored(schema: str) -> pd.DataFrame:
    rows = run_sql(
        f'SELECT ts, symbol, close, source, ingested_at FROM "{schema}".candles ORDER BY symbol, ts'
    )
    return pd.DataFrame(rows, columns=["ts", "symbol", "close", "source", "ingested_at"])


def sample() -> MarketData:
    return MarketData(source="sample", symbols=SYMBOLS)


def test_sample_partition_is_written_labelled_and_idempotent(instance, schema):
    first = collect(instance, schema, sample(), partition_key="2025-03-01-13:00")
    assert first.success
    before = stored(schema)
    assert before["symbol"].tolist() == SYMBOLS
    assert (before["ts"] == pd.Timestamp("2025-03-01 13:00", tz="UTC")).all()
    assert (before["source"] == "sample").all()
    expected = SampleMarket().fetch(SYMBOLS, datetime(2025, 3, 1, 13, tzinfo=UTC),
                                    datetime(2025, 3, 1, 14, tzinfo=UTC))  # fmt: skip
    assert before["close"].tolist() == expected["close"].tolist()
    metadata = first.asset_materializations_for_node("candles")[0].metadata
    assert metadata["source"].value == "sample (synthetic market, not real prices)"
    assert metadata["missing_candles"].value == 0
    assert "| ts" in metadata["preview"].value

    assert collect(instance, schema, sample(), partition_key="2025-03-01-13:00").success
    after = stored(schema)
    assert len(after) == 2 and after["close"].tolist() == before["close"].tolist()
    assert (after["ingested_at"] > before["ingested_at"]).all()  # replaced, not duplicated


def test_single_run_backfill_and_checks(instance, schema):
    result = collect(
        instance, schema, sample(), with_checks=True,
        tags=range_tags("2025-03-01-00:00", "2025-03-02-23:00"),
    )  # fmt: skip
    assert result.success
    assert len(stored(schema)) == 2 * 48
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    complete = evaluations["candles_complete"]
    assert complete.metadata["this_run_missing_count"].value == 0
    # the last days were not collected: that is reported, as a warning
    assert complete.metadata["last_days_missing_count"].value > 0 and not complete.passed
    assert not evaluations["candles_fresh"].passed
    assert evaluations["candles_price_jumps"].passed


def test_fresh_and_complete_when_the_latest_hours_are_in(instance, schema):
    now = datetime.now(UTC)
    newest = last_closed_hour(now)
    first = newest - timedelta(days=7)
    result = collect(
        instance, schema, sample(), with_checks=True,
        tags=range_tags(f"{first:%Y-%m-%d-%H:%M}", f"{newest:%Y-%m-%d-%H:%M}"),
    )  # fmt: skip
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    if now - now.replace(minute=0, second=0, microsecond=0) > timedelta(seconds=5):
        assert evaluations["candles_fresh"].passed
        assert evaluations["candles_complete"].passed, evaluations["candles_complete"].metadata


def test_price_jump_is_reported_with_its_rows(database_url, schema):
    hours = pd.date_range("2025-05-01", periods=4, freq="h", tz="UTC")
    frame = pd.DataFrame({"symbol": "BTC/USDT", "ts": hours, "close": [100.0, 101.0, 150.0, 150.5]})
    jumps = price_jumps(frame, bound=0.2, since=hours[0].to_pydatetime())
    assert jumps["ts"].tolist() == [hours[2]]
    assert jumps["log_return"].tolist() == [pytest.approx(math.log(150 / 101))]


def test_file_source_backfill(instance, schema, tmp_path):
    text, expected = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    (tmp_path / "BTCUSDT-1h-2025-02.csv").write_text(text)
    market = MarketData(source=f"file:{tmp_path}", symbols=["BTC/USDT"])
    result = collect(
        instance, schema, market, tags=range_tags("2025-02-03-00:00", "2025-02-03-05:00")
    )
    assert result.success
    rows = stored(schema)
    assert rows["close"].tolist() == expected["close"].iloc[48:54].tolist()
    assert (rows["source"] == f"file:{tmp_path}").all()


def test_invalid_candle_fails_the_run_and_writes_nothing(instance, schema, tmp_path):
    assert collect(instance, schema, MarketData(source="sample", symbols=["BTC/USDT"]),
                   partition_key="2025-02-03-01:00").success  # fmt: skip
    before = stored(schema)
    (tmp_path / "BTCUSDT.csv").write_text(
        "timestamp,open,high,low,close,volume\n"
        "2025-02-03T00:00Z,100,101,99,100.5,10\n"
        "2025-02-03T01:00Z,100,99,98,100.5,10\n"  # high below the close
    )
    market = MarketData(source=f"file:{tmp_path}", symbols=["BTC/USDT"])
    result = collect(
        instance, schema, market, tags=range_tags("2025-02-03-00:00", "2025-02-03-01:00")
    )
    assert not result.success
    error = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert "BTC/USDT 2025-02-03 01:00: high < max(open, close)" in error
    pd.testing.assert_frame_equal(stored(schema), before)
    assert _step_attempts(instance, result.run_id) == 1  # bad data is not retried


def test_exchange_backfill_pages_one_call_per_thousand_candles(instance, schema):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with FakeBinance(SYMBOLS, start, start + timedelta(days=60)) as server:
        market = MarketData(source="binance", symbols=SYMBOLS, exchange_api_url=server.api_url)
        # a month: 744 hours per symbol, each in one page
        result = collect(
            instance, schema, market, tags=range_tags("2025-01-01-00:00", "2025-01-31-23:00")
        )
        assert result.success
        assert len(server.kline_requests()) == 2
        result = collect(
            instance, schema, market, tags=range_tags("2025-01-01-00:00", "2025-02-12-23:00")
        )
        assert result.success
        assert len(server.kline_requests()) == 2 + 2 * 2  # 1032 hours: two pages per symbol
    rows = stored(schema)
    assert len(rows) == 2 * 1032 and (rows["source"] == "binance").all()
    assert run_sql(f'SELECT count(*) FROM "{schema}".candles WHERE trades IS NULL') == [(0,)]


@pytest.mark.timeout(180)
def test_transient_exchange_outage_is_retried_by_the_retry_policy(instance, schema):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with FakeBinance(SYMBOLS, start, start + timedelta(days=2)) as server:
        # more 503s than the in-call attempts (4): the step fails, Dagster retries it
        server.faults.extend([("status", 503, "<html>down</html>")] * 5)
        market = MarketData(source="binance", symbols=SYMBOLS, exchange_api_url=server.api_url)
        result = collect(instance, schema, market, partition_key="2025-01-01-05:00")
    assert result.success
    assert _step_attempts(instance, result.run_id) == 2
    assert len(stored(schema)) == 2


def test_unknown_symbol_fails_once_without_retry(instance, schema):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with FakeBinance(["BTC/USDT"], start, start + timedelta(days=1)) as server:
        market = MarketData(
            source="binance", symbols=["DOGE/USDT"], exchange_api_url=server.api_url
        )
        result = collect(instance, schema, market, partition_key="2025-01-01-05:00")
    assert not result.success
    assert "binance has no market DOGE/USDT" in str(
        result.get_step_failure_events()[0].step_failure_data.error
    )
    assert _step_attempts(instance, result.run_id) == 1


def _step_attempts(instance, run_id: str) -> int:
    events = [
        r.event_log_entry.dagster_event_type for r in instance.get_records_for_run(run_id).records
    ]
    return events.count(DagsterEventType.STEP_START) + events.count(DagsterEventType.STEP_RESTARTED)
