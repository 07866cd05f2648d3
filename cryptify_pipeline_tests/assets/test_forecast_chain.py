"""The whole chain as real Dagster runs on Postgres: candles to leaderboard."""

from datetime import UTC, datetime, timedelta

import pytest
from dagster import materialize

from cryptify_pipeline.hours import hour_key, hours_between
from cryptify_pipeline.ml.models import PRICE, models_of
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.instances import own_instance, report
from cryptify_pipeline_tests.support.pipeline import range_tags

ASSETS_BY_NAME = pipeline.assets()
ASSETS = list(ASSETS_BY_NAME.values())
CONTEXT = ["open_interest", "funding_rates", "equity_index"]
# the models asset trains the price zoo unless told otherwise (the lstm among them)
MODELS = len(models_of(PRICE))


def run(instance, schema, selection, first=None, last=None, config=None):
    return materialize(
        ASSETS,
        selection=selection,
        instance=instance,
        tags=range_tags(first, last) if first else None,
        run_config=config,
        resources=pipeline.resources(schema),
        raise_on_error=False,
    )


def failure(result) -> str:
    return str(result.get_step_failure_events()[0].step_failure_data.error)


@pytest.fixture(scope="module")
def chain(instance):
    schema = "test_chain_" + datetime.now(UTC).strftime("%H%M%S%f")
    fast = {"ops": {"models": {"config": {"training_days": 14, "horizons": [6, 24]}}}}
    steps = [
        # a few hours of context, so every asset is written (features work without it)
        run(instance, schema, CONTEXT, "2025-02-05-00:00", "2025-02-05-12:00"),
        # collected up to noon on 5 Feb: the forecasts of 4 Feb are not scorable yet
        run(instance, schema, ["candles", "features"], "2025-01-01-00:00", "2025-02-05-12:00"),
        run(instance, schema, ["models"], "2025-02-01", "2025-02-03", fast),
        run(instance, schema, ["predictions"], "2025-02-02-00:00", "2025-02-04-23:00"),
        run(instance, schema, ["forecast_metrics"], "2025-02-02", "2025-02-03"),
        run(instance, schema, ["leaderboard"]),
        run(instance, schema, ["backtest"], "2025-02-02", "2025-02-04"),
        run(instance, schema, ["backtest_summary"]),
    ]
    yield schema, steps
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_every_stage_succeeds_and_writes(chain):
    schema, steps = chain
    assert [step.success for step in steps] == [True] * 8, [
        failure(s) for s in steps if not s.success
    ]
    count = lambda table: run_sql(f'SELECT count(*) FROM "{schema}".{table}')[0][0]  # noqa: E731
    assert count("models") == 3 * 2 * 2 * MODELS  # days x symbols x horizons x models
    assert count("predictions") == 72 * 2 * 2 * MODELS  # hours x symbols x horizons x models
    assert count("forecast_metrics") == 2 * 2 * 2 * MODELS
    # 14 days hold out ~66 hours: 11 windows of 6 h, too few for 90%; no interval is claimed
    intervals = run_sql(
        "SELECT DISTINCT interval_level, interval_calibrated, interval_low IS NULL"
        f' FROM "{schema}".models'
    )
    assert intervals == [(0.9, False, True)]


def test_every_column_of_every_asset_is_described(chain):
    _, steps = chain
    written = {}
    for step in steps:
        for event in step.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            # a many-partition run records the schema on its newest partition only
            if "dagster/column_schema" in materialization.metadata:
                schema = materialization.metadata["dagster/column_schema"].schema
                written[materialization.asset_key.to_user_string()] = schema.columns
    assert set(written) == set(ASSETS_BY_NAME)
    for name, columns in written.items():
        undescribed = [column.name for column in columns if not column.description]
        assert not undescribed, (name, undescribed)
        described = ASSETS_BY_NAME[name].metadata_by_key[ASSETS_BY_NAME[name].key]
        # and no description of a column the table does not have
        assert set(described["column_descriptions"]) == {c.name for c in columns}, name


