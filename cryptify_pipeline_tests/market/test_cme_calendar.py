"""CME Globex's equity-futures calendar with US holidays: hand-checked days on Chicago's clock,
weekend observance, and an hour-by-hour cross-check against pandas_market_calendars."""

import warnings
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.cme_calendar import cme_equity_open, holidays
from cryptify_pipeline.ml.context_features import INDEX_CARRY_HOURS

CHICAGO = ZoneInfo("America/Chicago")


def open_hours(day: str) -> list[int]:
    """The Chicago hours of ``day`` (YYYY-MM-DD) in which the index trades."""
    start = datetime.fromisoformat(day).replace(tzinfo=CHICAGO)
    local = pd.date_range(start, start + timedelta(days=1), freq="h", inclusive="left")
    return local[cme_equity_open(local.tz_convert("UTC"))].hour.tolist()


ALL_DAY = [h for h in range(24) if h != 16]  # a normal weekday: all but the daily break
EVENING = [17, 18, 19, 20, 21, 22, 23]  # the next trade date's session from 17:00


def test_thanksgiving_2026_halts_at_noon_and_reopens_at_17():
    # Thursday 2026-11-26: trades until 12:00, shut 12:00-17:00 (18:00-23:00 UTC)
    assert open_hours("2026-11-26") == [*range(12), *EVENING]
    # Friday: closes at 12:15, the 12:00 hour has a bar; then the weekend
    assert open_hours("2026-11-27") == list(range(13))
    assert open_hours("2026-11-25") == ALL_DAY  # the Wednesday before is a normal day


def test_good_friday_2026_is_closed_all_day():
    assert open_hours("2026-04-02") == list(range(16))  # Thursday: the usual close at 16:00
    assert open_hours("2026-04-03") == []
    assert open_hours("2026-04-05") == EVENING  # the week opens on Sunday as usual


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        # Christmas 2021 on a Saturday: observed Friday 24th, Thursday 23rd a normal day
        ("2021-12-23", list(range(16))),
        ("2021-12-24", []),
        # Christmas 2022 on a Sunday: observed Monday 26th, no Sunday evening session
        ("2022-12-23", list(range(16))),
        ("2022-12-25", []),
        ("2022-12-26", EVENING),
        # Christmas 2025 on a Thursday: Wednesday 24th closes at 12:15, reopens 25th at 17:00
        ("2025-12-24", list(range(13))),
        ("2025-12-25", EVENING),
        # New Year 2022 on a Saturday: not observed, Friday 31st trades as usual
        ("2021-12-31", list(range(16))),
        # New Year 2023 on a Sunday: observed Monday 2nd
        ("2023-01-01", []),
        ("2023-01-02", EVENING),
        # New Year 2025 on a Wednesday: Tuesday 31st a normal day until 16:00, no evening
        ("2024-12-31", list(range(16))),
        ("2025-01-01", EVENING),
    ],
)
def test_christmas_and_new_year_on_weekends_are_observed(day, hours):
    assert open_hours(day) == hours


def test_juneteenth_only_from_2022():
    # Juneteenth 2021 fell on a Saturday: a Friday like any other, not a holiday
    assert open_hours("2021-06-18") == list(range(16))
    assert open_hours("2022-06-20") == [*range(12), *EVENING]  # Sunday's, observed Monday
    assert open_hours("2023-06-19") == [*range(12), *EVENING]
    assert open_hours("2027-06-18") == list(range(12))  # Saturday's, observed Friday
    assert (date(2021, 6, 18), "halt_12:00") not in holidays(2021)


def test_independence_day_and_its_eve():
    assert open_hours("2024-07-03") == [*range(13), *EVENING]  # closes 12:15, then July 4th
    assert open_hours("2024-07-04") == [*range(12), *EVENING]
    assert open_hours("2026-07-03") == list(range(12))  # Saturday's, observed Friday
    assert open_hours("2026-07-02") == ALL_DAY  # no early close before a Friday observance


