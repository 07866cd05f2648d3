"""Stored models load only when this deployment's key signed exactly their record, and then
predict exactly as before they were saved."""

import hashlib
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.market.sample import SampleMarket
from cryptify_pipeline.ml.artifacts import (
    LEGACY_SIGNATURE_SCHEME,
    SIGNED_FIELDS,
    ModelIntegrityError,
    load_model,
    save_model,
    sign_models,
    signature,
)
from cryptify_pipeline.ml.features import LOOKBACK_HOURS, MODEL_FEATURES, build_features
from cryptify_pipeline.ml.lstm import LstmForecaster, keras_loads, training_samples, windows
from cryptify_pipeline.ml.lstm import train as train_lstm
from cryptify_pipeline.ml.models import MODEL_ZOO, WINDOWED
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.ml.targets import with_targets
from cryptify_pipeline_tests.support.hostile_models import (
    keras_lambda_payload,
    keras_with_config,
    keras_with_member,
    pickle_payload,
    runs_when_deserialised,
    skops_payload,
    xgboost_walking_out,
)

HOUR = timedelta(hours=1)
DAY = datetime(2025, 3, 31, tzinfo=UTC)
KEY = SigningKey.generate()
REFUSED = "signature does not verify"


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    start = DAY - timedelta(days=30)
    candles = SampleMarket().fetch(["BTC/USDT"], start - LOOKBACK_HOURS * HOUR, DAY)
    frame = with_targets(build_features(candles, start, DAY))
    return frame[frame[list(MODEL_FEATURES)].notna().all(axis=1) & frame["target_6h"].notna()]


def record_of(fitted, model: str, key: SigningKey = KEY, **changes) -> dict:
    """A signed record of the ``fitted`` pipeline as the models asset writes it, with
    ``changes`` made before signing."""
    record = {
        "day": pd.Timestamp(DAY), "symbol": "BTC/USDT", "model": model, "horizon_h": 6,
        "features": list(MODEL_FEATURES), "interval_level": 0.9, "interval_low": -1.5,
        "interval_high": 1.6, "interval_scale_median": 0.01,
        "interval_method": "conformal-hourly/ewma-24h", "interval_residuals": 480,
        **save_model(fitted), **changes,
    }  # fmt: skip
    return sign_models(pd.DataFrame([record]), key).iloc[0].to_dict()


@pytest.fixture(scope="module")
def fitted(rows) -> dict[str, tuple[object, dict]]:
    """Every zoo model fitted, and its signed record."""
    x, y = rows[list(MODEL_FEATURES)], rows["target_6h"].to_numpy()
    pipelines = {
        name: build().fit(x, y) for name, build in MODEL_ZOO.items() if name not in WINDOWED
    }
    pipelines["lstm"] = train_lstm(*lstm_samples(rows))[0][0]
    return {name: (pipeline, record_of(pipeline, name)) for name, pipeline in pipelines.items()}


def lstm_samples(rows: pd.DataFrame, hours: int = 24):
    """Windows of ``hours`` hours and 6 h targets: all of them, the first 70%, the last 20%."""
    x = windows(rows, rows["ts"], list(MODEL_FEATURES), hours)
    x, y = training_samples(x, rows["target_6h"].to_numpy("float32"), len(MODEL_FEATURES))
    probe, check = int(len(x) * 0.7), int(len(x) * 0.8)
    return (x, y), (x[:probe], y[:probe]), (x[check:], y[check:])


def test_every_zoo_model_predicts_exactly_the_same_after_a_round_trip(rows, fitted):
    x = rows[list(MODEL_FEATURES)].tail(200)
    for name, (pipeline, record) in fitted.items():
        if name in WINDOWED:
            x = lstm_samples(rows)[0][0][-200:]
        loaded = load_model(record, KEY)
        assert loaded is not pipeline and type(loaded) is type(pipeline)
        if hasattr(pipeline, "steps"):
            assert [type(step) for _, step in loaded.steps] == [type(s) for _, s in pipeline.steps]
        np.testing.assert_array_equal(loaded.predict(x), pipeline.predict(x), err_msg=name)


