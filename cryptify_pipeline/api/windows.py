"""Time windows of the range endpoints: ``from_time``/``to_time``/``time_range`` -> [from, to)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cryptify_pipeline.api.errors import ApiError
from cryptify_pipeline.hours import HOUR, floor_hour

MAX_SPAN = timedelta(days=365)


class TimeRangeName(StrEnum):
    """The old backend's ranges; ``1m`` is 30 days."""

    day = "1d"
    week = "1w"
    month = "1m"


RANGE_HOURS = {TimeRangeName.day: 24, TimeRangeName.week: 168, TimeRangeName.month: 720}
DEFAULT_RANGE = TimeRangeName.week


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def as_json(self) -> dict[str, str]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a time without a zone is taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def window(
    from_time: datetime | None,
    to_time: datetime | None,
    time_range: TimeRangeName | None,
    now: datetime,
) -> Window:
    """[from, to): ``to_time`` or the end of the current hour; ``from_time``, else ``to`` less
    ``time_range`` (default 1w). Refuses (400) an empty or inverted window and one longer than
    365 days."""
    try:
        end = utc(to_time) if to_time is not None else floor_hour(now) + HOUR
        hours = RANGE_HOURS[time_range or DEFAULT_RANGE]
        start = utc(from_time) if from_time is not None else end - timedelta(hours=hours)
    except OverflowError:
        raise ApiError(
            400,
            "invalid_window",
            "from_time/to_time are too close to the ends of the calendar to make a window",
            {"from_time": _text(from_time), "to_time": _text(to_time)},
        ) from None
    if start >= end:
        raise ApiError(
            400,
            "invalid_window",
            f"from_time ({start.isoformat()}) must be before to_time ({end.isoformat()})",
            {"from": start.isoformat(), "to": end.isoformat()},
        )
    if end - start > MAX_SPAN:
        raise ApiError(
            400,
            "window_too_long",
            f"the window {start.isoformat()} .. {end.isoformat()} spans {(end - start).days} "
            f"days; at most {MAX_SPAN.days} days can be asked for at once",
            {"from": start.isoformat(), "to": end.isoformat(), "max_days": MAX_SPAN.days},
        )
    return Window(start, end)


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
