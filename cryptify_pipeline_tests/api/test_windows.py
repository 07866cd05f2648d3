"""The time windows of /history and /features."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cryptify_pipeline.api.errors import ApiError
from cryptify_pipeline.api.windows import TimeRangeName, Window, window

NOW = datetime(2026, 3, 10, 14, 25, tzinfo=UTC)
END = datetime(2026, 3, 10, 15, tzinfo=UTC)  # the end of the current hour


def test_default_is_the_week_ending_with_the_current_hour():
    assert window(None, None, None, NOW) == Window(END - timedelta(days=7), END)


@pytest.mark.parametrize(("name", "hours"), [("1d", 24), ("1w", 168), ("1m", 720)])
def test_time_range_applies_without_from_time(name, hours):
    assert window(None, None, TimeRangeName(name), NOW) == Window(END - timedelta(hours=hours), END)
    to = datetime(2026, 1, 1, tzinfo=UTC)
    assert window(None, to, TimeRangeName(name), NOW) == Window(to - timedelta(hours=hours), to)


def test_from_time_wins_over_time_range():
    start = datetime(2026, 3, 10, 3, tzinfo=UTC)
    assert window(start, None, TimeRangeName.month, NOW) == Window(start, END)


def test_times_without_a_zone_are_utc_and_others_are_converted():
    naive = window(datetime(2026, 1, 1), datetime(2026, 1, 2), None, NOW)
    assert naive == Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    paris = timezone(timedelta(hours=1))
    converted = window(datetime(2026, 1, 1, 1, tzinfo=paris), None, None, NOW)
    assert converted.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert converted.as_json() == {
        "from": "2026-01-01T00:00:00+00:00",
        "to": "2026-03-10T15:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (datetime(2026, 1, 2), datetime(2026, 1, 1), "invalid_window"),
        (datetime(2026, 1, 1), datetime(2026, 1, 1), "invalid_window"),
        (datetime(2026, 4, 1), None, "invalid_window"),  # from_time after now
        (datetime(2024, 1, 1), datetime(2025, 1, 2), "window_too_long"),
        (None, datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), "invalid_window"),
        (None, datetime(1, 1, 2), "invalid_window"),  # a week before year 1
    ],
)
def test_inconsistent_windows_are_400(start, end, code):
    with pytest.raises(ApiError) as refused:
        window(start, end, None, NOW)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_a_year_is_allowed():
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert window(start, start + timedelta(days=365), None, NOW).start == start
