"""History import from Binance kline dumps and plain OHLCV CSVs: what is read, and every
file that must be refused, by name."""

import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from cryptify_pipeline.market.candle_csv import MAX_ROWS
from cryptify_pipeline.market.candles import validate_candles
from cryptify_pipeline.market.files import (
    MAX_FILE_BYTES,
    MAX_ZIP_MEMBERS,
    CandleFileError,
    FileSource,
    symbol_for_file,
)
from cryptify_pipeline_tests.support.dumps import HEADER, binance_dump, set_field, write_zip

FEB = (datetime(2025, 2, 3, tzinfo=UTC), datetime(2025, 2, 3, 6, tzinfo=UTC))


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


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("BTCUSDT-1h-2024-01.zip", "BTC/USDT"),
        ("BTCUSDT-1h-2024-01-15.csv", "BTC/USDT"),
        ("BTC-USDT.csv", "BTC/USDT"),
        ("btc_usdt.csv", "BTC/USDT"),
        ("BTCUSDT.csv", "BTC/USDT"),
        ("btc_usd.csv", "BTC/USD"),
        ("BTC-USD-1h-2024-01.csv", "BTC/USD"),
        ("BTC_USDT-1h.csv", "BTC/USDT"),
        ("BTCUSDT-4h-2024-01.zip", "BTC/USDT"),  # BTC/USDT's, skipped for its interval
        ("BTCUSDT-1mo-2024-01.zip", "BTC/USDT"),
        ("BTCUSDTPERP-1h-2024-01.zip", None),  # a perpetual future is another market
        ("BTCUSDC-1h-2024-01.zip", None),  # USDC is not USD
        ("XBTCUSDT.csv", None),
        ("ETHUSDT-1h-2024-01.zip", None),
    ],
)
def test_a_file_name_must_spell_a_symbol_exactly(name, symbol):
    assert symbol_for_file(Path(name), ["BTC/USD", "BTC/USDT"]) == symbol


@pytest.mark.parametrize(
    "name",
    [
        "BTCUSDT_PERP-1h-2024-01.zip",  # Binance's USD-M perpetual
        "BTCUSD_PERP-1h-2024-01.zip",  # and its COIN-M one
        "BTCUSD_240329-1h-2024-01.zip",  # a COIN-M quarterly future
        "BTC-USDT-PERP.csv",
        "btc_usdt_hourly.csv",
        "BTCUSDT-1h-2024-01-extra.csv",
        "BTCUSDT-1H-2024-01.csv",
        "BTCUSDT-1h-24-01.csv",
    ],
)
def test_a_name_that_goes_on_after_its_pair_with_anything_but_the_interval_is_refused(name):
    # these were read as the spot pair: a PERP dump next to the spot ones stored 50,000
    # candles for 9,000 hours without a word
    with pytest.raises(
        CandleFileError,
        match=rf"^{name}: the name goes on after (BTCUSDT?|BTC-USDT|btc_usdt) \(BTC/USDT?\) "
        r"with '.*', which is not an interval",
    ):
        symbol_for_file(Path(name), ["BTC/USD", "BTC/USDT"])


def test_a_perpetual_dump_among_the_spot_ones_refuses_the_read(tmp_path):
    text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    (tmp_path / "BTCUSDT-1h-2025-02.csv").write_text(text)
    (tmp_path / "BTCUSDT_PERP-1h-2025-02.csv").write_text(text)
    with pytest.raises(CandleFileError, match=rf"^{tmp_path}/BTCUSDT_PERP-1h-2025-02.csv: "):
        FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)
    (tmp_path / "BTCUSDT_PERP-1h-2025-02.csv").unlink()
    assert len(FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)) == 6


def test_a_file_of_another_interval_is_skipped_dated_or_not(tmp_path, caplog):
    text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    (tmp_path / "BTCUSDT-4h.csv").write_text(text)
    (tmp_path / "BTCUSDT-1d-2025-02.csv").write_text(text)
    assert FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB).empty
    assert "BTCUSDT-4h.csv: interval 4h, not 1h" in caplog.text
    assert "BTCUSDT-1d-2025-02.csv: interval 1d, not 1h" in caplog.text


def test_a_name_that_fits_two_symbols_is_refused():
    with pytest.raises(CandleFileError, match=r"BTCUSDT.csv: the name fits BT/CUSDT and BTC/USDT"):
        symbol_for_file(Path("BTCUSDT.csv"), ["BTC/USDT", "BT/CUSDT"])
    assert symbol_for_file(Path("BTC-USDT.csv"), ["BTC/USDT", "BT/CUSDT"]) == "BTC/USDT"


