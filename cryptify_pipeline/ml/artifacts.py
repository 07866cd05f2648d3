"""Stored models: bytes in a format whose loader builds only trusted types, signed for their row.

A hash in the same row as the bytes proves nothing against someone who can write that row, and
unpickling runs code. So a model is stored

- in a format whose loader builds only trusted types: the zoo's scikit-learn pipelines in
  skops's (``skops_format.py``), its XGBoost in XGBoost's own JSON (``xgboost_format.py``), its
  LSTM in Keras's ``.keras`` archive, read without Keras once its config is checked
  (``lstm.py``). The
  ``artifact_format`` column names the format; ``FORMATS`` is where another one is added, with a
  loader that builds only its own types;
- signed with HMAC-SHA256 under a key the database does not hold (``signing.py``), over its
  bytes and everything a forecast takes from its row (``SIGNED_FIELDS``: format, model, symbol,
  horizon, day, library versions, features, the interval, its level and how it was made).
  Bytes and hash rewritten together, an artifact moved to another row or day, or a row's
  interval widened, its level or method changed no longer verify. (The row's sha256 is
  checked against the signed bytes.)

Loading checks the signature (in constant time) before anything is parsed, then the sha256,
then the library versions, and only then lets the format's loader build the model.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

import pandas as pd

from cryptify_pipeline.ml import lstm, skops_format, xgboost_format
from cryptify_pipeline.ml.signing import SigningKey


def _optional_float(value: Any) -> float | None:
    # an uncalibrated interval has no bounds: NaN from pandas, NULL (None) from a plain client
    return None if value is None or math.isnan(float(value)) else float(value)


# Names the message layout; a new layout gets a new name, so old and new signatures never mix.
SIGNATURE_SCHEME = b"cryptify-model-artifact/v2"
# v1 left out interval_level, which forecasts copy, and how the interval was made: a v1
# signature is never trusted, only recognised, so that the refusal says "retrain" rather than
# "tampered"
LEGACY_SIGNATURE_SCHEME = b"cryptify-model-artifact/v1"
# What is signed besides the bytes, each with the one form its value takes in the message.
_CANONICAL: dict[str, Callable[[Any], object]] = {
    "artifact_format": str,
    "model": str,
    "symbol": str,
    "horizon_h": int,
    "day": lambda day: pd.Timestamp(day).tz_convert("UTC").isoformat(),
    "library_versions": lambda versions: {str(k): str(v) for k, v in versions.items()},
    "features": lambda features: [str(feature) for feature in features],
    "interval_level": float,
    "interval_low": _optional_float,
    "interval_high": _optional_float,
    "interval_scale_median": _optional_float,
    # which volatility the bounds are in units of, and the count the predictions rows repeat
    "interval_method": str,
    "interval_residuals": int,
}
SIGNED_FIELDS = tuple(_CANONICAL)
_FIELDS_OF_SCHEME = {
    SIGNATURE_SCHEME: SIGNED_FIELDS,
    LEGACY_SIGNATURE_SCHEME: tuple(
        name
        for name in SIGNED_FIELDS
        if name not in ("interval_level", "interval_method", "interval_residuals")
    ),
}


class ModelIntegrityError(RuntimeError):
    """A stored model that cannot be vouched for: unsigned, signed for another row or with
    another key, altered, written by other library versions, or holding an untrusted type."""


@dataclass(frozen=True)
class ArtifactFormat:
    """How one kind of model becomes bytes and back. ``load`` builds only the format's trusted
    types and refuses anything else with a ValueError; ``libraries`` are the distributions
    whose versions must be the same to load."""

    name: str
    libraries: tuple[str, ...]
    dump: Callable[[Any], bytes]
    load: Callable[[bytes], Any]


SKOPS = ArtifactFormat("skops", ("scikit-learn", "skops"), skops_format.dumps, skops_format.loads)
# XGBoost's JSON, read back into XGBoost's scikit-learn regressor: both libraries' versions
XGBOOST_JSON = ArtifactFormat(
    "xgboost-json", ("scikit-learn", "xgboost-cpu"), xgboost_format.dumps, xgboost_format.loads
)
# the LSTM in Keras's own .keras archive (one Keras loads in safe mode), read without Keras
# once its members and layer classes are checked (ml/lstm.py); Keras runs on JAX, so its
# versions count too
KERAS = ArtifactFormat("keras", ("keras", "jax", "jaxlib"), lstm.dumps, lstm.loads)
FORMATS: dict[str, ArtifactFormat] = {
    SKOPS.name: SKOPS,
    XGBOOST_JSON.name: XGBOOST_JSON,
    KERAS.name: KERAS,
}


def format_of(pipeline: Any) -> ArtifactFormat:
    """The format a fitted model of the zoo is stored in."""
    if lstm.is_lstm(pipeline):
        return KERAS
    return XGBOOST_JSON if xgboost_format.is_xgboost(pipeline) else SKOPS


def library_versions(artifact_format: ArtifactFormat) -> dict[str, str]:
    """This process's versions of the libraries ``artifact_format`` depends on."""
    return {library: _version(library) for library in artifact_format.libraries}


@cache
def _version(distribution: str) -> str:
    # looked up once per process: each lookup scans the installed packages
    return metadata.version(distribution)


