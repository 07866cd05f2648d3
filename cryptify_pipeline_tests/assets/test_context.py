"""The context assets (open interest, funding, equity index) through real Dagster runs on
Postgres: the sample market's context, a failing source as a warning that keeps what is
stored, and a source returning less than is stored."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import materialize

from cryptify_pipeline.market.sample import (
    sample_equity_index,
    sample_funding_rates,
    sample_open_interest,
)
from cryptify_pipeline.resources import MarketData
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.pipeline import SYMBOLS, range_tags

ASSETS = pipeline.assets()
CONTEXT = [ASSETS[name] for name in ("open_interest", "funding_rates", "equity_index")]
CHECKS = [check for name in ("open_interest", "funding_rates", "equity_index")
          for check in pipeline.checks(asset=name)]  # fmt: skip
# Saturday and Sunday: CME's equity futures trade only from Sunday 23:00
FIRST, LAST = "2025-03-01-00:00", "2025-03-02-23:00"
START, END = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 3, tzinfo=UTC)


def collect(instance, schema, market: MarketData, *, with_checks=False):
    return materialize(
        [*CONTEXT, *(CHECKS if with_checks else [])],
        instance=instance,
        resources=pipeline.resources(schema, market),
        raise_on_error=False,
        tags=range_tags(FIRST, LAST),
    )


def table(schema: str, name: str) -> pd.DataFrame:
    key = "index_symbol" if name == "equity_index" else "symbol"
    rows = run_sql(f'SELECT * FROM "{schema}"."{name}" ORDER BY {key}, ts')
    columns = [r[0] for r in run_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s ORDER BY ordinal_position", (schema, name),
    )]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def metadata(result, name: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(name)[0].metadata.items()}


def test_sample_context_is_stored_complete_and_checked(instance, schema):
    result = collect(instance, schema, pipeline.sample_market(), with_checks=True)
    assert result.success
    oi = table(schema, "open_interest")
    assert len(oi) == 2 * 48
    expected = sample_open_interest("BTC/USDT", START, END)
    assert (
        oi[oi["symbol"] == "BTC/USDT"]["open_interest"].tolist()
        == expected["open_interest"].tolist()
    )
    funding = table(schema, "funding_rates")
    assert len(funding) == 2 * 6
    assert (
        funding["funding_rate"].tolist()[:6]
        == sample_funding_rates(SYMBOLS[0], START, END)["funding_rate"].tolist()
    )
    index = table(schema, "equity_index")
    assert len(index) == 48 and index["market_open"].sum() == 1  # Sunday 23:00 only
    assert index["close"].isna().sum() == 47
    traded = sample_equity_index("ES=F", START, END).dropna()
    assert index["close"].dropna().tolist() == traded["close"].tolist()
    assert metadata(result, "open_interest")["source_status"] == "ok"
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"open_interest_complete", "funding_rates_complete",
                                "equity_index_complete"}  # fmt: skip
    for evaluation in evaluations.values():  # the last days (before now) are not collected
        assert evaluation.metadata["this_run_missing_count"].value == 0, evaluation.metadata
        assert evaluation.metadata["last_days_missing_count"].value > 0
        assert not evaluation.passed


def test_a_failing_source_is_a_warning_and_keeps_what_is_stored(instance, schema, tmp_path):
    assert collect(instance, schema, pipeline.sample_market()).success
    before = table(schema, "equity_index")
    broken = pipeline.sample_market(equity_index_source_setting=f"file:{tmp_path / 'absent'}")
    result = collect(instance, schema, broken, with_checks=True)
    assert result.success  # the collection goes on
    found = metadata(result, "equity_index")
    assert found["source_status"] == "failed"
    assert "no file for ES=F" in found["reason"] and found["kept_stored_rows"] == 48
    pd.testing.assert_frame_equal(table(schema, "equity_index"), before)
    # with nothing stored, nothing is written and the check names the missing hours
    fresh = f"{schema}_fresh"
    try:
        empty = collect(instance, fresh, broken, with_checks=True)
        assert empty.success and metadata(empty, "equity_index")["rows"] == 0
        check = next(
            e
            for e in empty.get_asset_check_evaluations()
            if e.check_name == "equity_index_complete"
        )
        assert not check.passed and check.metadata["this_run_missing_count"].value == 48
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{fresh}" CASCADE')


def test_a_source_returning_less_keeps_the_stored_rows(instance, schema, tmp_path):
    assert collect(instance, schema, pipeline.sample_market()).success
    before = table(schema, "equity_index")
    # a file without the Sunday 23:00 bar the sample stored
    (tmp_path / "ES=F.csv").write_text("ts,open,high,low,close,volume\n")
    files = pipeline.sample_market(equity_index_source_setting=f"file:{tmp_path}")
    result = collect(instance, schema, files)
    assert result.success
    assert metadata(result, "equity_index")["kept_stored_rows"] == 1
    after = table(schema, "equity_index")
    kept = after[after["market_open"]]
    assert kept["close"].tolist() == before[before["market_open"]]["close"].tolist()
    assert set(after[~after["market_open"]]["source"]) == {"file"}


def thanksgiving_week_bars() -> list[datetime]:
    """The hours a real source has bars for in Thanksgiving week 2025 (a past week, whatever the
    clock says), spelled out on Chicago's clock: Sunday 23rd 17:00 to Friday 28th 12:15, shut
    daily 16:00-17:00, halted on Thursday 12:00-17:00."""
    chicago = ZoneInfo("America/Chicago")
    hour = datetime(2025, 11, 23, 17, tzinfo=chicago)
    last = datetime(2025, 11, 28, 12, tzinfo=chicago)
    bars = []
    while hour <= last:
        halted = hour.day == 27 and 12 <= hour.hour < 17
        if hour.hour != 16 and not halted:
            bars.append(hour.astimezone(UTC))
        hour += timedelta(hours=1)
    return bars


def test_a_real_source_over_thanksgiving_week_is_complete(instance, schema, tmp_path):
    bars = thanksgiving_week_bars()
    (tmp_path / "ES=F.csv").write_text(
        "ts,open,high,low,close,volume\n"
        + "".join(f"{ts:%Y-%m-%dT%H:%M:%SZ},6800,6810,6790,6805,1000\n" for ts in bars)
    )
    # gap_repair_days=0: the check looks at this run's hours only, not at the days before now
    files = pipeline.sample_market(equity_index_source_setting=f"file:{tmp_path}",
                                   gap_repair_days=0)  # fmt: skip
    result = materialize(
        [ASSETS["equity_index"], *pipeline.checks(asset="equity_index")],
        instance=instance,
        resources=pipeline.resources(schema, files),
        raise_on_error=False,
        tags=range_tags("2025-11-23-00:00", "2025-11-29-23:00"),
    )
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed, check.metadata
    assert check.metadata["this_run_missing_count"].value == 0
    stored = table(schema, "equity_index")
    assert len(stored) == 7 * 24
    assert stored.loc[stored["market_open"], "ts"].tolist() == bars
    # Thursday's halt (18:00-22:00 UTC) and Friday after 12:15 Chicago are shut, not missing
    holiday = stored[(stored["ts"] >= datetime(2025, 11, 27, 18, tzinfo=UTC))
                     & (stored["ts"] < datetime(2025, 11, 27, 23, tzinfo=UTC))]  # fmt: skip
    assert len(holiday) == 5 and not holiday["market_open"].any()


def test_context_turned_off_writes_nothing_and_says_so(instance, schema):
    off = pipeline.sample_market(context_source="none", equity_index_source_setting="none")
    result = collect(instance, schema, off, with_checks=True)
    assert result.success
    assert metadata(result, "open_interest")["source_status"] == "disabled"
    assert metadata(result, "open_interest")["reason"] == "CRYPTIFY_CONTEXT_SOURCE=none"
    assert all(e.passed for e in result.get_asset_check_evaluations())
