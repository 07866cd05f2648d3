"""The model zoo: each entry builds an unfitted model, every transform inside it: a scikit-learn
Pipeline, or XGBoost's scikit-learn regressor, which needs no transform.

Adding a model is one entry here. Baselines answer "is a model better than doing nothing?":
``zero_return`` says the price stays where it is, ``drift`` repeats the training mean return.

Each entry carries its feature set: ``MODEL_ZOO``'s learned models see the price features
(``features.MODEL_FEATURES``); their ``+context`` twins in ``CONTEXT_ZOO`` (``ridge+context``,
...) see those and the market context (``context_features.CONTEXT_COLUMNS``), so the leaderboard
ranks both on the same rows. Baselines use no features and belong to every set.

scikit-learn is imported when a model is built, not with this module: it takes 1.7 s to
import, and every run process (the hourly collection included) imports the definitions.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryptify_pipeline.ml.context_features import CONTEXT_COLUMNS
from cryptify_pipeline.ml.features import MODEL_FEATURES


def _scaled(model: Any) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    # imputer and scaler are fitted on each model's own training rows, never on later data
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("model", model),
        ]
    )


def _alone(model: Any) -> Any:
    from sklearn.pipeline import Pipeline

    return Pipeline([("model", model)])


def zero_return() -> Any:
    from sklearn.dummy import DummyRegressor

    return _alone(DummyRegressor(strategy="constant", constant=0.0))


def drift() -> Any:
    from sklearn.dummy import DummyRegressor

    return _alone(DummyRegressor(strategy="mean"))


def linear() -> Any:
    from sklearn.linear_model import LinearRegression

    return _scaled(LinearRegression())


def ridge() -> Any:
    from sklearn.linear_model import Ridge

    return _scaled(Ridge(alpha=10.0))


def hist_gbm(rounds: int = 100) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    # handles missing values itself, so no imputer; its own early stopping would hold out a
    # shuffled tenth of overlapping targets (nearly in-sample), so the rounds are chosen by
    # training.py on a time-ordered, purged hold-out instead (``BOOSTED``)
    return _alone(
        HistGradientBoostingRegressor(
            max_iter=rounds,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=50,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        )
    )


def _staged_losses(pipeline: Any, features: Any, target: np.ndarray) -> np.ndarray:
    """The hold-out's mean squared error after each boosting round of a fitted pipeline."""
    model = pipeline[-1]
    inputs = pipeline[:-1].transform(features) if len(pipeline) > 1 else features
    return np.array([np.mean((target - p) ** 2) for p in model.staged_predict(inputs)])


def mlp() -> Any:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    # targets are ~0.01: the network learns them standardised, and is strongly regularised. No
    # early stopping: sklearn's holds out a shuffled tenth of overlapping targets (nearly
    # in-sample). It stops when the training loss improves by less than 1e-3 (of a standardised
    # loss near 0.5) for 10 epochs, which on the sample market takes 90-240 epochs; at the
    # default tol of 1e-4 it crept on for 500 epochs and warned that it had not converged.
    return _scaled(
        TransformedTargetRegressor(
            regressor=MLPRegressor(
                hidden_layer_sizes=(16,),
                alpha=1.0,
                max_iter=500,
                tol=1e-3,
                n_iter_no_change=10,
                early_stopping=False,
                random_state=0,
            ),
            transformer=StandardScaler(),
        )
    )


def xgboost(rounds: int = 100) -> Any:
    from xgboost import XGBRegressor

    # the old system's model. Trees need no imputer (missing values go down a learned branch)
    # and no scaler; stored in XGBoost's own JSON (ml/xgboost_format.py), not as a Pipeline.
    # One thread: runs scale out by processes (Celery, Kubernetes), and fits stay bit-identical.
    return XGBRegressor(
        n_estimators=rounds,
        learning_rate=0.05,
        max_depth=3,
        min_child_weight=50,
        reg_lambda=1.0,
        tree_method="hist",
        n_jobs=1,
        random_state=0,
    )