def save_model(pipeline: Any) -> dict[str, object]:
    """The columns that store a fitted ``pipeline``: its format, bytes, sha256 and versions.
    Unsigned: ``sign_models`` signs the record once it has its day."""
    artifact_format = format_of(pipeline)
    try:
        blob = artifact_format.dump(pipeline)
    except ValueError as error:
        raise ModelIntegrityError(
            f"cannot store the model as {artifact_format.name}: {error}"
        ) from error
    return {
        "artifact_format": artifact_format.name,
        "pipeline": blob,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "library_versions": library_versions(artifact_format),
        "sklearn_version": _version("scikit-learn"),
        "python_version": platform.python_version(),
    }


def sign_models(records: pd.DataFrame, key: SigningKey) -> pd.DataFrame:
    """``records`` (with their ``day``) with each one's signature under ``key`` and the key's
    id (the id only helps an operator tell keys apart; it is not trusted)."""
    signatures = [signature(record, key) for record in records.to_dict("records")]
    return records.assign(signature=signatures, signing_key_id=key.key_id)


def signature(record: Mapping[str, Any], key: SigningKey, scheme: bytes = SIGNATURE_SCHEME) -> str:
    """HMAC-SHA256 under ``key`` of the artifact's bytes and the record's signed fields (those
    of ``scheme``; only verification asks for the legacy one)."""
    blob = record.get("pipeline")
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ModelIntegrityError(f"{describe(record)}: the record holds no artifact bytes")
    return key.mac(scheme, _signed_fields(record, _FIELDS_OF_SCHEME[scheme]), bytes(blob))


def load_model(record: Mapping[str, Any], key: SigningKey) -> Any:
    """The model stored in ``record``, once ``verify_model`` has vouched for it."""
    verify_model(record, key)
    artifact_format = FORMATS[record["artifact_format"]]
    try:
        return artifact_format.load(bytes(record["pipeline"]))
    except ValueError as error:
        raise ModelIntegrityError(
            f"{describe(record)}: refused by the {artifact_format.name} loader: {error}"
        ) from None


def verify_model(record: Mapping[str, Any], key: SigningKey) -> None:
    """Refuse ``record`` unless ``key`` signed exactly it, its bytes hash to its sha256 and
    this process has the library versions that wrote it."""
    name = describe(record)
    stored = record.get("signature")
    if not isinstance(stored, str) or not stored:
        raise ModelIntegrityError(
            f"{name}: the artifact is unsigned (stored before models were signed, or its "
            "signature was removed); refusing to load it (retrain the model)"
        )
    # first: a row of an earlier version lacks fields the current layout signs
    if _signed_by_legacy_scheme(record, key, stored):
        raise ModelIntegrityError(
            f"{name}: signed by an earlier version whose signature did not cover "
            "interval_level nor how the interval was made; refusing to load it (re-materialise "
            "the models for that day to sign them anew)"
        )
    expected = signature(record, key)
    if not hmac.compare_digest(expected.encode(), stored.encode("utf-8", "replace")):
        raise ModelIntegrityError(
            f"{name}: its signature does not verify under this deployment's model signing key "
            f"(id {key.key_id}; the row names {str(record.get('signing_key_id'))[:16]}): the "
            "artifact or its record was changed, it was moved from another row, or it was "
            "signed with another key (every process of a deployment must share "
            "CRYPTIFY_MODEL_SIGNING_KEY); refusing to load it (retrain the model)"
        )
    digest = hashlib.sha256(bytes(record["pipeline"])).hexdigest()
    if digest != record.get("sha256"):
        raise ModelIntegrityError(
            f"{name}: its bytes hash to {digest[:12]}..., not the recorded "
            f"{str(record.get('sha256'))[:12]}...; refusing to load it (retrain the model)"
        )
    artifact_format = FORMATS.get(record["artifact_format"])
    if artifact_format is None:
        raise ModelIntegrityError(
            f"{name}: stored as {record['artifact_format']!r}, a format this code cannot load "
            f"(it knows {', '.join(FORMATS)})"
        )
    written_by, running = dict(record["library_versions"]), library_versions(artifact_format)
    if written_by != running:
        raise ModelIntegrityError(
            f"{name} was written with {_versions(written_by)}, this process has "
            f"{_versions(running)}; refusing to load it (retrain the model)"
        )


def describe(record: Mapping[str, Any]) -> str:
    """The model a record holds, as messages name it: ``ridge BTC/USDT 6h of 2025-02-01``."""
    try:
        day = f"{pd.Timestamp(record.get('day')):%Y-%m-%d}"
    except (TypeError, ValueError):
        day = str(record.get("day"))
    return f"{record.get('model')} {record.get('symbol')} {record.get('horizon_h')}h of {day}"


def _signed_by_legacy_scheme(record: Mapping[str, Any], key: SigningKey, stored: str) -> bool:
    try:
        legacy = signature(record, key, LEGACY_SIGNATURE_SCHEME)
    except ModelIntegrityError:
        return False
    return hmac.compare_digest(legacy.encode(), stored.encode("utf-8", "replace"))


def _signed_fields(record: Mapping[str, Any], names: tuple[str, ...] = SIGNED_FIELDS) -> bytes:
    """The record's fields ``names`` as canonical JSON: the same values give the same bytes
    whether they come from training or back from Postgres."""
    try:
        fields = {name: _CANONICAL[name](record[name]) for name in names}
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelIntegrityError(
            f"{describe(record)}: the record's signed fields are missing or malformed "
            f"({type(error).__name__}: {error})"
        ) from None
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _versions(versions: Mapping[str, str]) -> str:
    return " and ".join(f"{library} {number}" for library, number in sorted(versions.items()))