def test_files_of_other_markets_are_not_read(tmp_path):
    text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    (tmp_path / "BTCUSDTPERP-1h-2025-02.csv").write_text(text)
    (tmp_path / "BTCUSDC-1h-2025-02.csv").write_text(text)
    assert FileSource(str(tmp_path)).fetch(["BTC/USDT", "BTC/USD"], *FEB).empty


def test_a_bad_row_outside_the_asked_hours_refuses_the_file(tmp_path):
    text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    path = tmp_path / "BTCUSDT-1h-2025-02.csv"
    for line, column, value, problem in [
        (500, 0, "1e25", "open time is not an epoch time from 2009-01-01 to now: '1e25'"),
        (500, 0, "-5", "open time is not an epoch time from 2009-01-01 to now: '-5'"),
        (500, 3, "1e12", "low > min(open, close) (BTC/USDT 2025-02-21 19:00"),
    ]:
        path.write_text(set_field(text, line, column, value))
        with pytest.raises(CandleFileError) as raised:
            FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)
        assert str(raised.value).startswith(f"{path}: line {line}: {problem}")


def test_corrupt_zip_data_is_named(tmp_path):
    text, _ = binance_dump("BTC/USDT", datetime(2025, 2, 1, tzinfo=UTC), 28 * 24)
    path = write_zip(tmp_path / "BTCUSDT-1h-2025-02.zip", "BTCUSDT-1h-2025-02.csv", text)
    data = bytearray(path.read_bytes())
    data[200:260] = bytes(b ^ 0x5A for b in data[200:260])  # inside the deflated member
    path.write_bytes(bytes(data))
    with pytest.raises(
        CandleFileError,
        match=rf"^{path}!BTCUSDT-1h-2025-02.csv: corrupt or unsupported zip data \(",
    ):
        FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)


def test_a_zip_that_expands_past_the_cap_is_refused_before_decompressing(tmp_path):
    # 65 MiB of one byte deflates to ~65 KB: what a zip bomb looks like
    path = write_zip(
        tmp_path / "BTCUSDT-1h-2025-02.zip", "BTCUSDT.csv", b"1" * (MAX_FILE_BYTES + 2**20)
    )
    assert path.stat().st_size < 2**20
    with pytest.raises(CandleFileError) as raised:
        FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)
    # refused from the sizes the archive declares, before decompressing (1 ms here)
    assert str(raised.value) == (
        f"{path} (its .csv members): {MAX_FILE_BYTES + 2**20:,} bytes uncompressed; "
        "a candle file may hold at most 64 MiB uncompressed"
    )


def one_row_members(path: Path, members: int) -> Path:
    """A zip of ``members`` one-row dumps: 3,000 of them (0.44 MB) took 50 s of CPU to read."""
    row, _ = binance_dump("BTC/USDT", FEB[0], 1)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(members):
            archive.writestr(f"BTCUSDT-1h-2025-02-03-{number}.csv", row)
    return path


def test_a_zip_of_more_members_than_the_cap_is_refused_before_any_is_read(tmp_path):
    path = one_row_members(tmp_path / "BTCUSDT-1h-2025-02.zip", MAX_ZIP_MEMBERS + 1)
    with pytest.raises(CandleFileError) as raised:
        FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)
    assert str(raised.value) == (
        f"{path}: {MAX_ZIP_MEMBERS + 1:,} members; a candle zip may hold at most "
        f"{MAX_ZIP_MEMBERS:,} (Binance's dumps hold one; each member is parsed on its own)"
    )
    # at the cap, read
    one_row_members(path, 3)
    assert len(FileSource(str(tmp_path), max_zip_members=3).fetch(["BTC/USDT"], *FEB)) == 1
    with pytest.raises(CandleFileError, match=r": 3 members; a candle zip may hold at most 2 "):
        FileSource(str(tmp_path), max_zip_members=2).fetch(["BTC/USDT"], *FEB)