def test_forecasts_use_the_previous_days_models(chain):
    schema, _ = chain
    # identical fits (a constant baseline) have identical bytes on different days, so the
    # model is found by its full key, and its hash must match
    pairs = run_sql(
        f"SELECT DISTINCT date_trunc('day', p.ts), m.day FROM \"{schema}\".predictions p"
        f' JOIN "{schema}".models m ON m.day = p.model_day AND m.symbol = p.symbol'
        " AND m.model = p.model AND m.horizon_h = p.horizon_h AND m.sha256 = p.model_sha256"
        " ORDER BY 1"
    )
    assert [(made.date(), model.date()) for made, model in pairs] == [
        (datetime(2025, 2, d).date(), datetime(2025, 2, d - 1).date()) for d in (2, 3, 4)
    ]


def test_leaderboard_puts_baselines_beside_models(chain):
    schema, steps = chain
    board = run_sql(
        f'SELECT model, "window", "rank", skill_vs_zero, n FROM "{schema}".leaderboard'
        ' WHERE symbol = \'BTC/USDT\' AND horizon_h = 6 ORDER BY "window", "rank"'
    )
    models_all = {row[0] for row in board if row[1] == "all"}
    assert models_all == {
        "zero_return", "drift", "linear", "ridge", "hist_gbm", "mlp", "xgboost", "lstm"
    }  # fmt: skip
    zero = next(row for row in board if row[0] == "zero_return")
    assert zero[3] == 0.0 and zero[4] == 48
    # 2 days scored: 48 hours, fewer than 30 windows at either horizon, so nothing is tested
    # and every row says why
    untested = run_sql(
        f'SELECT horizon_h, dm_note, count(*) FROM "{schema}".leaderboard'
        " WHERE dm_stat IS NULL AND dm_p_value IS NULL GROUP BY 1, 2 ORDER BY 1"
    )
    too_few = "too few forecasts to test: 48 scored hour(s), {} independent {}-hour windows; "
    assert untested == [
        (6, too_few.format("8.0", 6) + "the test needs 30 (180 hours)", 2 * 2 * MODELS),
        (24, too_few.format("2.0", 24) + "the test needs 30 (720 hours)", 2 * 2 * MODELS),
    ]  # symbols x windows x models, at each horizon
    note_type = run_sql(
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'leaderboard' AND column_name = 'dm_note'",
        (schema,),
    )
    assert note_type == [("text",)]
    metadata = steps[5].asset_materializations_for_node("leaderboard")[0].metadata
    assert "| symbol" in metadata["leaderboard (30d)"].value
    verdict = metadata["better than zero?"].value.splitlines()
    assert verdict[0] == (
        "**No model could be tested against the zero forecast (30d): too few forecasts scored.**"
    )
    assert f"- BTC/USDT 6h: {too_few.format('8.0', 6)}the test needs 30 (180 hours)" in verdict
    plot = metadata["last 168 hours"].value
    assert plot.startswith("![6h forecasts of the last 168 hours, each symbol's best model]")


def test_missing_model_day_fails_naming_it(chain, instance):
    schema, _ = chain
    result = run(instance, schema, ["predictions"], "2025-02-05-00:00", "2025-02-05-01:00")
    assert not result.success
    assert "no models trained through the end of 2025-02-04" in failure(result)


def test_scoring_waits_for_the_next_day_to_close(chain, instance):
    schema, _ = chain
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    result = run(instance, schema, ["forecast_metrics"], yesterday, yesterday)
    assert not result.success
    assert "can be scored once the next day has closed" in failure(result)


def test_rescoring_keeps_every_forecast(chain, instance):
    schema, _ = chain
    before = run_sql(f'SELECT count(*) FROM "{schema}".predictions')
    assert run(instance, schema, ["forecast_metrics"], "2025-02-02", "2025-02-02").success
    assert run_sql(f'SELECT count(*) FROM "{schema}".predictions') == before


def test_scoring_fails_naming_target_candles_not_collected_then_scores_once_they_are(chain):
    schema, _ = chain
    # an instance of its own: the session's records other tests' candles, in other schemas
    with own_instance("late_candles") as instance:
        collected = hours_between(
            datetime(2025, 2, 4, tzinfo=UTC), datetime(2025, 2, 5, 12, tzinfo=UTC)
        )
        report(instance, "candles", [hour_key(hour) for hour in collected])
        # the forecasts of 4 Feb are scored against candles up to 23:00 on 5 Feb
        waiting = run(instance, schema, ["forecast_metrics"], "2025-02-04", "2025-02-04")
        assert not waiting.success
        assert (
            "11 candle hour(s) these forecasts are scored against have not been collected yet: "
            "2025-02-05-13:00..2025-02-05-23:00" in failure(waiting)
        )
        late = run(
            instance, schema, ["candles", "features"], "2025-02-05-13:00", "2025-02-05-23:00"
        )
        assert late.success
        assert run(instance, schema, ["forecast_metrics"], "2025-02-04", "2025-02-04").success
    assert run_sql(
        f"SELECT sum(n) FROM \"{schema}\".forecast_metrics WHERE day = '2025-02-04'"
        " AND model = 'zero_return'"
    ) == [(24 * 2 * 2,)]  # hours x symbols x horizons


