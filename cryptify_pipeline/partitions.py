"""Partition definitions. A partition exists once its hour (or day) has closed."""

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition

from cryptify_pipeline.settings import get_settings

_start = get_settings().start

hourly_partitions = HourlyPartitionsDefinition(start_date=_start, timezone="UTC")
daily_partitions = DailyPartitionsDefinition(start_date=_start.replace(hour=0), timezone="UTC")
