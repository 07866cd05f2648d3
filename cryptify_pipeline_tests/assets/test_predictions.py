"""The attack on the models table: whoever can write it cannot make a forecast run their code
or use another model.

The models are trained by the real ``models`` asset into Postgres; each test rewrites one row
as an attacker with write access to the table would, runs ``predictions`` as Dagster runs it,
and puts the row back.
"""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg2
import pytest
from dagster import materialize

from cryptify_pipeline.ml.artifacts import signature
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.hostile_models import (
    pickle_payload,
    runs_when_deserialised,
    skops_payload,
)
from cryptify_pipeline_tests.support.pipeline import MODEL_SIGNING_KEY, range_tags

ASSETS = list(pipeline.assets().values())
MODEL_DAY = "2025-01-24"
MODEL_DAY_START = datetime(2025, 1, 24, tzinfo=UTC)
HOURS = ("2025-01-25-00:00", "2025-01-25-01:00")
TRAIN = {"training_days": 7, "horizons": [6], "models": ["zero_return", "linear", "hist_gbm"]}
TRAIN_CONFIG = {"ops": {"models": {"config": TRAIN}}}
LINEAR_BTC = {"symbol": "BTC/USDT", "model": "linear"}
NAMED = "linear BTC/USDT 6h of 2025-01-24"
REFUSED = "signature does not verify"


def run(instance, schema, selection, first, last, config=None):
    return materialize(
        ASSETS, selection=selection, instance=instance, tags=range_tags(first, last),
        run_config=config, resources=pipeline.resources(schema), raise_on_error=False,
    )  # fmt: skip


def failure(result) -> str:
    return str(result.get_step_failure_events()[0].step_failure_data.error)


@pytest.fixture(scope="module")
def trained(instance) -> Iterator[str]:
    """A schema whose models table the real models asset wrote, and whose forecasts work."""
    schema = "test_attack_" + datetime.now(UTC).strftime("%H%M%S%f")
    steps = [
        run(instance, schema, ["candles", "features"], "2025-01-01-00:00", "2025-01-25-23:00"),
        run(instance, schema, ["models"], MODEL_DAY, MODEL_DAY, TRAIN_CONFIG),
        run(instance, schema, ["predictions"], *HOURS),
    ]  # fmt: skip
    assert [step.success for step in steps] == [True] * 3, [
        failure(s) for s in steps if not s.success
    ]
    yield schema
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def row(schema: str, symbol: str, model: str) -> dict:
    """The stored record of a model, as a client of the table reads it."""
    columns = run_sql(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'models' ORDER BY ordinal_position",
        (schema,),
    )
    values = run_sql(
        f'SELECT * FROM "{schema}".models WHERE day = %s AND symbol = %s AND model = %s'
        " AND horizon_h = 6",
        (MODEL_DAY_START, symbol, model),
    )
    assert len(values) == 1
    return dict(zip([name for (name,) in columns], values[0], strict=True))


@contextmanager
def rewritten(schema: str, symbol: str, model: str, **values) -> Iterator[None]:
    """The model's row with ``values`` written into it, as the attacker would; then restored."""
    original = row(schema, symbol, model)
    where = "day = %(day)s AND symbol = %(symbol)s AND model = %(model)s AND horizon_h = 6"
    table = f'"{schema}".models'

    def write(fields: dict) -> None:
        assignments = ", ".join(f'"{name}" = %({name})s' for name in fields)
        params = {**fields, "day": MODEL_DAY_START, "symbol": symbol, "model": model}
        assert (
            len(run_sql(f"UPDATE {table} SET {assignments} WHERE {where} RETURNING 1", params)) == 1
        )

    write({name: _sql_value(value) for name, value in values.items()})
    try:
        yield
    finally:
        write({name: _sql_value(original[name]) for name in values})


def _sql_value(value):
    return psycopg2.Binary(bytes(value)) if isinstance(value, bytes | memoryview) else value


def predictions_in(schema: str) -> list[tuple]:
    return run_sql(
        f'SELECT symbol, model, ts, pred_log_return FROM "{schema}".predictions ORDER BY 1, 2, 3'
    )


def test_a_pickle_written_with_its_hash_is_refused_and_never_runs(trained, instance, tmp_path):
    payload = pickle_payload(tmp_path / "ran")
    before = predictions_in(trained)
    with rewritten(
        trained, **LINEAR_BTC, pipeline=payload, sha256=hashlib.sha256(payload).hexdigest()
    ):
        result = run(instance, trained, ["predictions"], *HOURS)
    assert not result.success
    assert f"{NAMED}: its {REFUSED}" in failure(result)
    assert not (tmp_path / "ran").exists()  # nothing ran
    assert predictions_in(trained) == before  # and nothing was written
    assert runs_when_deserialised(payload, "pickle", tmp_path / "ran")  # though it would have