def test_the_lstm_is_a_keras_archive_with_its_versions_and_predicts_as_keras_does(rows, fitted):
    network, record = fitted["lstm"]
    assert record["artifact_format"] == "keras"
    assert record["library_versions"] == {
        name: version(name) for name in ("keras", "jax", "jaxlib")
    }
    loaded = load_model(record, KEY)
    assert isinstance(loaded, LstmForecaster) and loaded.window_hours == 24
    x = lstm_samples(rows)[0][0][-100:]
    # forecasts are computed from the loaded layers in float64: Keras's own answer, up to its
    # float32 arithmetic (XLA's fast tanh and sigmoid: a few 1e-6 on returns of ~1e-2)
    # read back without Keras (weights from the archive's HDF5), it predicts as the trained
    # network and as Keras itself, loading the same bytes in safe mode, does
    np.testing.assert_array_equal(loaded.predict(x), network.predict(x))
    keras_answer = keras_loads(bytes(record["pipeline"])).predict(x, verbose=0).reshape(-1)
    np.testing.assert_allclose(loaded.predict(x), keras_answer, rtol=0, atol=1e-6)
    # the standardisation is a layer of the signed archive: the fitted windows' statistics
    mean = loaded.values["mean"]
    fitted_values = lstm_samples(rows)[0][0].reshape(-1, len(MODEL_FEATURES))
    expected = fitted_values.mean(axis=0, dtype="float64")
    np.testing.assert_allclose(np.asarray(mean).reshape(-1), expected, rtol=1e-4, atol=1e-6)


def test_a_signed_keras_archive_with_a_lambda_layer_is_refused_and_never_run(fitted, tmp_path):
    # what someone holding the key could sign: a network whose Lambda layer runs a command
    network, _ = fitted["lstm"]
    marker = tmp_path / "ran"
    payload = keras_lambda_payload(marker)
    record = record_of(
        network, "lstm", pipeline=payload, sha256=hashlib.sha256(payload).hexdigest()
    )
    with pytest.raises(
        ModelIntegrityError, match="refused by the keras loader: .*keras.layers.Lambda layer"
    ):
        load_model(record, KEY)
    assert not marker.exists()
    # Keras's safe mode refuses it too, on its own
    path = tmp_path / "payload.keras"
    path.write_bytes(payload)
    from cryptify_pipeline.ml.lstm import keras_module

    with pytest.raises(ValueError, match="(?i)lambda"):
        keras_module().saving.load_model(path, safe_mode=True)
    assert not marker.exists()
    # and the payload is live: loaded outside safe mode and called, it runs its command
    assert runs_when_deserialised(payload, "keras-unsafe", marker)


def test_a_keras_archive_with_its_config_changed_is_refused_unsigned_or_signed(fitted):
    network, record = fitted["lstm"]

    def sigmoid_output(config: dict) -> None:
        config["config"]["layers"][3]["config"]["activation"] = "sigmoid"

    changed = keras_with_config(bytes(record["pipeline"]), sigmoid_output)
    rewritten = record | {"pipeline": changed, "sha256": hashlib.sha256(changed).hexdigest()}
    with pytest.raises(ModelIntegrityError, match=f"lstm BTC/USDT 6h of 2025-03-31: .*{REFUSED}"):
        load_model(rewritten, KEY)
    # signed by someone holding the key: a configuration the forecasts do not compute is refused
    signed = record_of(network, "lstm", pipeline=changed, sha256=rewritten["sha256"])
    with pytest.raises(ModelIntegrityError, match="layer standardised_return is configured"):
        load_model(signed, KEY)

    def layers_not_a_list(config: dict) -> None:
        config["config"]["layers"] = "InputLayer"

    # a config of the wrong shape, signed: refused by name, not a crash inside the check
    malformed = keras_with_config(bytes(record["pipeline"]), layers_not_a_list)
    signed = record_of(
        network, "lstm", pipeline=malformed, sha256=hashlib.sha256(malformed).hexdigest()
    )
    with pytest.raises(ModelIntegrityError, match="the config is not the zoo's LSTM's"):
        load_model(signed, KEY)


def test_a_keras_archive_holding_more_than_keras_writes_is_refused(fitted):
    network, record = fitted["lstm"]
    extra = keras_with_member(bytes(record["pipeline"]), "assets/run.py", b"print('hi')")
    signed = record_of(network, "lstm", pipeline=extra, sha256=hashlib.sha256(extra).hexdigest())
    with pytest.raises(ModelIntegrityError, match=r"the archive holds \['assets/run.py', "):
        load_model(signed, KEY)


