"""Partition keys checked before anything is launched: of the right kind, existing, in order.

Dagster creates a run for any partition tag and a backfill for any range, and the run then
fails (or the backfill covers nothing). The webserver knows each asset's partitions: its key
format, its first two keys (their distance is the cadence) and its newest key (a time partition
exists once it has closed), so a key of the wrong kind, off the cadence, before the start, in
the future, or a reversed range is refused here, with the keys that would do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptify_pipeline.hours import DAY_KEY_FORMAT, HOUR_KEY_FORMAT

_UNITS = {HOUR_KEY_FORMAT: "hour", DAY_KEY_FORMAT: "day"}
# up to a week every step is the same length; months are not, and their format is their cadence
_FIXED_STEP = timedelta(days=7)


class PartitionKeyError(ValueError):
    """A partition key or range that names no partitions; the message says which would."""


@dataclass(frozen=True)
class TimePartitions:
    """The time partitions of a job or asset (``owner``) as the webserver reports them."""

    owner: str
    fmt: str
    first: str | None  # None: no partition has closed yet
    newest: str | None
    second: str | None = None  # the key after ``first``, if it has closed

    @property
    def unit(self) -> str:
        return _UNITS.get(self.fmt, f"time window (keys {self.fmt})")

    def describe(self) -> str:
        if self.first is None or self.newest is None:
            return f"{self.owner} is partitioned by {self.unit} and has no partitions yet"
        return (
            f"{self.owner} is partitioned by {self.unit}, from {self.first} to {self.newest} "
            f"(the newest {self.unit} that has closed)"
        )

    def parse(self, key: str) -> datetime:
        """The start of ``key``'s partition; refused unless ``key`` is a key of this kind."""
        try:
            moment = datetime.strptime(key, self.fmt)
        except ValueError:
            moment = None
        # strptime takes "2025-1-5" and the like: only the canonical spelling is a key
        if moment is None or moment.strftime(self.fmt) != key or not self._on_cadence(moment):
            example = self.newest or datetime.now().strftime(self.fmt)
            raise PartitionKeyError(
                f"{key!r} is not a partition key of {self.owner}, which is partitioned by "
                f"{self.unit} (keys like {example})"
            )
        return moment

    def _on_cadence(self, moment: datetime) -> bool:
        """Whether ``moment`` is a whole number of steps from the first partition (10:30 is
        not an hourly partition, though its key has the format)."""
        if self.first is None or self.second is None:
            return True
        first = datetime.strptime(self.first, self.fmt)
        step = datetime.strptime(self.second, self.fmt) - first
        return not timedelta(0) < step <= _FIXED_STEP or (moment - first) % step == timedelta(0)

    def check(self, key: str) -> datetime:
        """``parse`` and refuse a key before the first partition or not closed yet."""
        moment = self.parse(key)
        if self.first is None or self.newest is None:
            raise PartitionKeyError(f"{key}: {self.describe()}")
        if moment < self.parse(self.first):
            raise PartitionKeyError(
                f"{key} is before the first partition of {self.owner}, {self.first} "
                "(CRYPTIFY_START)"
            )
        if moment > self.parse(self.newest):
            raise PartitionKeyError(
                f"{key} is in the future: the newest partition of {self.owner} is "
                f"{self.newest} (a partition exists once its {self.unit} has closed)"
            )
        return moment


def check_key(partitions: Iterable[TimePartitions], key: str) -> None:
    """Refuse ``key`` unless every one of ``partitions`` has it."""
    for each in partitions:
        each.check(key)


def check_range(partitions: Iterable[TimePartitions], first: str, last: str) -> None:
    """Refuse ``first``..``last`` unless both are keys of every one of ``partitions``, in order."""
    partitions = list(partitions)
    for each in partitions:
        if each.parse(first) > each.parse(last):
            raise PartitionKeyError(f"the range is reversed: {first} is after {last}")
    for each in partitions:
        each.check(first)
        each.check(last)