def test_a_skops_file_of_an_untrusted_type_is_refused_even_when_signed(trained, instance, tmp_path):
    # someone who also holds the key: the loader still builds only the zoo's types
    payload = skops_payload(tmp_path / "ran")
    forged = row(trained, **LINEAR_BTC) | {"pipeline": payload}
    with rewritten(
        trained, **LINEAR_BTC, pipeline=payload, sha256=hashlib.sha256(payload).hexdigest(),
        signature=signature(forged, MODEL_SIGNING_KEY),
    ):  # fmt: skip
        result = run(instance, trained, ["predictions"], *HOURS)
    assert not result.success
    assert f"{NAMED}: refused by the skops loader" in failure(result)
    assert "os.system" in failure(result)
    assert not (tmp_path / "ran").exists()
    assert runs_when_deserialised(payload, "skops", tmp_path / "ran")


def test_a_valid_artifact_signed_with_another_key_is_refused(trained, instance):
    other = SigningKey.generate()
    resigned = signature(row(trained, **LINEAR_BTC), other)
    with rewritten(trained, **LINEAR_BTC, signature=resigned, signing_key_id=other.key_id):
        result = run(instance, trained, ["predictions"], *HOURS)
    assert not result.success
    assert f"{NAMED}: its {REFUSED} under this deployment's model signing key" in failure(result)
    assert f"(id {MODEL_SIGNING_KEY.key_id}; the row names {other.key_id})" in failure(result)


@pytest.mark.parametrize(
    "source",
    [{"symbol": "ETH/USDT", "model": "linear"}, {"symbol": "BTC/USDT", "model": "hist_gbm"}],
    ids=["another symbol", "another model"],
)
def test_a_signed_artifact_moved_to_another_row_is_refused(trained, instance, source):
    moved = {k: row(trained, **source)[k] for k in ("pipeline", "sha256", "signature")}
    with rewritten(trained, **LINEAR_BTC, **moved):
        result = run(instance, trained, ["predictions"], *HOURS)
    assert not result.success
    assert f"{NAMED}: its {REFUSED}" in failure(result)


def test_a_widened_interval_is_refused(trained, instance):
    with rewritten(trained, **LINEAR_BTC, interval_high=50.0):
        result = run(instance, trained, ["predictions"], *HOURS)
    assert f"{NAMED}: its {REFUSED}" in failure(result)


def test_a_changed_interval_level_is_refused(trained, instance):
    # forecasts copy the level: a row claiming 99% for a 90% interval was served
    before = predictions_in(trained)
    with rewritten(trained, **LINEAR_BTC, interval_level=0.99):
        result = run(instance, trained, ["predictions"], *HOURS)
    assert not result.success
    assert f"{NAMED}: its {REFUSED}" in failure(result)
    assert predictions_in(trained) == before


@pytest.mark.parametrize(
    "changed",
    [{"interval_method": "conformal-windows/vol-168h"}, {"interval_residuals": 9999}],
    ids=lambda changed: next(iter(changed)),
)
def test_how_an_interval_was_made_cannot_be_rewritten(trained, instance, changed):
    # the method says which volatility the bounds are in units of: another one rescales them
    with rewritten(trained, **LINEAR_BTC, **changed):
        result = run(instance, trained, ["predictions"], *HOURS)
    assert f"{NAMED}: its {REFUSED}" in failure(result)


def test_each_stored_forecast_says_how_its_interval_was_made(trained):
    # as its model's row says: the method, every held-out hour a residual, and the level
    rows = run_sql(
        "SELECT p.interval_method, p.interval_residuals, p.interval_level, m.interval_method,"
        " m.interval_residuals, m.validation_rows, m.interval_windows, m.interval_level"
        f' FROM "{trained}".predictions p JOIN "{trained}".models m'
        " ON m.day = p.model_day AND m.symbol = p.symbol AND m.model = p.model"
        " AND m.horizon_h = p.horizon_h"
    )
    assert len(rows) == 2 * 2 * 3
    for (
        method,
        residuals,
        level,
        model_method,
        model_residuals,
        held_out,
        windows,
        model_level,
    ) in rows:  # noqa: E501
        assert method == model_method == "conformal-hourly/ewma-24h"
        assert residuals == model_residuals == held_out > 0 and windows == held_out // 6
        assert level == model_level == 0.9


def test_the_untouched_rows_still_forecast(trained, instance):
    # every refusal above came from its rewrite: the rows as trained still load and forecast
    result = run(instance, trained, ["predictions"], *HOURS)
    assert result.success, failure(result)
    assert len(predictions_in(trained)) == 2 * 2 * 3  # hours x symbols x models
