"""XGBoost models as XGBoost's JSON: equal fits are equal bytes, they load back exactly, and
nothing but XGBoost's JSON loads."""

import copy
import json
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from cryptify_pipeline.ml import xgboost_format
from cryptify_pipeline.ml.models import MODEL_ZOO, xgboost


@pytest.fixture(scope="module")
def xy() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(4)
    x = pd.DataFrame(rng.normal(size=(600, 4)), columns=["a", "b", "c", "d"])
    x.iloc[::17, 2] = np.nan  # trees route missing values themselves
    return x, 0.01 * x["a"].to_numpy() + rng.normal(0, 0.01, 600)


def test_equal_fits_are_equal_bytes_and_load_back_exactly(xy):
    first, second = xgboost().fit(*xy), MODEL_ZOO["xgboost"]().fit(*xy)
    data = xgboost_format.dumps(first)
    assert data == xgboost_format.dumps(second)  # seeded and single-threaded
    assert json.loads(data)["learner"]["feature_names"] == ["a", "b", "c", "d"]
    loaded = xgboost_format.loads(data)
    np.testing.assert_array_equal(loaded.predict(xy[0]), first.predict(xy[0]))
    assert first.get_params()["n_jobs"] == 1 and first.get_params()["random_state"] == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x04\x95 a pickle", "not an XGBoost JSON model"),
        (b"PK\x03\x04 a zip, as skops writes", "not an XGBoost JSON model"),
        (b'["a", "list"]', 'it must start with {"'),
        (b'{"version": [3, 2, 0]}', "no learner object at the top"),
        # XGBoost's own words (``map::at``): any ValueError will do
        (b'{"learner": {"gradient_booster": "not a booster"}, "version": [3, 2, 0]}', None),
    ],
    ids=["pickle", "zip", "list", "no learner", "unreadable learner"],
)
def test_anything_but_xgboost_json_is_refused(data, reason):
    with pytest.raises(ValueError, match=reason):
        xgboost_format.loads(data)


def test_only_xgboost_models_are_dumped(xy):
    assert xgboost_format.is_xgboost(xgboost())
    ridge = MODEL_ZOO["ridge"]().fit(*[part for part in (xy[0].fillna(0), xy[1])])
    assert not xgboost_format.is_xgboost(ridge)
    with pytest.raises(ValueError, match="not an XGBoost model: sklearn.pipeline.Pipeline"):
        xgboost_format.dumps(ridge)


@pytest.fixture(scope="module")
def document(xy) -> dict:
    """A real fit's JSON, small: three trees on four features."""
    return json.loads(xgboost_format.dumps(xgboost(rounds=3).fit(*xy)))


def first_tree(document: dict) -> dict:
    return document["learner"]["gradient_booster"]["model"]["trees"][0]


# Loads the bytes on stdin and predicts, in a process of its own: a model that crashes
# XGBoost's C++ (a segfault, rc 139 with no message) fails the test instead of killing pytest.
_LOAD_AND_PREDICT = """
import sys
import numpy as np, pandas as pd
from cryptify_pipeline.ml import xgboost_format
try:
    model = xgboost_format.loads(sys.stdin.buffer.read())
except ValueError as error:
    print(f"refused: {error}")
    sys.exit(0)
x = pd.DataFrame(np.random.default_rng(1).normal(size=(50, 4)), columns=list("abcd"))
model.predict(x)
print("loaded and predicted")
"""


def load_elsewhere(data: bytes) -> str:
    """What loading ``data`` (and predicting with it) did in another process."""
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_PREDICT], input=data, capture_output=True, timeout=120
    )
    assert done.returncode == 0, f"rc {done.returncode}: {done.stderr.decode()[-2000:]}"
    return done.stdout.decode().strip()


def test_a_real_fit_loads_and_predicts_in_another_process(document):
    assert load_elsewhere(json.dumps(document).encode()) == "loaded and predicted"


def _set(path: str, value) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        *parents, last = path.split(".")
        target = document
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


def _tree(field: str, change: Callable[[list], object]) -> Callable[[dict], None]:
    def apply(document: dict) -> None:
        tree = first_tree(document)
        tree[field] = change(tree[field])

    return apply


def _at(index: int, value) -> Callable[[list], list]:
    return lambda values: [value if i == index else v for i, v in enumerate(values)]


