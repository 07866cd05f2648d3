"""One file's text to candles: every row is read and checked, and a bad one is named by line."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.candle_csv import (
    MAX_COLUMNS,
    MAX_ROWS,
    CandleFileError,
    count_rows,
    epoch_to_utc,
    read_candle_csv,
)
from cryptify_pipeline_tests.support.dumps import HEADER, binance_dump, set_field

START = datetime(2025, 2, 1, tzinfo=UTC)
PLAIN_HEADER = "timestamp,open,high,low,close,volume"


def dump(hours: int = 48) -> str:
    return binance_dump("BTC/USDT", START, hours)[0]


def read(text: str) -> pd.DataFrame:
    return read_candle_csv(text, "BTC/USDT", source_name="BTCUSDT-1h-2025-02.csv")


def test_epoch_units_are_read_off_each_value():
    hour = pd.Timestamp("2025-02-01 13:00", tz="UTC")
    seconds = hour.timestamp()
    stamps = epoch_to_utc(np.array([seconds, seconds * 1e3, seconds * 1e6]))
    assert stamps.tolist() == [hour, hour, hour]


@pytest.mark.parametrize("value", [1e25, -5.0, 0.0, np.nan, np.inf, -np.inf, 1.2e9, 4.1e12])
def test_epoch_values_that_are_no_candle_time_become_nat_instead_of_overflowing(value):
    # 1e25 used to overflow int64 into 1677; -5 is 1969; 1.2e9 s is 2008; 4.1e12 ms is 2099
    assert epoch_to_utc(np.array([value])).isna().all()


@pytest.mark.parametrize("value", ["1e25", "-5", "abc", "", "1.2e9", "4102444800000"])
def test_an_unreadable_open_time_is_named_by_file_line_and_value(value):
    text = set_field(dump(), 30, 0, value)
    with pytest.raises(CandleFileError) as raised:
        read(text)
    message = str(raised.value)
    assert message.startswith(
        "BTCUSDT-1h-2025-02.csv: line 30: open time is not an epoch time from 2009-01-01 to now: "
    )
    assert message.endswith(repr(value) if value else "(empty)")


def test_lines_count_the_header_and_blank_lines():
    text = "\n" + HEADER + "\n" + dump(3).replace("\n", "\n\n", 1)
    assert len(read(text)) == 3  # blank lines are no rows
    # line 1 blank, 2 header, 3 first row, 4 blank, 5 second row
    with pytest.raises(CandleFileError, match=r"line 5: open time .*: '-5'$"):
        read(set_field(text, 5, 0, "-5"))


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [("2025-02-01T00:00Z", None), ("1738368000", None), ("1738368000000", None),
     ("1900-01-01T00:00Z", "'1900-01-01T00:00Z'"), ("2999-01-01", "'2999-01-01'"),
     ("yesterday", "'yesterday'"), ("-5", "'-5'"), ("", "(empty)")],
)  # fmt: skip
def test_plain_csv_timestamps(stamp, shown):
    text = f"{PLAIN_HEADER}\n2025-02-01T01:00Z,1,2,0.5,1.5,3\n{stamp},1,2,0.5,1.5,3\n"
    if shown is None:
        frame = read(text)
        assert frame["ts"].dt.hour.tolist() == [0, 1]
        return
    with pytest.raises(CandleFileError) as raised:
        read(text)
    assert str(raised.value) == (
        "BTCUSDT-1h-2025-02.csv: line 3: timestamp is not an ISO 8601 or epoch time "
        f"from 2009-01-01 to now: {shown}"
    )


@pytest.mark.parametrize("count", ["99999999999999999999", "9223372036854775808", "-3", "1.5"])
def test_a_trade_count_beyond_int64_or_not_whole_is_refused(count):
    with pytest.raises(CandleFileError) as raised:
        read(set_field(dump(), 7, 8, count))
    assert str(raised.value) == (
        "BTCUSDT-1h-2025-02.csv: line 7: trade count is not a whole number from 0 to "
        f"9223372036854775807: {count!r}"
    )


def test_the_largest_trade_count_is_kept_exactly():
    frame = read(set_field(dump(), 7, 8, "9223372036854775807"))
    assert frame["trades"].iloc[6] == 9223372036854775807


def test_text_that_is_no_number_is_named():
    with pytest.raises(CandleFileError, match=r"line 12: close is not a number: 'abc'"):
        read(set_field(dump(), 12, 4, "abc"))


def test_every_row_is_checked_and_the_first_broken_rule_names_its_lines():
    text = set_field(set_field(dump(), 40, 1, "-1"), 44, 1, "0")
    with pytest.raises(CandleFileError) as raised:
        read(text)
    assert str(raised.value) == (
        "BTCUSDT-1h-2025-02.csv: line 40: non-positive price (BTC/USDT 2025-02-02 15:00; "
        "2 row(s) break this rule, lines 40, 44)"
    )
    lines = dump().split("\n")
    with pytest.raises(CandleFileError, match=r"line 2: duplicate \(symbol, ts\) .*lines 2, 49\)"):
        read("\n".join([*lines[:-1], lines[1], ""]))


def test_header_only_has_no_candles_and_an_empty_file_is_refused():
    assert read(HEADER + "\n").empty
    assert read(PLAIN_HEADER + "\n\n").empty
    with pytest.raises(CandleFileError, match="the file is empty"):
        read("")


def test_rows_are_counted_without_parsing_a_header_aside():
    text = dump(5)
    assert count_rows(text) == 5
    assert count_rows(HEADER + "\n" + text) == 5
    assert count_rows(text.rstrip("\n")) == 5  # no newline at the end
    assert count_rows(f"{PLAIN_HEADER}\n2025-02-01T00:00Z,1,2,0.5,1.5,3") == 1
    assert count_rows("\n\n") == 0 and count_rows(HEADER) == 0


def test_rows_and_columns_are_capped_before_parsing():
    with pytest.raises(CandleFileError, match=f"at most {MAX_ROWS:,} rows"):
        read("1\n" * (MAX_ROWS + 2))
    with pytest.raises(CandleFileError, match=f"{MAX_COLUMNS + 1} columns; .* at most"):
        read(",".join(["1"] * (MAX_COLUMNS + 1)) + "\n")
