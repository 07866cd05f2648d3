"""History import from Binance kline dumps and plain OHLCV CSVs."""

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from cryptify_pipeline.market.candles import validate_candles
from cryptify_pipeline.market.files import CandleFileError, FileSource, symbol_for_file
from cryptify_pipeline_tests.support.dumps import HEADER, binance_dump


def test_monthly_dump_without_header_in_milliseconds(tmp_path):
    text, expected = binance_dump("BTC/USDT", datetime(2024, 1, 1, tzinfo=UTC), 744)
    (tmp_path / "BTCUSDT-1h-2024-01.csv").write_text(text)
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    frame = FileSource(str(tmp_path)).fetch(["BTC/USDT"], start, end)
    validate_candles(frame, ["BTC/USDT"], start, end)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_zipped_dump_with_header_in_microseconds(tmp_path):
    # spot dumps switched open_time to microseconds in 2025
    text, expected = binance_dump("ETH/USDT", datetime(2025, 3, 1, tzinfo=UTC), 24, unit="us")
    with zipfile.ZipFile(tmp_path / "ETHUSDT-1h-2025-03-01.zip", "w") as archive:
        archive.writestr("ETHUSDT-1h-2025-03-01.csv", HEADER + "\n" + text)
    frame = FileSource(str(tmp_path / "*.zip")).fetch(
        ["ETH/USDT"], datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)
    )
    assert frame["ts"].iloc[0] == pd.Timestamp("2025-03-01 00:00", tz="UTC")
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_range_is_cut_and_files_outside_it_are_not_opened(tmp_path):
    january, _ = binance_dump("BTC/USDT", datetime(2024, 1, 1, tzinfo=UTC), 744)
    (tmp_path / "BTCUSDT-1h-2024-01.csv").write_text(january)
    (tmp_path / "BTCUSDT-1h-2024-02.csv").write_text("this file is broken and must not be read")
    frame = FileSource(str(tmp_path)).fetch(
        ["BTC/USDT"], datetime(2024, 1, 10, 5, tzinfo=UTC), datetime(2024, 1, 10, 8, tzinfo=UTC)
    )
    assert [ts.hour for ts in frame["ts"]] == [5, 6, 7]


def test_overlapping_monthly_and_daily_dumps_count_once(tmp_path):
    month, _ = binance_dump("BTC/USDT", datetime(2024, 1, 1, tzinfo=UTC), 744)
    day, _ = binance_dump("BTC/USDT", datetime(2024, 1, 5, tzinfo=UTC), 24)
    (tmp_path / "BTCUSDT-1h-2024-01.csv").write_text(month)
    (tmp_path / "BTCUSDT-1h-2024-01-05.csv").write_text(HEADER + "\n" + day)
    frame = FileSource(str(tmp_path)).fetch(
        ["BTC/USDT"], datetime(2024, 1, 5, tzinfo=UTC), datetime(2024, 1, 6, tzinfo=UTC)
    )
    assert len(frame) == 24


def test_plain_csv_with_iso_timestamps(tmp_path):
    (tmp_path / "sol_usdt.csv").write_text(
        "timestamp,open,high,low,close,volume\n"
        "2025-01-01T00:00:00Z,100,101,99,100.5,10\n"
        "2025-01-01 01:00:00+00:00,100.5,102,100,101,12.5\n"
    )
    frame = FileSource(str(tmp_path)).fetch(
        ["SOL/USDT", "BTC/USDT"], datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
    )
    assert frame["symbol"].tolist() == ["SOL/USDT", "SOL/USDT"]
    assert frame["close"].tolist() == [100.5, 101.0]
    assert frame["quote_volume"].isna().all() and frame["trades"].isna().all()


def test_plain_csv_with_epoch_seconds(tmp_path):
    (tmp_path / "BTC-USDT.csv").write_text(
        "timestamp,open,high,low,close,volume\n1735689600,1,2,0.5,1.5,3\n"
    )
    frame = FileSource(str(tmp_path)).fetch(
        ["BTC/USDT"], datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
    )
    assert frame["ts"].tolist() == [pd.Timestamp("2025-01-01 00:00", tz="UTC")]


def test_symbol_from_file_name_prefers_the_longest_match():
    symbols = ["BTC/USD", "BTC/USDT"]
    assert symbol_for_file(Path("BTCUSDT-1h-2024-01.zip"), symbols) == "BTC/USDT"
    assert symbol_for_file(Path("btc_usd.csv"), symbols) == "BTC/USD"
    assert symbol_for_file(Path("ETHUSDT-1h-2024-01.zip"), symbols) is None


def test_bad_files_are_named(tmp_path):
    (tmp_path / "BTCUSDT.csv").write_text("timestamp,open,close\n2025-01-01T00:00Z,1,2\n")
    with pytest.raises(
        CandleFileError, match=r"BTCUSDT.csv: missing column\(s\) high, low, volume"
    ):
        FileSource(str(tmp_path)).fetch(
            ["BTC/USDT"], datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
        )
    with pytest.raises(CandleFileError, match="no .csv or .zip files"):
        FileSource(str(tmp_path / "nothing-*.csv")).files()
    (tmp_path / "BTCUSDT.csv").unlink()
    (tmp_path / "BTCUSDT-1h-2025-01.zip").write_text("not a zip")
    with pytest.raises(CandleFileError, match="not a readable zip archive"):
        FileSource(str(tmp_path)).fetch(
            ["BTC/USDT"], datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
        )
