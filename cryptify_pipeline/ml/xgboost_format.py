"""XGBoost models in XGBoost's own JSON: the loader builds a booster and nothing else.

An XGBoost model file is data (trees, their split conditions and leaf values, the feature
names), not code: XGBoost parses it in its own C++ JSON reader into its own structures. So the
zoo's ``xgboost`` is stored as that JSON, never pickled and never through skops. ``loads``
first checks that the bytes are a JSON object holding a ``learner`` (XGBoost's other format,
UBJSON, and anything else are refused), then lets XGBoost read it into a fresh regressor; what
XGBoost cannot read it refuses with its own error, a ValueError.

XGBoost writes a fit's JSON deterministically: equal fits give equal bytes, hence equal sha256.
"""

from __future__ import annotations

import json
from typing import Any


def is_xgboost(model: Any) -> bool:
    """Whether ``model`` is one of XGBoost's (known without importing XGBoost)."""
    return type(model).__module__.split(".")[0] == "xgboost"


def dumps(model: Any) -> bytes:
    """A fitted ``XGBRegressor`` as XGBoost's JSON."""
    if not is_xgboost(model):
        raise ValueError(f"not an XGBoost model: {type(model).__module__}.{type(model).__name__}")
    return bytes(model.get_booster().save_raw(raw_format="json"))


def loads(data: bytes) -> Any:
    """The ``XGBRegressor`` in ``data``; ValueError for anything but XGBoost's JSON model."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not an XGBoost JSON model: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("learner"), dict):
        raise ValueError("not an XGBoost JSON model: no learner object at the top")
    from xgboost import XGBRegressor  # imported on use: see ml/models.py

    model = XGBRegressor()
    model.load_model(bytearray(data))  # XGBoostError, a ValueError, if XGBoost cannot read it
    return model
