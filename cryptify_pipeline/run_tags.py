"""Run tags: the only module that imports Dagster's tag constants, and the project's own tags.

What a run's tags say about the partitions it covered serves the sensors, the checks, the
bootstrap and the operator client alike.
"""

from collections.abc import Mapping

from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    MAX_RUNTIME_SECONDS_TAG,
    PARTITION_NAME_TAG,
)

__all__ = [
    "JOB_TAG",
    "MAX_RUNTIME_SECONDS_TAG",
    "PARTITION_NAME_TAG",
    "TRIGGER_TAG",
    "describe_partitions",
    "range_tags",
    "run_partition_range",
]

# the job name is not a run tag; the run queue limits runs per value of this one
JOB_TAG = "cryptify/job"
# what started a run outside a schedule or sensor: bootstrap, gap_repair, cli, ...
TRIGGER_TAG = "cryptify/trigger"


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags of one run over the partitions ``first``..``last`` (a single-run backfill)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


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
