"""Partition definitions and the mappings between them.

A partition exists once its hour (or day) has closed. Mapping offsets count in *downstream*
partitions: from hourly predictions to daily models, -24 reaches the previous day.
"""

from dagster import (
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    TimeWindowPartitionMapping,
)

from cryptify_pipeline.ml.features import LOOKBACK_HOURS
from cryptify_pipeline.settings import get_settings

_start = get_settings().start

# the partition keys' formats (Dagster's defaults for hourly and daily partitions)
HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"
DAY_KEY_FORMAT = "%Y-%m-%d"

hourly_partitions = HourlyPartitionsDefinition(start_date=_start, timezone="UTC")
daily_partitions = DailyPartitionsDefinition(start_date=_start.replace(hour=0), timezone="UTC")

MAX_TRAINING_DAYS = 3650

# features at hour t read the candles of the LOOKBACK_HOURS hours ending with t
features_lookback = TimeWindowPartitionMapping(start_offset=-(LOOKBACK_HOURS - 1))
# the models of day D read the features of the MAX_TRAINING_DAYS days ending with D
training_window = TimeWindowPartitionMapping(start_offset=-(MAX_TRAINING_DAYS - 1))
# forecasts at any hour of day D use the models trained through the end of day D - 1
previous_day_model = TimeWindowPartitionMapping(start_offset=-24, end_offset=-24)
# forecasts made on day D are scored with the candles of D and D + 1 (horizons up to 24 h)
realised_next_day = TimeWindowPartitionMapping(start_offset=0, end_offset=1)
