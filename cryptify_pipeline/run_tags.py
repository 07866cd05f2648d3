"""What a run's tags say about the partitions it covered: one place for sensors, checks and the
operator client."""

from collections.abc import Mapping

from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)


def run_partition_range(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The (first, last) partition key a run covered; None if unpartitioned."""
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG], tags[PARTITION_NAME_TAG]
    if ASSET_PARTITION_RANGE_START_TAG in tags and ASSET_PARTITION_RANGE_END_TAG in tags:
        return tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]
    return None


def describe_partitions(tags: Mapping[str, str]) -> str | None:
    """``key`` or ``first...last`` for display; None if unpartitioned."""
    covered = run_partition_range(tags)
    return None if covered is None else "...".join(dict.fromkeys(covered))