def _xgboost_losses(model: Any, features: Any, target: np.ndarray) -> np.ndarray:
    """The hold-out's mean squared error after each round of a fitted ``XGBRegressor``."""
    from xgboost import DMatrix

    booster = model.get_booster()
    # the hold-out converted once: ``model.predict`` converted the frame again for each of the
    # up to 200 rounds, two thirds of the time spent choosing them (the same predictions)
    data = DMatrix(features, missing=np.nan, nthread=1)
    return np.array(
        [
            np.mean((target - booster.predict(data, iteration_range=(0, done))) ** 2)
            for done in range(1, booster.num_boosted_rounds() + 1)
        ]
    )


def lstm() -> Any:
    from cryptify_pipeline.ml.lstm import UntrainedLstm, keras_module

    # Keras on JAX, imported here as the other libraries are when their model is built:
    # training builds every model once before it limits the threads. Its samples are windows
    # of past rows, so training fits it through ml/lstm.py (``fit_windowed``), not as a
    # pipeline on single rows
    keras_module()
    return UntrainedLstm()


@dataclass(frozen=True)
class Boosted:
    """A model whose number of boosting rounds training chooses on a time-ordered hold-out:
    ``build(rounds)`` makes the unfitted pipeline, ``losses`` the hold-out's error per round of
    a fitted one, and at most ``most`` rounds are tried."""

    build: Callable[[int], Any]
    losses: Callable[[Any, Any, np.ndarray], np.ndarray]
    most: int


MODEL_ZOO: dict[str, Callable[[], Any]] = {
    "zero_return": zero_return,
    "drift": drift,
    "linear": linear,
    "ridge": ridge,
    "hist_gbm": hist_gbm,
    "mlp": mlp,
    "xgboost": xgboost,
    # the old web app's network: an LSTM over the last 48 hours of feature rows (ml/lstm.py)
    "lstm": lstm,
}
_BOOSTED = {
    "hist_gbm": Boosted(build=hist_gbm, losses=_staged_losses, most=200),
    "xgboost": Boosted(build=xgboost, losses=_xgboost_losses, most=200),
}
ZERO_RETURN = "zero_return"
BASELINES = (ZERO_RETURN, "drift")

PRICE, CONTEXT = "price", "context"
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    PRICE: MODEL_FEATURES,
    CONTEXT: (*MODEL_FEATURES, *CONTEXT_COLUMNS),
}
CONTEXT_SUFFIX = "+context"
# the learned models again, on the price features and the market context
CONTEXT_ZOO: dict[str, Callable[[], Any]] = {
    f"{name}{CONTEXT_SUFFIX}": build for name, build in MODEL_ZOO.items() if name not in BASELINES
}
ZOO: dict[str, Callable[[], Any]] = {**MODEL_ZOO, **CONTEXT_ZOO}  # every entry
# the entries whose samples are windows of past hours, not single rows
WINDOWED = frozenset(name for name in ZOO if name.split(CONTEXT_SUFFIX)[0] == "lstm")
BOOSTED: dict[str, Boosted] = {
    **_BOOSTED,
    **{f"{name}{CONTEXT_SUFFIX}": boosted for name, boosted in _BOOSTED.items()},
}


def feature_set_of(model: str) -> str:
    """The feature set a zoo entry is trained on (a baseline's is ``price``: it uses none)."""
    if model not in ZOO:
        raise KeyError(f"{model!r} is not a model of the zoo ({', '.join(ZOO)})")
    return CONTEXT if model in CONTEXT_ZOO else PRICE


def model_features(model: str) -> tuple[str, ...]:
    """The input columns of a zoo entry, in order."""
    return FEATURE_SETS[feature_set_of(model)]


def models_of(feature_set: str, models: list[str] | None = None) -> list[str]:
    """The entries of ``models`` (default: the whole zoo) that train with ``feature_set``:
    ``price``, ``context``, or ``both``; the baselines are in every set."""
    if feature_set not in (*FEATURE_SETS, "both"):
        raise ValueError(f"feature set {feature_set!r} is not one of price, context, both")
    return [
        model
        for model in (ZOO if models is None else models)
        if feature_set == "both" or model in BASELINES or feature_set_of(model) == feature_set
    ]
