"""Partition definitions and the mappings between them.

A partition exists once its hour (or day) has closed. Mapping offsets count in *downstream*
partitions: from hourly predictions to daily models, -24 reaches the previous day.
The partitions start at ``CRYPTIFY_START``, so they are built from the settings with the rest
of the definitions (``definitions.build_definitions``); the mappings do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dagster import (
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    TimeWindowPartitionMapping,
)

from cryptify_pipeline.ml.features import LOOKBACK_HOURS

MAX_TRAINING_DAYS = 3650


@dataclass(frozen=True)
class Partitions:
    """The hourly and daily partitions of one deployment, both starting at its start hour."""

    hourly: HourlyPartitionsDefinition
    daily: DailyPartitionsDefinition

    @classmethod
    def starting(cls, start: datetime) -> Partitions:
        return cls(
            hourly=HourlyPartitionsDefinition(start_date=start, timezone="UTC"),
            daily=DailyPartitionsDefinition(start_date=start.replace(hour=0), timezone="UTC"),
        )

    @property
    def first_hour(self) -> datetime:
        return self.hourly.start

    def hour_window(self, first: str, last: str) -> tuple[datetime, datetime]:
        """[start of ``first``, end of ``last``) for hourly keys."""
        return (
            self.hourly.time_window_for_partition_key(first).start,
            self.hourly.time_window_for_partition_key(last).end,
        )


# features at hour t read the candles of the LOOKBACK_HOURS hours ending with t
features_lookback = TimeWindowPartitionMapping(start_offset=-(LOOKBACK_HOURS - 1))
# the models of day D read the features of the MAX_TRAINING_DAYS days ending with D
training_window = TimeWindowPartitionMapping(start_offset=-(MAX_TRAINING_DAYS - 1))
# forecasts at any hour of day D use the models trained through the end of day D - 1
previous_day_model = TimeWindowPartitionMapping(start_offset=-24, end_offset=-24)
# forecasts made on day D are scored with the candles of D and D + 1 (horizons up to 24 h)
realised_next_day = TimeWindowPartitionMapping(start_offset=0, end_offset=1)
# the backtest of day D trades its hours on the forecasts made up to 24 h before each, and
# charges the change from the position of the hour before: forecasts from D - 2 through D
backtest_forecasts = TimeWindowPartitionMapping(start_offset=-2, end_offset=0)
# ... and earns the candles of D, each from the close before it: candles from D - 1 through D
backtest_candles = TimeWindowPartitionMapping(start_offset=-1, end_offset=0)
