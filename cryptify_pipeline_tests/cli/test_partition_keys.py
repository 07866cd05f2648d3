"""Partition keys of the wrong kind, out of range or reversed are refused with the keys that
would do; the right ones pass."""

import pytest

from cryptify_pipeline.cli.partition_keys import (
    PartitionKeyError,
    TimePartitions,
    check_key,
    check_range,
)
from cryptify_pipeline.hours import DAY_KEY_FORMAT, HOUR_KEY_FORMAT

HOURLY = TimePartitions(
    "collect_job", HOUR_KEY_FORMAT, "2025-01-01-00:00", "2026-11-28-17:00", "2025-01-01-01:00"
)
DAILY = TimePartitions("train_job", DAY_KEY_FORMAT, "2025-01-01", "2026-11-27", "2025-01-02")


def test_keys_of_the_partitions_pass():
    for key in ("2025-01-01-00:00", "2026-01-31-23:00", "2026-11-28-17:00"):
        check_key([HOURLY], key)
    for key in ("2025-01-01", "2026-11-27"):
        check_key([DAILY], key)
    check_range([HOURLY], "2025-01-05-00:00", "2025-01-05-00:00")
    check_range([DAILY], "2025-01-05", "2026-11-27")


@pytest.mark.parametrize(
    ("partitions", "key", "problem"),
    [
        (HOURLY, "2026-11-27", "'2026-11-27' is not a partition key of collect_job, which is "
         "partitioned by hour (keys like 2026-11-28-17:00)"),
        (DAILY, "2026-11-27-13:00", "'2026-11-27-13:00' is not a partition key of train_job, "
         "which is partitioned by day (keys like 2026-11-27)"),
        (HOURLY, "yesterday", "'yesterday' is not a partition key of collect_job"),
        (HOURLY, "2025-1-5-10:00", "'2025-1-5-10:00' is not a partition key"),
        (HOURLY, "2025-01-05-10:30", "'2025-01-05-10:30' is not a partition key"),
        (HOURLY, "2025-02-30-10:00", "'2025-02-30-10:00' is not a partition key"),
        (HOURLY, "", "'' is not a partition key"),
        (HOURLY, "2026-11-28-18:00", "2026-11-28-18:00 is in the future: the newest partition "
         "of collect_job is 2026-11-28-17:00 (a partition exists once its hour has closed)"),
        (DAILY, "2026-11-28", "2026-11-28 is in the future: the newest partition of train_job "
         "is 2026-11-27 (a partition exists once its day has closed)"),
        (DAILY, "2024-12-31", "2024-12-31 is before the first partition of train_job, "
         "2025-01-01 (CRYPTIFY_START)"),
    ],
)  # fmt: skip
def test_a_key_of_the_wrong_kind_or_out_of_range_is_refused(partitions, key, problem):
    with pytest.raises(PartitionKeyError) as refused:
        check_key([partitions], key)
    assert str(refused.value).startswith(problem)


def test_ranges_must_be_in_order_of_the_right_kind_and_exist():
    with pytest.raises(PartitionKeyError, match=r"^the range is reversed: 2025-01-06-00:00 is "):
        check_range([HOURLY], "2025-01-06-00:00", "2025-01-05-00:00")
    with pytest.raises(PartitionKeyError, match="not a partition key of train_job"):
        check_range([DAILY], "2025-01-05", "2025-01-06-00:00")
    with pytest.raises(PartitionKeyError, match="in the future"):
        check_range([DAILY], "2026-11-01", "2027-01-01")
    # every target must have the keys: a daily job in an hourly backfill is refused
    with pytest.raises(PartitionKeyError, match="train_job, which is partitioned by day"):
        check_range([HOURLY, DAILY], "2025-01-05-00:00", "2025-01-05-05:00")


def test_the_cadence_is_that_of_the_first_two_keys():
    every_six_hours = TimePartitions(
        "six_hourly", HOUR_KEY_FORMAT, "2025-01-01-00:00", "2026-11-28-12:00", "2025-01-01-06:00"
    )
    check_key([every_six_hours], "2025-03-01-18:00")
    with pytest.raises(PartitionKeyError, match="not a partition key of six_hourly"):
        check_key([every_six_hours], "2025-03-01-17:00")
    monthly = TimePartitions("monthly", "%Y-%m", "2025-01", "2026-10", "2025-02")
    check_key([monthly], "2025-03")  # months differ in length: the format is the cadence


def test_partitions_that_have_not_started_have_no_keys():
    empty = TimePartitions("collect_job", HOUR_KEY_FORMAT, None, None)
    with pytest.raises(PartitionKeyError, match="has no partitions yet"):
        check_key([empty], "2025-01-05-10:00")