def test_holidays_of_2026():
    assert holidays(2026) == [
        (date(2026, 1, 1), "closed"),
        (date(2026, 1, 19), "halt_12:00"),
        (date(2026, 2, 16), "halt_12:00"),
        (date(2026, 4, 3), "closed"),
        (date(2026, 5, 25), "halt_12:00"),
        (date(2026, 6, 19), "halt_12:00"),
        (date(2026, 7, 3), "halt_12:00"),
        (date(2026, 9, 7), "halt_12:00"),
        (date(2026, 11, 26), "halt_12:00"),
        (date(2026, 11, 27), "close_12:15"),
        (date(2026, 12, 24), "close_12:15"),
        (date(2026, 12, 25), "closed"),
    ]


def test_a_week_without_holidays_is_unchanged_and_empty_input_works():
    week = pd.date_range("2025-03-03", "2025-03-10", freq="h", tz="UTC", inclusive="left")
    assert cme_equity_open(week).sum() == 5 * 23 + 1  # DST began on Sunday the 9th
    assert cme_equity_open(pd.DatetimeIndex([], tz="UTC")).shape == (0,)


def test_the_longest_closure_fits_the_features_carry():
    """The features carry the index's last close through at most ``INDEX_CARRY_HOURS`` shut
    hours; the longest closure is Christmas on a Friday: 76 hours from Thursday 13:00."""
    hours = pd.date_range("2017-01-01", "2036-01-01", freq="h", tz="UTC", inclusive="left")
    edges = np.diff(np.concatenate(([0], ~cme_equity_open(hours), [0])).astype(int))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    assert lengths.max() == 76 <= INDEX_CARRY_HOURS
    longest = hours[starts[lengths == 76]].tz_convert(CHICAGO)
    assert [f"{ts:%Y-%m-%d %H:%M %a}" for ts in longest] == [
        "2020-12-24 13:00 Thu",
        "2026-12-24 13:00 Thu",
    ]


def test_the_same_hours_as_pandas_market_calendars_but_good_friday_mornings():
    """Hour by hour over 2017-2027, against its "CME Globex Equity" calendar: an hour is open
    when a session overlaps it. The only difference: its session until 08:15 on Good Friday in
    2021 and every year from 2023, which CME held in some years only; ours calls the day
    closed (a source's bar wins)."""
    import pandas_market_calendars

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schedule = pandas_market_calendars.get_calendar("CME Globex Equity").schedule(
            "2017-01-01", "2027-12-31"
        )
    hours = pd.date_range("2017-01-02", "2027-12-31", freq="h", tz="UTC", inclusive="left")
    opens = pd.DatetimeIndex(schedule["market_open"]).tz_convert("UTC")
    closes = pd.DatetimeIndex(schedule["market_close"]).tz_convert("UTC")
    assert opens.is_monotonic_increasing and (closes[:-1] <= opens[1:]).all()
    # the last session opening before the hour ends, if it closes after the hour begins
    last = np.searchsorted(opens, hours + pd.Timedelta(hours=1), side="left") - 1
    theirs = (last >= 0) & (closes[np.maximum(last, 0)] > hours)
    ours = cme_equity_open(hours)
    assert theirs.sum() > 11 * 250 * 22  # eleven years of sessions
    assert not (ours & ~theirs).any()  # never open where it is shut
    differ = hours[theirs & ~ours].tz_convert(CHICAGO)
    good_fridays = {
        day
        for year in (2021, 2023, 2024, 2025, 2026, 2027)
        for day, kind in holidays(year)
        if kind == "closed" and day.month in (3, 4)
    }
    assert len(good_fridays) == 6
    assert len(differ) == 16 * 6  # from Thursday 17:00 to Friday 09:00
    assert {(ts + pd.Timedelta(hours=7)).date() for ts in differ} == good_fridays