def test_rows_are_capped_per_file_not_per_member(tmp_path):
    text, _ = binance_dump("BTC/USDT", FEB[0], 24)
    path = tmp_path / "BTCUSDT-1h-2025-02.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for day in ("03", "04", "05"):
            archive.writestr(f"BTCUSDT-1h-2025-02-{day}.csv", HEADER + "\n" + text)
    assert len(FileSource(str(tmp_path), max_rows=72).fetch(["BTC/USDT"], *FEB)) == 6
    # each member is under the cap; together they are over it
    with pytest.raises(CandleFileError) as raised:
        FileSource(str(tmp_path), max_rows=71).fetch(["BTC/USDT"], *FEB)
    assert str(raised.value) == (
        f"{path}: its .csv members hold more than 71 rows; a candle file may hold at most 71 "
        "rows, in one zip member or many"
    )
    assert FileSource(str(tmp_path)).max_rows == MAX_ROWS
    # and a plain file the same
    path.unlink()
    (tmp_path / "BTCUSDT.csv").write_text(HEADER + "\n" + text)
    assert len(FileSource(str(tmp_path), max_rows=24).fetch(["BTC/USDT"], *FEB)) == 6
    with pytest.raises(CandleFileError, match=r"BTCUSDT.csv: it holds more than 23 rows; "):
        FileSource(str(tmp_path), max_rows=23).fetch(["BTC/USDT"], *FEB)


def test_a_zip_file_past_the_cap_is_refused_unopened(tmp_path):
    path = tmp_path / "BTCUSDT-1h-2025-02.zip"
    with path.open("wb") as sparse:
        sparse.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(
        CandleFileError, match=rf"^{path}: 67,108,865 bytes; a candle zip may be at most 64 MiB"
    ):
        FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)


def test_a_plain_file_past_the_cap_is_refused_unread(tmp_path):
    path = tmp_path / "BTCUSDT.csv"
    with path.open("wb") as sparse:
        sparse.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(
        CandleFileError, match=r"BTCUSDT.csv: 67,108,865 bytes uncompressed; .* 64 MiB"
    ):
        FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)


def test_a_zip_without_csv_is_refused(tmp_path):
    path = write_zip(tmp_path / "BTCUSDT-1h-2025-02.zip", "BTCUSDT-1h-2025-02.txt", "hello")
    with pytest.raises(CandleFileError, match=rf"^{path}: the zip holds no .csv file$"):
        FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)


def test_non_utf8_text_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "BTC-USDT.csv"
    path.write_bytes(b"timestamp,open,high,low,close,volume\n2025-02-03T00:00Z,1,2,0.5,1.5,3\xfc\n")
    with pytest.raises(CandleFileError, match=rf"^{path}: line 2: not UTF-8 text \(byte 0xfc\)$"):
        FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)
    # a byte-order mark (a spreadsheet's export) is UTF-8 and is dropped
    path.write_bytes(
        "\ufefftimestamp,open,high,low,close,volume\n2025-02-03T00:00Z,1,2,0.5,1.5,3\n".encode()
    )
    assert len(FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)) == 1


def test_a_glob_must_match_candle_files_only(tmp_path):
    (tmp_path / "BTCUSDT-1h-2025-02.csv").mkdir()
    with pytest.raises(
        CandleFileError, match=rf"^{tmp_path}/BTCUSDT-1h-2025-02.csv: is a directory; "
    ):
        FileSource(str(tmp_path / "*.csv")).fetch(["BTC/USDT"], *FEB)
    (tmp_path / "BTCUSDT-1h-2025-02.csv").rmdir()
    (tmp_path / "BTCUSDT-1h-2025-02.zip.CHECKSUM").write_text("abc  BTCUSDT-1h-2025-02.zip\n")
    with pytest.raises(CandleFileError, match=r"CHECKSUM: not a .csv or .zip file"):
        FileSource(str(tmp_path / "*")).fetch(["BTC/USDT"], *FEB)
    os.mkfifo(tmp_path / "BTCUSDT.csv")  # reading it would block forever
    with pytest.raises(CandleFileError, match=r"BTCUSDT.csv: not a regular file"):
        FileSource(str(tmp_path / "*.csv")).fetch(["BTC/USDT"], *FEB)
    # a directory alone: its .csv and .zip files, other files ignored
    (tmp_path / "BTCUSDT.csv").unlink()
    (tmp_path / "BTCUSDT.csv").write_text(HEADER + "\n")
    assert FileSource(str(tmp_path)).files() == [tmp_path / "BTCUSDT.csv"]


def test_a_dump_name_with_an_impossible_date_is_refused(tmp_path):
    (tmp_path / "BTCUSDT-1h-2025-13.csv").write_text(HEADER + "\n")
    with pytest.raises(CandleFileError, match=r"BTCUSDT-1h-2025-13.csv: its name's date is not"):
        FileSource(str(tmp_path)).fetch(["BTC/USDT"], *FEB)


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
