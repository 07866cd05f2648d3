"""Partition mappings reach the partitions the design says."""

from datetime import UTC, datetime, timedelta

from cryptify_pipeline.partitions import Partitions, previous_day_model
from cryptify_pipeline.settings import DEFAULT_START

HOUR = timedelta(hours=1)
DAY = datetime(2025, 4, 10, tzinfo=UTC)
PARTITIONS = Partitions.starting(DEFAULT_START)


def test_every_hour_of_day_d_maps_to_the_model_of_day_d_minus_1():
    for hour in range(24):
        key = (DAY + hour * HOUR).strftime("%Y-%m-%d-%H:%M")
        subset = PARTITIONS.hourly.empty_subset().with_partition_keys([key])
        upstream = previous_day_model.get_upstream_mapped_partitions_result_for_partitions(
            subset, PARTITIONS.hourly, PARTITIONS.daily
        ).partitions_subset
        assert list(upstream.get_partition_keys()) == ["2025-04-09"], key