def test_xgboost_is_stored_in_its_own_json_with_its_versions(fitted):
    _, record = fitted["xgboost"]
    assert record["artifact_format"] == "xgboost-json"
    assert record["library_versions"] == {
        "scikit-learn": version("scikit-learn"),
        "xgboost-cpu": version("xgboost-cpu"),
    }
    assert bytes(record["pipeline"]).startswith(b'{"learner":')
    for name, (_, other) in fitted.items():
        assert (other["artifact_format"] == "skops") == (name not in ("xgboost", "lstm"))


def test_a_signed_file_that_is_not_xgboost_json_is_refused_unbuilt(fitted, tmp_path):
    # someone who also holds the key: the JSON loader reads data, never code
    payload = pickle_payload(tmp_path / "ran")
    pipeline, _ = fitted["xgboost"]
    forged = record_of(pipeline, "xgboost", pipeline=payload,
                       sha256=hashlib.sha256(payload).hexdigest())  # fmt: skip
    with pytest.raises(ModelIntegrityError, match="refused by the xgboost-json loader: not an"):
        load_model(forged, KEY)
    assert not (tmp_path / "ran").exists()


def test_a_signed_xgboost_tree_leading_outside_itself_is_refused_before_xgboost_reads_it(fitted):
    # someone who also holds the key: XGBoost loaded this, and predicting with it segfaulted
    # the run (rc 139, no message, the predictions slot left held)
    pipeline, record = fitted["xgboost"]
    crafted = xgboost_walking_out(bytes(record["pipeline"]))
    forged = record_of(pipeline, "xgboost", pipeline=crafted,
                       sha256=hashlib.sha256(crafted).hexdigest())  # fmt: skip
    with pytest.raises(
        ModelIntegrityError,
        match="xgboost BTC/USDT 6h of 2025-03-31: refused by the xgboost-json loader: not an "
        "XGBoost model of the zoo: tree 0 node 0: child 1000000 is not a node",
    ):
        load_model(forged, KEY)


def test_xgboost_bytes_rewritten_with_their_hash_are_refused(fitted):
    _, record = fitted["xgboost"]
    text = bytes(record["pipeline"])
    widened = text.replace(b'"base_score":"', b'"base_score":"1', 1)
    assert widened != text
    rewritten = record | {"pipeline": widened, "sha256": hashlib.sha256(widened).hexdigest()}
    with pytest.raises(
        ModelIntegrityError, match=f"xgboost BTC/USDT 6h of 2025-03-31: .*{REFUSED}"
    ):
        load_model(rewritten, KEY)


def test_bytes_and_hash_rewritten_together_are_refused_and_never_deserialised(fitted, tmp_path):
    payload = pickle_payload(tmp_path / "ran")
    record = fitted["linear"][1] | {
        "pipeline": payload, "sha256": hashlib.sha256(payload).hexdigest(),
    }  # fmt: skip
    with pytest.raises(ModelIntegrityError, match=f"linear BTC/USDT 6h of 2025-03-31: .*{REFUSED}"):
        load_model(record, KEY)
    assert not (tmp_path / "ran").exists()
    # the payload is live: unpickled, it runs its command
    assert runs_when_deserialised(payload, "pickle", tmp_path / "ran")


def test_an_artifact_signed_with_another_key_is_refused(fitted):
    pipeline, _ = fitted["ridge"]
    other = SigningKey.generate()
    with pytest.raises(ModelIntegrityError) as refusal:
        load_model(record_of(pipeline, "ridge", key=other), KEY)
    message = str(refusal.value)
    assert message.startswith(f"ridge BTC/USDT 6h of 2025-03-31: its {REFUSED}")
    assert f"(id {KEY.key_id}; the row names {other.key_id})" in message
    assert "CRYPTIFY_MODEL_SIGNING_KEY" in message
    assert KEY.hex() not in message and other.hex() not in message


