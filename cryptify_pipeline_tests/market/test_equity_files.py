"""Equity index bars from CSV files: traded hours read, shut hours completed, bad rows named."""

from datetime import UTC, datetime, timedelta

import pytest

from cryptify_pipeline.market.context import missing_hours, validate_context
from cryptify_pipeline.market.equity_files import EquityIndexFiles
from cryptify_pipeline.market.errors import SourceError

# Friday 2025-03-07: CME trades until 22:00 UTC, then shuts for the weekend
START, END = datetime(2025, 3, 7, 20, tzinfo=UTC), datetime(2025, 3, 8, 0, tzinfo=UTC)


def test_bars_are_read_and_shut_hours_completed(tmp_path):
    (tmp_path / "ES=F.csv").write_text(
        "ts,open,high,low,close,volume\n"
        "2025-03-07T19:00:00Z,5700,5710,5690,5705,1000\n"  # before the range
        "2025-03-07T20:00:00Z,5705,5712,5701,5709,1200\n"
        "2025-03-07T16:00:00-05:00,5709,5711,5700,5702,\n"  # 21:00 UTC, no volume
    )
    frame = EquityIndexFiles(str(tmp_path)).fetch(["ES=F"], START, END)
    validate_context(frame, "equity_index", START, END)
    assert frame["ts"].dt.hour.tolist() == [20, 21, 22, 23]
    assert frame["market_open"].tolist() == [True, True, False, False]
    assert frame["close"].tolist()[:2] == [5709.0, 5702.0] and frame["close"][2:].isna().all()
    assert (frame["source"] == "file").all()


def test_a_missing_traded_hour_stays_missing(tmp_path):
    (tmp_path / "ES=F.csv").write_text("ts,open,high,low,close,volume\n")
    frame = EquityIndexFiles(str(tmp_path)).fetch(["ES=F"], START, END)
    assert frame["ts"].dt.hour.tolist() == [22, 23]  # 20:00 and 21:00 traded: not invented


@pytest.mark.parametrize(
    ("friday", "last_bar", "sunday_open"),
    [("2025-01-10", 21, 23), ("2025-07-11", 20, 22)],  # Chicago's clock: CST, then CDT
)
def test_shut_hours_follow_us_daylight_saving(tmp_path, friday, last_bar, sunday_open):
    start = datetime.fromisoformat(f"{friday}T18:00:00+00:00")
    sunday = start + timedelta(days=2)
    bars = [start + timedelta(hours=h) for h in range(last_bar - 18 + 1)]
    bars.append(sunday.replace(hour=sunday_open))
    (tmp_path / "ES=F.csv").write_text(
        "ts,open,high,low,close,volume\n"
        + "".join(f"{ts:%Y-%m-%dT%H:%M:%SZ},5700,5710,5690,5705,1000\n" for ts in bars)
    )
    end = sunday.replace(hour=sunday_open) + timedelta(hours=1)
    frame = EquityIndexFiles(str(tmp_path)).fetch(["ES=F"], start, end)
    validate_context(frame, "equity_index", start, end)
    assert missing_hours(frame, ["ES=F"], "index_symbol", start, end).empty
    assert frame.loc[frame["market_open"], "ts"].tolist() == bars


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("2025-03-07T20:30:00Z,1,1,1,1,1", "line 3: a time not on the hour"),
        ("yesterday,1,1,1,1,1", "line 3: a time that is not ISO 8601"),
        ("2025-03-07T21:00:00Z,1,1,-1,1,1", "line 3: a missing or non-positive price"),
        ("2025-03-07T20:00:00Z,1,1,1,1,1", "line 2: a duplicate hour"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, problem):
    (tmp_path / "ES=F.csv").write_text(
        f"ts,open,high,low,close,volume\n2025-03-07T20:00:00Z,2,2,2,2,2\n{row}\n"
    )
    with pytest.raises(SourceError, match=problem):
        EquityIndexFiles(str(tmp_path)).fetch(["ES=F"], START, END)


def test_holiday_hours_are_shut_and_a_bar_on_one_is_kept(tmp_path):
    # Thanksgiving 2026 (Thursday 26th): CME halts 12:00-17:00 Chicago, 18:00-23:00 UTC
    start, end = datetime(2026, 11, 26, 16, tzinfo=UTC), datetime(2026, 11, 27, 1, tzinfo=UTC)
    bars = ["2026-11-26T16:00:00Z", "2026-11-26T17:00:00Z", "2026-11-26T23:00:00Z",
            "2026-11-27T00:00:00Z"]  # fmt: skip
    bars.append("2026-11-26T19:00:00Z")  # a bar where the calendar says shut: it wins
    (tmp_path / "ES=F.csv").write_text(
        "ts,open,high,low,close,volume\n"
        + "".join(f"{ts},6800,6810,6790,6805,1000\n" for ts in bars)
    )
    frame = EquityIndexFiles(str(tmp_path)).fetch(["ES=F"], start, end)
    validate_context(frame, "equity_index", start, end)
    assert missing_hours(frame, ["ES=F"], "index_symbol", start, end).empty
    assert frame["ts"].dt.hour.tolist() == [16, 17, 18, 19, 20, 21, 22, 23, 0]
    assert frame["market_open"].tolist() == [True, True, False, True, False, False, False, True,
                                             True]  # fmt: skip
    assert frame.loc[frame["market_open"], "close"].tolist() == [6805.0] * 5
