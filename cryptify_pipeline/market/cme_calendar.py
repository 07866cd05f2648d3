"""CME Globex's trading hours for equity index futures (E-mini S&P 500 ``ES=F`` and siblings),
hour by hour on Chicago's clock, US holidays included.

The week: from Sunday 17:00 to Friday 16:00 America/Chicago, shut daily 16:00-17:00. In UTC the
hours move by one with US daylight saving (the daily break is 22:00 UTC in winter, 21:00 in
summer). Chicago's offset from UTC is whole hours, so each UTC hour is one local hour.

The holidays, following CME's usual equity-futures schedule (a session for trade date D runs
from 17:00 the evening before to 16:00 on D):

- **Closed all day** on New Year's Day, Good Friday and Christmas Day: no session for that
  trade date, so Globex is shut from 16:00 the evening before until 17:00 on the holiday, when
  the next trade date's session opens (on Good Friday, or a holiday on a Friday, the weekend
  follows). Christmas on a Saturday is observed on the Friday before, on a Sunday on the Monday
  after; New Year's Day on a Sunday is observed on the Monday, on a Saturday not at all (the
  Friday before, December 31, trades as usual, as it does at CME).
- **Halted at 12:00** (reopening at 17:00 for the next trade date) on Martin Luther King Jr.
  Day, Presidents' Day, Memorial Day, Juneteenth (from 2022), Independence Day, Labor Day and
  Thanksgiving; Juneteenth and Independence Day on a Saturday are observed on the Friday, on a
  Sunday on the Monday.
- **Closing at 12:15** on the day after Thanksgiving, on Christmas Eve (when it is a weekday
  and not itself the observed Christmas) and on July 3 when Independence Day falls on a Tuesday
  to Friday: the 12:00 hour trades for a quarter of an hour and counts as open (a bar exists
  for it); the market is shut from 13:00 until the next session opens at 17:00.

What is approximated: Good Friday is taken as closed all day, though in some years CME held a
short session until 08:15 (2021 and 2023, when the US jobs report fell on it;
``pandas_market_calendars`` has one in 2021 and every year from 2023); one-off closures such as
national days of mourning (2018-12-05, 2025-01-09) are not modelled. A mistake costs little
either way: where the calendar says shut and the source has a bar, the bar wins
(``context.shut_hours`` keeps it, ``validate_context`` does not consult the calendar); where it
says open and the market was not, the completeness check names the hour. Checked hour by hour
against ``pandas_market_calendars``' "CME Globex Equity" calendar for 2017-2027: the two differ
only in those Good Friday mornings (``cryptify_pipeline_tests/market/test_cme_calendar.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd
from dateutil.easter import easter

CME_TIMEZONE = "America/Chicago"
CME_DAILY_BREAK_HOUR = 16  # local: the hour from 16:00 to 17:00 Chicago time is shut
CME_REOPEN_HOUR = CME_DAILY_BREAK_HOUR + 1  # 17:00: the next trade date's session opens
HALT_HOUR = 12  # the 12:00 halt on the minor holidays: the 12:00 hour is shut
EARLY_CLOSE_LAST_HOUR = 12  # the 12:15 close: the 12:00 hour trades, 13:00 is shut
JUNETEENTH_FROM = 2022  # the first year CME observed Juneteenth
_MONDAY, _TUESDAY, _THURSDAY, _FRIDAY, _SATURDAY, _SUNDAY = 0, 1, 3, 4, 5, 6
_HOUR = np.timedelta64(1, "h")


def cme_equity_open(ts: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    """Whether CME's equity futures trade in the hour opening at each ``ts`` (UTC): the week's
    hours less the holidays' (see the module's docstring)."""
    local = pd.DatetimeIndex(ts).tz_convert(CME_TIMEZONE)
    weekday, hour = local.day_of_week.to_numpy(), local.hour.to_numpy()
    weekend = (
        (weekday == _SATURDAY)
        | ((weekday == _SUNDAY) & (hour < CME_REOPEN_HOUR))
        | ((weekday == _FRIDAY) & (hour >= CME_DAILY_BREAK_HOUR))
    )
    trading = ~weekend & (hour != CME_DAILY_BREAK_HOUR)
    if len(local):
        wall = local.tz_localize(None).to_numpy().astype("datetime64[h]")
        shut = _shut_hours(range(local.year.min() - 1, local.year.max() + 2))
        trading &= ~np.isin(wall, shut)
    return trading


def holidays(year: int) -> list[tuple[date, str]]:
    """The year's holiday sessions as (date, kind), kind ``closed``, ``halt_12:00`` or
    ``close_12:15``, with weekend holidays moved to the day CME observes them."""
    new_year = date(year, 1, 1)
    christmas = _observed(date(year, 12, 25))
    thanksgiving = _nth_weekday(year, 11, _THURSDAY, 4)
    closed = [christmas, easter(year) - timedelta(days=2)]
    if new_year.weekday() != _SATURDAY:
        closed.append(_observed(new_year))
    halts = [
        _nth_weekday(year, 1, _MONDAY, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, _MONDAY, 3),  # Presidents' Day
        _nth_weekday(year, 6, _MONDAY, 1) - timedelta(days=7),  # Memorial Day: May's last
        _observed(date(year, 7, 4)),  # Independence Day
        _nth_weekday(year, 9, _MONDAY, 1),  # Labor Day
        thanksgiving,
    ]
    if year >= JUNETEENTH_FROM:
        halts.append(_observed(date(year, 6, 19)))
    early = [thanksgiving + timedelta(days=1)]
    independence_day = date(year, 7, 4)
    if _TUESDAY <= independence_day.weekday() <= _FRIDAY:  # then July 3 is a weekday
        early.append(independence_day - timedelta(days=1))
    christmas_eve = date(year, 12, 24)
    if christmas_eve.weekday() < _SATURDAY and christmas_eve != christmas:
        early.append(christmas_eve)
    days = (
        [(day, "closed") for day in closed]
        + [(day, "halt_12:00") for day in halts]
        + [(day, "close_12:15") for day in early]
    )
    return sorted(days)


@lru_cache(maxsize=64)
def _shut_hours_of(year: int) -> np.ndarray:
    """The local (wall-clock) hours the year's holidays shut, beyond the week's own."""
    return np.array(sorted(set(_holiday_hours(year))), dtype="datetime64[h]")


def _shut_hours(years: range) -> np.ndarray:
    return np.concatenate([_shut_hours_of(year) for year in years])


def _holiday_hours(year: int) -> Iterator[np.datetime64]:
    for day, kind in holidays(year):
        reopen = datetime.combine(day, time(CME_REOPEN_HOUR))
        if kind == "closed":  # no session for the day: from the evening before to 17:00
            first = reopen - timedelta(days=1, hours=1)
        elif kind == "halt_12:00":
            first = datetime.combine(day, time(HALT_HOUR))
        else:
            first = datetime.combine(day, time(EARLY_CLOSE_LAST_HOUR + 1))
        yield from np.arange(
            np.datetime64(first, "h"), np.datetime64(reopen, "h"), _HOUR, dtype="datetime64[h]"
        )


def _observed(day: date) -> date:
    """A fixed-date holiday on a weekend moved to the Friday before or the Monday after."""
    if day.weekday() == _SATURDAY:
        return day - timedelta(days=1)
    if day.weekday() == _SUNDAY:
        return day + timedelta(days=1)
    return day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