@pytest.mark.parametrize(
    "moved",
    [
        {"symbol": "ETH/USDT"},
        {"model": "ridge"},
        {"horizon_h": 24},
        {"day": pd.Timestamp(DAY + timedelta(days=1))},
        {"interval_high": 16.0},
        {"interval_level": 0.99},
        {"interval_scale_median": 1.0},
        {"interval_method": "conformal-windows/vol-168h"},  # bounds read in another volatility
        {"interval_residuals": 4800},
        {"features": list(reversed(MODEL_FEATURES))},
        {"artifact_format": "pickle"},
        {"library_versions": {"scikit-learn": "0.1.0", "skops": "0.1.0"}},
    ],
    ids=lambda moved: next(iter(moved)),
)
def test_an_artifact_moved_to_another_row_or_with_its_record_changed_is_refused(fitted, moved):
    record = fitted["linear"][1] | moved
    with pytest.raises(ModelIntegrityError, match=REFUSED):
        load_model(record, KEY)


def test_every_field_a_forecast_reads_is_signed():
    assert set(SIGNED_FIELDS) == {
        "artifact_format", "model", "symbol", "horizon_h", "day", "library_versions", "features",
        "interval_level", "interval_low", "interval_high", "interval_scale_median",
        "interval_method", "interval_residuals",
    }  # fmt: skip


def test_a_record_signed_before_interval_level_was_signed_is_refused_as_such(fitted):
    # its signature verifies under the old layout, which left the level out: it is not
    # trusted, and the message says why rather than calling it tampered
    record = fitted["linear"][1]
    old = record | {"signature": signature(record, KEY, scheme=LEGACY_SIGNATURE_SCHEME)}
    with pytest.raises(
        ModelIntegrityError,
        match="linear BTC/USDT 6h of 2025-03-31: signed by an earlier version whose signature "
        "did not cover interval_level nor how the interval was made; .*re-materialise the "
        "models",
    ):
        load_model(old, KEY)
    # a row of that version has no method nor residual count at all (NULL in the table)
    with pytest.raises(ModelIntegrityError, match="signed by an earlier version"):
        load_model(old | {"interval_method": None, "interval_residuals": None}, KEY)
    # v1 never covered the level, so a changed one is refused the same way; anything v1 did
    # cover, changed, is refused as tampered
    with pytest.raises(ModelIntegrityError, match="signed by an earlier version"):
        load_model(old | {"interval_level": 0.99}, KEY)
    with pytest.raises(ModelIntegrityError, match=REFUSED):
        load_model(old | {"interval_high": 16.0}, KEY)


def test_a_recorded_hash_that_does_not_match_the_bytes_is_refused(fitted):
    record = fitted["drift"][1] | {"sha256": "0" * 64}
    with pytest.raises(
        ModelIntegrityError, match="drift BTC/USDT 6h of 2025-03-31: its bytes hash"
    ):
        load_model(record, KEY)


def test_other_library_versions_are_refused(fitted):
    pipeline, _ = fitted["linear"]
    written = {"scikit-learn": "0.1.0", "skops": version("skops")}
    record = record_of(pipeline, "linear", library_versions=written)
    with pytest.raises(
        ModelIntegrityError,
        match=f"linear BTC/USDT 6h of 2025-03-31 was written with scikit-learn 0.1.0 and skops "
        f".*this process has scikit-learn {version('scikit-learn')}",
    ):
        load_model(record, KEY)


def test_unsigned_records_are_refused(fitted):
    for missing in (None, float("nan"), ""):
        with pytest.raises(
            ModelIntegrityError,
            match="linear BTC/USDT 6h of 2025-03-31: the artifact is unsigned .*retrain",
        ):
            load_model(fitted["linear"][1] | {"signature": missing}, KEY)


def test_a_signed_artifact_of_an_untrusted_type_is_refused_and_never_built(fitted, tmp_path):
    # what someone holding the key could sign: the loader still builds only the zoo's types
    pipeline, _ = fitted["linear"]
    payload = skops_payload(tmp_path / "ran")
    record = record_of(
        pipeline, "linear", pipeline=payload, sha256=hashlib.sha256(payload).hexdigest()
    )
    with pytest.raises(
        ModelIntegrityError, match="refused by the skops loader: .*untrusted type.* os.system"
    ):
        load_model(record, KEY)
    assert not (tmp_path / "ran").exists()
    assert runs_when_deserialised(payload, "skops", tmp_path / "ran")


def test_a_format_this_code_does_not_know_is_refused(fitted):
    pipeline, _ = fitted["linear"]
    with pytest.raises(ModelIntegrityError, match="stored as 'onnx', a format this code"):
        load_model(record_of(pipeline, "linear", artifact_format="onnx"), KEY)
