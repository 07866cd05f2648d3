"""The model zoo: each entry builds an unfitted scikit-learn Pipeline, every transform inside it.

Adding a model is one entry here. Baselines answer "is a model better than doing nothing?":
``zero_return`` says the price stays where it is, ``drift`` repeats the training mean return.
"""

from collections.abc import Callable

from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def _scaled(model) -> Pipeline:
    # imputer and scaler are fitted on each model's own training rows, never on later data
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("model", model),
        ]
    )


MODEL_ZOO: dict[str, Callable[[], Pipeline]] = {
    "zero_return": lambda: Pipeline([("model", DummyRegressor(strategy="constant", constant=0.0))]),
    "drift": lambda: Pipeline([("model", DummyRegressor(strategy="mean"))]),
    "linear": lambda: _scaled(LinearRegression()),
    "ridge": lambda: _scaled(Ridge(alpha=10.0)),
    # handles missing values itself, so no imputer
    "hist_gbm": lambda: Pipeline(
        [
            (
                "model",
                HistGradientBoostingRegressor(
                    max_iter=100,
                    learning_rate=0.05,
                    max_leaf_nodes=15,
                    min_samples_leaf=50,
                    l2_regularization=1.0,
                    random_state=0,
                ),
            )
        ]
    ),
    # targets are ~0.01: the network learns them standardised, and is strongly regularised
    "mlp": lambda: _scaled(
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
    ),
}
BASELINES = ("zero_return", "drift")
