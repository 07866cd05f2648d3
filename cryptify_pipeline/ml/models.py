"""The model zoo: each entry builds an unfitted scikit-learn Pipeline, every transform inside it.

Adding a model is one entry here. Baselines answer "is a model better than doing nothing?":
``zero_return`` says the price stays where it is, ``drift`` repeats the training mean return.

scikit-learn is imported when a model is built, not with this module: it takes 1.7 s to
import, and every run process (the hourly collection included) imports the definitions.
"""

from collections.abc import Callable
from typing import Any


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


def hist_gbm() -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    # handles missing values itself, so no imputer
    return _alone(
        HistGradientBoostingRegressor(
            max_iter=100,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=50,
            l2_regularization=1.0,
            random_state=0,
        )
    )


def mlp() -> Any:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    # targets are ~0.01: the network learns them standardised, and is strongly regularised
    return _scaled(
        TransformedTargetRegressor(
            regressor=MLPRegressor(
                hidden_layer_sizes=(16,),
                alpha=1.0,
                max_iter=200,
                early_stopping=True,  # its validation split comes from the training rows only
                n_iter_no_change=10,
                random_state=0,
            ),
            transformer=StandardScaler(),
        )
    )


MODEL_ZOO: dict[str, Callable[[], Any]] = {
    "zero_return": zero_return,
    "drift": drift,
    "linear": linear,
    "ridge": ridge,
    "hist_gbm": hist_gbm,
    "mlp": mlp,
}
ZERO_RETURN = "zero_return"
BASELINES = (ZERO_RETURN, "drift")
