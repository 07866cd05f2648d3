"""Hour arithmetic, in one place: partition key formats, the last closed hour, runs of hours.

No Dagster here: ``market/`` and ``ml/`` use it too. Every time is a UTC instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# the partition keys' formats (Dagster's defaults for hourly and daily partitions)
HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"
DAY_KEY_FORMAT = "%Y-%m-%d"


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def last_closed_hour(now: datetime) -> datetime:
    """Open time of the newest hourly candle that has closed by ``now``."""
    return floor_hour(now) - HOUR


def hour_key(moment: datetime) -> str:
    return moment.strftime(HOUR_KEY_FORMAT)


def day_key(moment: datetime) -> str:
    return moment.strftime(DAY_KEY_FORMAT)


def consecutive_runs(
    moments: Iterable[datetime], step: timedelta = HOUR
) -> list[tuple[datetime, datetime]]:
    """Runs of ``moments`` (ascending) that are ``step`` apart, as (first, last), oldest first."""
    runs: list[list[datetime]] = []
    for moment in moments:
        if runs and moment - runs[-1][1] == step:
            runs[-1][1] = moment
        else:
            runs.append([moment, moment])
    return [(first, last) for first, last in runs]


def hours_between(first: datetime, last: datetime) -> list[datetime]:
    """Every hour from ``first`` to ``last``, both included."""
    count = int((last - first) / HOUR) + 1
    return [first + HOUR * index for index in range(max(count, 0))]


def describe_runs(moments: Iterable[datetime], limit: int = 10) -> str:
    """Runs of consecutive hours for people: ``2025-01-01-05:00, 2025-01-02-00:00..03:00``."""
    runs = consecutive_runs(sorted(moments))
    shown = ", ".join(
        hour_key(first) if first == last else f"{hour_key(first)}..{hour_key(last)}"
        for first, last in runs[:limit]
    )
    return shown + (" ..." if len(runs) > limit else "")
