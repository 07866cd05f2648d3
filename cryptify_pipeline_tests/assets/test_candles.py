"""The candles asset through real Dagster runs on Postgres, with each source."""

import logging
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from dagster import DagsterEventType, materialize
from dagster._serdes import serialize_value

from cryptify_pipeline.assets.candle_checks import price_jumps
from cryptify_pipeline.hours import last_closed_hour
from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.resources import MarketData
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.dumps import HEADER, binance_dump, set_field, write_zip
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
    return sample_of(SYMBOLS)


def sample_of(symbols: list[str]) -> MarketData:
    return MarketData(source="sample", symbols=symbols)


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
    assert "BTCUSDT.csv: line 3: high < max(open, close) (BTC/USDT 2025-02-03 01:00" in error
    pd.testing.assert_frame_equal(stored(schema), before)
    assert _step_attempts(instance, result.run_id) == 1  # bad data is not retried


FEB_DUMP = "BTCUSDT-1h-2025-02.csv"
SIX_HOURS = range_tags("2025-02-03-00:00", "2025-02-03-05:00")


def february(folder) -> MarketData:
    folder.mkdir()
    text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    (folder / FEB_DUMP).write_text(text)
    return MarketData(source=f"file:{folder}", symbols=["BTC/USDT"])


def failure(result) -> str:
    return str(result.get_step_failure_events()[0].step_failure_data.error)


def _header_only(folder):
    (folder / FEB_DUMP).write_text(HEADER + "\n")


def _other_symbol_only(folder):
    (folder / "ETHUSDT-1h-2025-02.csv").write_text(
        binance_dump("ETH/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)[0]
    )


def _other_market_only(folder):
    text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    (folder / "BTCUSDTPERP-1h-2025-02.csv").write_text(text)


def _two_hours_short(folder):
    text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    lines = text.split("\n")
    del lines[50:52]  # 2025-02-03 02:00 and 03:00
    (folder / FEB_DUMP).write_text("\n".join(lines))


def _corrupt_time(value):
    def write(folder):
        text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
        (folder / FEB_DUMP).write_text(set_field(text, 300, 0, value))  # 2025-02-13 11:00

    return write


def _corrupt_zip(folder):
    text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    path = write_zip(folder / "BTCUSDT-1h-2025-02.zip", FEB_DUMP, text)
    data = bytearray(path.read_bytes())
    data[200:260] = bytes(b ^ 0x5A for b in data[200:260])
    path.write_bytes(bytes(data))


LOST = "returned no candle for"
UNREADABLE = f"{FEB_DUMP}: line 300: open time is not an epoch time from 2009-01-01 to now:"


@pytest.mark.parametrize(
    ("write_folder", "error"),
    [
        (_header_only, f"{LOST} 6 stored candle(s): BTC/USDT 2025-02-03 00:00 to 05:00; "
                       "refusing to delete them, nothing was written"),
        (_other_symbol_only, f"{LOST} 6 stored candle(s): BTC/USDT 2025-02-03 00:00 to 05:00"),
        (_other_market_only, f"{LOST} 6 stored candle(s): BTC/USDT 2025-02-03 00:00 to 05:00"),
        (_two_hours_short, f"{LOST} 2 stored candle(s): BTC/USDT 2025-02-03 02:00 to 03:00"),
        (_corrupt_time("1e25"), f"{UNREADABLE} '1e25'"),
        (_corrupt_time("-5"), f"{UNREADABLE} '-5'"),
        (_corrupt_zip, f"BTCUSDT-1h-2025-02.zip!{FEB_DUMP}: corrupt or unsupported zip data"),
    ],
)  # fmt: skip
def test_a_source_never_silently_shrinks_the_stored_candles(
    instance, schema, tmp_path, write_folder, error
):
    assert collect(instance, schema, february(tmp_path / "good"), tags=SIX_HOURS).success
    before = stored(schema)
    assert len(before) == 6
    bad = tmp_path / "bad"
    bad.mkdir()
    write_folder(bad)
    result = collect(
        instance, schema, MarketData(source=f"file:{bad}", symbols=["BTC/USDT"]), tags=SIX_HOURS
    )
    assert not result.success
    assert error in failure(result)
    pd.testing.assert_frame_equal(stored(schema), before)  # same rows, same ingested_at
    assert not result.asset_materializations_for_node("candles")
    assert _step_attempts(instance, result.run_id) == 1


def test_shrinking_is_done_only_when_the_run_asks_for_it(instance, schema, tmp_path):
    assert collect(instance, schema, february(tmp_path / "good"), tags=SIX_HOURS).success
    delisted = tmp_path / "delisted"
    delisted.mkdir()
    _two_hours_short(delisted)
    market = MarketData(source=f"file:{delisted}", symbols=["BTC/USDT"])
    accept = {"ops": {"candles": {"config": {"delete_candles_the_source_lacks": True}}}}
    result = collect(instance, schema, market, tags=SIX_HOURS, run_config=accept)
    assert result.success
    assert [ts.hour for ts in stored(schema)["ts"]] == [0, 1, 4, 5]
    metadata = result.asset_materializations_for_node("candles")[0].metadata
    assert metadata["deleted_candles"].value == 2 and metadata["missing_candles"].value == 2
    warnings = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.level == logging.WARNING and "deleting them" in entry.user_message
    ]
    assert len(warnings) == 1 and "BTC/USDT 2025-02-03 02:00 to 03:00" in warnings[0]