BACKTEST_ROWS = (
    "SELECT day, symbol, model, horizon_h, rule, sides, fee_bps, slippage_bps, costs,"
    ' strategy_return_day, position::text, strategy_return::text FROM "{}".backtest'
    " ORDER BY day, symbol, model, horizon_h, rule"
)


def test_backtest_trades_every_model_and_rule_on_earlier_forecasts_only(chain):
    schema, steps = chain
    rows = run_sql(BACKTEST_ROWS.format(schema))
    assert len(rows) == 3 * 2 * 2 * MODELS * 3  # days x symbols x horizons x models x rules
    assert {(r[5], r[6], r[7]) for r in rows} == {("long_short", 10.0, 5.0)}
    # the zero forecast never trades: no cost, no return
    zero = [r for r in rows if r[2] == "zero_return"]
    assert {(r[8], r[9]) for r in zero} == {(0.0, 0.0)}
    # the first forecasts were made at 00:00 on 2 Feb: nothing is held in that hour, and the
    # next holds one forecast's share, 1/h of the capital at most
    first_day = run_sql(
        "SELECT horizon_h, (position->>0)::float8, abs((position->>1)::float8)"
        f" FROM \"{schema}\".backtest WHERE day = '2025-02-02'"
    )
    assert {r[1] for r in first_day} == {0.0}
    assert all(r[2] in (0.0, 1 / r[0]) for r in first_day)
    traded = run_sql(
        f"SELECT count(*) FROM \"{schema}\".backtest WHERE costs > 0 AND model = 'linear'"
    )
    assert traded[0][0] > 0


def test_backtest_summary_shows_the_windows_table_and_equity_curves(chain):
    schema, steps = chain
    summary = run_sql(
        f'SELECT "window", count(*), min(hours), max(hours), count(sharpe_p_vs_zero),'
        f' min(test_note) FROM "{schema}".backtest_summary GROUP BY 1 ORDER BY 1'
    )
    too_few = "too few hours to test: 72 hour(s), 12.0 independent 6-hour windows; the test "
    assert [row[:5] for row in summary] == [
        ("30d", 2 * 2 * MODELS * 3, 72, 72, 0),
        ("all", 2 * 2 * MODELS * 3, 72, 72, 0),
    ]
    assert summary[0][5] == too_few + "needs 30 (180 hours)"
    metadata = steps[7].asset_materializations_for_node("backtest_summary")[0].metadata
    assert "| symbol" in metadata["sign rule (30d)"].value
    plot = metadata["equity (30d)"].value
    assert plot.startswith(
        "![24h forecasts traded by the sign rule, last 30 days, after costs](data:image/png"
    )


def test_backtesting_a_day_again_writes_the_same_rows(chain, instance):
    schema, _ = chain
    before = run_sql(BACKTEST_ROWS.format(schema))
    long_only = {"ops": {"backtest": {"config": {"long_only": True, "fee_bps": 2.5}}}}
    assert run(instance, schema, ["backtest"], "2025-02-03", "2025-02-03", long_only).success
    changed = run_sql(BACKTEST_ROWS.format(schema))
    assert len(changed) == len(before)
    assert {(r[5], r[6]) for r in changed if str(r[0])[:10] == "2025-02-03"} == {("long_only", 2.5)}
    assert run(instance, schema, ["backtest"], "2025-02-03", "2025-02-03").success
    assert run(instance, schema, ["backtest"], "2025-02-03", "2025-02-03").success
    assert run_sql(BACKTEST_ROWS.format(schema)) == before


def test_backtest_waits_for_the_day_to_close(chain, instance):
    schema, _ = chain
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    result = run(instance, schema, ["backtest"], today, today)
    assert not result.success
    assert "can be backtested once they have closed" in failure(result)