MODEL = "learner.gradient_booster.model"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # each of these made XGBoost 3.2 segfault or abort (rc 139 / 134) when it predicted
        (_tree("left_children", _at(0, 10**6)), "tree 0 node 0: child 1000000 is not a node"),
        (_tree("left_children", _at(0, -5)), "tree 0 node 0: child -5 is not a node"),
        (_tree("right_children", _at(0, 0)), "tree 0 node 0: child 0 is not a node"),
        (_tree("split_indices", _at(0, 10**6)), "tree 0 node 0: split on feature 1000000 of 4"),
        (_tree("parents", _at(1, 10**6)), "tree 0 node 1: parent 1000000, but node 0 leads"),
        (_set(f"{MODEL}.tree_info", [5, 0, 0]), "tree_info must be 0 for each of the 3 trees"),
        # XGBoost's own errors before: now refused here, naming the field
        (_tree("left_children", lambda v: v[:3]), "tree 0: left_children has 3 entries, not 11"),
        (_tree("split_conditions", lambda v: v[:3]), "tree 0: split_conditions has 3 entries"),
        (_set(f"{MODEL}.trees.0.tree_param.num_nodes", "100"), "has 11 entries, not 100"),
        (_set(f"{MODEL}.iteration_indptr", [0, 1, 2, 100]), "iteration_indptr must be"),
        (_set(f"{MODEL}.trees.0.id", 7), "tree 0: its id is 7"),
        # accepted before: a split on a feature the model does not have, a cycle, orphans
        (_tree("split_indices", _at(0, 5)), "tree 0 node 0: split on feature 5 of 4"),
        (_tree("split_indices", _at(3, 2**40)), f"tree 0 node 3: split on feature {2**40} of 4"),
        (_tree("left_children", _at(1, 0)), "tree 0 node 1: child 0 is not a node"),
        (_tree("left_children", _at(4, 1)), "tree 0 node 4: child 1 is reached twice"),
        (_tree("split_type", _at(0, 1)), "tree 0: categorical splits"),
        (_set("learner.learner_model_param.num_target", "3"), "one target"),
        (_set("learner.feature_types.0", "c"), "numerical types \\(no categorical\\)"),
        (_set("learner.gradient_booster.name", "dart"), "a gbtree booster"),
        (_set("learner.objective.name", "reg:quantileerror"), "reg:squarederror"),
    ],
    ids=[
        "child out of range", "negative child", "child back to the root", "split index huge",
        "parent out of range", "tree_info", "short children", "short conditions",
        "num_nodes", "iteration_indptr", "tree id", "split index past features",
        "leaf's split index", "cycle",
        "shared child", "categorical split", "multi-target", "categorical feature", "dart",
        "objective",
    ],
)  # fmt: skip
def test_a_crafted_tree_is_refused_before_xgboost_reads_it(document, change, reason):
    # what someone holding the signing key could sign: checked in Python before XGBoost's C++
    # follows any index
    crafted = copy.deepcopy(document)
    change(crafted)
    data = json.dumps(crafted).encode()
    # in another process first: on code that lets XGBoost read it, this crashed
    assert load_elsewhere(data).startswith("refused: not an XGBoost model of the zoo: ")
    with pytest.raises(ValueError, match=f"not an XGBoost model of the zoo: .*{reason}"):
        xgboost_format.loads(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b' {"learner": {}}', "it must start with"),
        (b'{"learner": {}, "learner": {}}', "duplicate key 'learner'"),
        (b'{"learner": {"attributes": NaN}}', "NaN"),
        (b'{"learner": {"feature_names": ["a\\u0062"]}}', "escape"),
    ],
    ids=["leading space", "duplicate key", "NaN", "escape"],
)
def test_json_that_xgboost_could_read_otherwise_is_refused(data, reason):
    # XGBoost's reader takes a file not starting with {" for its old binary format, and may
    # resolve duplicate keys or escapes otherwise than Python: what is checked must be what
    # XGBoost reads
    with pytest.raises(ValueError, match=reason):
        xgboost_format.loads(data)


def test_a_zoo_fit_passes_the_checks_when_it_is_saved(xy):
    # dumps checks too: a fit the loader would refuse fails when it is stored, not a day later
    data = xgboost_format.dumps(MODEL_ZOO["xgboost"]().fit(*xy))
    xgboost_format.check_model(json.loads(data))