def test_any_source_is_refused_when_it_lacks_stored_candles(instance, schema):
    assert collect(instance, schema, sample(), partition_key="2025-01-01-05:00").success
    before = stored(schema)
    listed = datetime(2025, 1, 1, 6, tzinfo=UTC)  # the exchange's history starts later
    with FakeBinance(SYMBOLS, listed, listed + timedelta(days=1)) as server:
        market = MarketData(source="binance", symbols=SYMBOLS, exchange_api_url=server.api_url)
        result = collect(instance, schema, market, partition_key="2025-01-01-05:00")
    assert not result.success
    assert (
        "binance returned no candle for 2 stored candle(s): BTC/USDT 2025-01-01 05:00; "
        "ETH/USDT 2025-01-01 05:00" in failure(result)
    )
    pd.testing.assert_frame_equal(stored(schema), before)
    # a symbol taken out of CRYPTIFY_SYMBOLS: its stored candles are not dropped silently either
    result = collect(instance, schema, sample_of(["BTC/USDT"]), partition_key="2025-01-01-05:00")
    assert not result.success
    assert "ETH/USDT 2025-01-01 05:00 (ETH/USDT no longer configured)" in failure(result)
    pd.testing.assert_frame_equal(stored(schema), before)


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
        # the waits shortened by the resource's configuration (1 s doubling in the call, 10 s
        # before the step's retry by default): what is tested is who retries, not how long
        market = MarketData(
            source="binance", symbols=SYMBOLS, exchange_api_url=server.api_url,
            exchange_backoff_seconds=0.05, step_retry_seconds=0.5,
        )  # fmt: skip
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


def test_a_failing_collect_never_records_the_exchange_urls_secrets(
    instance, instance_schema, schema, capfd, caplog
):
    secrets = ("trader", "s3cret", "P4THTOKEN", "k3y")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with FakeBinance(SYMBOLS, start, start + timedelta(days=1)) as server:
        server.basic_auth = "trader:right"  # a proxy refusing the URL's user and password
        api_url = server.api_url.replace("http://", "http://trader:s3cret@")
        api_url += "/P4THTOKEN?apikey=k3y"
        market = MarketData(source="binance", symbols=SYMBOLS, exchange_api_url=api_url)
        result = collect(instance, schema, market, partition_key="2025-01-01-05:00")
    assert not result.success
    port = api_url.split(":")[-1].split("/")[0]
    assert f"http://***@127.0.0.1:{port}" in failure(result)  # the server is named
    # every event as stored, error chains (causes and contexts) included ...
    events = [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
    assert any("loading markets" in event for event in events)
    rows = run_sql(
        f'SELECT event FROM "{instance_schema}".event_logs WHERE run_id = %s', (result.run_id,)
    )
    run = serialize_value(instance.get_run_by_id(result.run_id))
    # ... the rows of event_logs, the run, and what the run logged
    written = [*events, *(row[0] for row in rows), run, capfd.readouterr().err, caplog.text]
    leaks = [(secret, text) for text in written for secret in secrets if secret in text]
    assert not leaks, leaks[0]


def _step_attempts(instance, run_id: str) -> int:
    events = [
        r.event_log_entry.dagster_event_type for r in instance.get_records_for_run(run_id).records
    ]
    return events.count(DagsterEventType.STEP_START) + events.count(DagsterEventType.STEP_RESTARTED)
