"""A single-run backfill records its markdown details once, on its newest partition; every
partition keeps the run's summary; a one-partition run keeps both."""

from dagster import materialize

from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.pipeline import range_tags

ASSETS = pipeline.assets()
FIRST, LAST = "2025-03-01-00:00", "2025-03-01-23:00"


def metadata_by_partition(result, asset: str) -> dict[str, dict]:
    return {
        m.partition: m.metadata for m in result.asset_materializations_for_node(asset)
    }  # fmt: skip


def test_a_backfill_records_details_on_its_newest_partition_only(instance, schema):
    result = materialize(
        list(ASSETS.values()),
        selection=["candles", "features"],
        instance=instance,
        resources=pipeline.resources(schema),
        tags=range_tags(FIRST, LAST),
    )
    assert result.success
    for asset, summary, details in [
        ("candles", {"rows", "first_ts", "last_ts", "missing_candles", "source"}, {"preview"}),
        ("features", {"rows", "rows_with_nan_features", "first_ts", "last_ts"}, {"preview"}),
    ]:
        recorded = metadata_by_partition(result, asset)
        assert len(recorded) == 24, asset
        with_details = [key for key, metadata in recorded.items() if details <= set(metadata)]
        assert with_details == [LAST], asset
        assert all(summary <= set(metadata) for metadata in recorded.values()), asset
        assert all(metadata["rows"].value == 48 for metadata in recorded.values()), asset
        assert "| ts" in recorded[LAST]["preview"].value
        assert "2025-03-01 23:00:00+00:00" in recorded[LAST]["preview"].value


def test_a_one_partition_run_records_summary_and_details(instance, schema):
    result = materialize(
        list(ASSETS.values()),
        selection=["candles"],
        instance=instance,
        resources=pipeline.resources(schema),
        partition_key=LAST,
    )
    assert result.success
    (metadata,) = metadata_by_partition(result, "candles").values()
    assert {"rows", "preview", "missing"} <= set(metadata)


def test_the_context_assets_record_details_on_the_newest_partition_only(instance, schema):
    context = ["open_interest", "funding_rates", "equity_index"]
    result = materialize(
        [ASSETS[name] for name in context],
        instance=instance,
        resources=pipeline.resources(schema),
        tags=range_tags("2025-03-01-18:00", LAST),
    )
    assert result.success
    for asset in context:
        recorded = metadata_by_partition(result, asset)
        assert len(recorded) == 6, asset
        with_details = [key for key, m in recorded.items() if {"missing", "preview"} <= set(m)]
        assert with_details == [LAST], asset
        assert all(
            {"source_status", "rows", "missing_hours"} <= set(m) for m in recorded.values()
        ), asset
