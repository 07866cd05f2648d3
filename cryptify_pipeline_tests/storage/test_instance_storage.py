"""The instance storage's event log: a single-run backfill's planned materialisations are
stored in bulk, and read back exactly as dagster-postgres's one-by-one writes would be. Its run
storage tags each run with the process executing it."""

import os

import pytest
from dagster import (
    AssetKey,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    HourlyPartitionsDefinition,
    MaterializeResult,
    PartitionKeyRange,
    asset,
    materialize,
)
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from sqlalchemy import text

from cryptify_pipeline.run_tags import range_tags
from cryptify_pipeline.storage.run_process import RUN_PROCESS_TAG, RunProcess
from cryptify_pipeline_tests.support.instances import own_instance

HOURS = HourlyPartitionsDefinition(start_date="2025-01-01-00:00", timezone="UTC")
FIRST, LAST = "2025-01-01-00:00", "2025-01-02-23:00"
KEYS = HOURS.get_partition_keys_in_range(PartitionKeyRange(FIRST, LAST))


@asset(partitions_def=HOURS, backfill_policy=BackfillPolicy.single_run())
def hourly() -> MaterializeResult:
    return MaterializeResult()


@asset(partitions_def=HOURS, backfill_policy=BackfillPolicy.single_run())
def broken() -> MaterializeResult:
    raise ValueError("broken on purpose")


@pytest.fixture
def instance():
    with own_instance("planned") as instance:
        yield instance


def planned(instance: DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(asset, partition) of the run's planned materialisations, in storage order."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED, ascending=True
    ).records
    return [
        (
            record.asset_key.to_user_string(),
            record.event_log_entry.get_dagster_event().partition,
        )
        for record in records
    ]


def transactions(instance: DagsterInstance, run_id: str) -> int:
    """How many transactions wrote the run's planned materialisations."""
    with instance.event_log_storage.index_connection() as connection:
        return connection.execute(
            text(
                "SELECT count(DISTINCT xmin::text) FROM event_logs"
                " WHERE run_id = :run AND dagster_event_type = 'ASSET_MATERIALIZATION_PLANNED'"
            ),
            {"run": run_id},
        ).scalar_one()


def test_a_backfills_planned_partitions_are_stored_in_one_insert_as_dagster_stores_them(
    instance, monkeypatch
):
    batched = materialize([hourly], instance=instance, tags=range_tags(FIRST, LAST))
    # dagster-postgres's own path: the planned events stored one by one
    monkeypatch.setenv("DAGSTER_EMIT_PLANNED_EVENTS_INDIVIDUALLY", "1")
    one_by_one = materialize([hourly], instance=instance, tags=range_tags(FIRST, LAST))

    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "1000"  # the package's default
    assert transactions(instance, batched.run_id) == 1
    assert transactions(instance, one_by_one.run_id) == len(KEYS) == 48
    expected = [("hourly", key) for key in KEYS]
    assert planned(instance, batched.run_id) == expected
    assert planned(instance, one_by_one.run_id) == expected


def test_a_failed_backfill_marks_every_partition_failed_and_the_asset_row_names_the_run(instance):
    result = materialize(
        [broken], instance=instance, tags=range_tags(FIRST, LAST), raise_on_error=False
    )
    assert not result.success
    record = instance.get_asset_records([AssetKey("broken")])[0]
    assert record.asset_entry.last_run_id == result.run_id
    status = get_and_update_asset_status_cache_value(instance, AssetKey("broken"), HOURS)
    failed = status.deserialize_failed_partition_subsets(HOURS)
    assert sorted(failed.get_partition_keys()) == KEYS


def test_a_run_is_tagged_with_the_process_that_executes_it(instance):
    result = materialize([hourly], instance=instance, partition_key=FIRST)
    tag = instance.get_run_by_id(result.run_id).tags[RUN_PROCESS_TAG]
    process = RunProcess.from_tag(tag)
    assert process == RunProcess.current() and process.is_local and not process.is_gone()
    started = instance.get_records_for_run(result.run_id, of_type=DagsterEventType.RUN_START)
    assert started.records[0].event_log_entry.dagster_event.pid == process.pid
