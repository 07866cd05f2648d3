"""XGBoost models in XGBoost's own JSON: the loader builds a booster and nothing else.

An XGBoost model file is data (trees, their split conditions and leaf values, the feature
names), not code: XGBoost parses it in its own C++ JSON reader into its own structures. So the
zoo's ``xgboost`` is stored as that JSON, never pickled and never through skops. ``loads``
first checks that the bytes are a JSON object holding a ``learner`` (XGBoost's other format,
UBJSON, and anything else are refused), then lets XGBoost read it into a fresh regressor; what
XGBoost cannot read it refuses with its own error, a ValueError.

XGBoost's C++ follows a tree's child and feature indices without bounds checks: a crafted file
(signed by someone who holds the key) made it segfault, killing the run with no message. So
before XGBoost sees the bytes, ``check_model`` holds them to the shape the zoo writes (one
target, squared error, numerical splits, a gbtree of single trees) and checks every tree: its
arrays as long as its node count, each split's children inside the tree and reached once from
the root (so a walk ends), each parent the node that leads there, each split on an existing
feature. The parse itself refuses what XGBoost's reader could take otherwise than Python's
(a leading byte other than ``{"``, duplicate keys, escapes, NaN). ``dumps`` checks too, so a
fit the loader would refuse fails when it is stored.

XGBoost writes a fit's JSON deterministically: equal fits give equal bytes, hence equal sha256.
"""

from __future__ import annotations

import json
import math
from typing import Any

# XGBoost's mark for the root's parent (kInvalidNodeId, -1, without its left-child bit)
_ROOT_PARENT = 2**31 - 1
_LEAF = -1
_NUMERICAL_TYPES = {"float", "int", "i", "q"}  # "c" is categorical, which the zoo never has
_NODE_INTEGERS = ("left_children", "right_children", "parents", "split_indices")
_NODE_NUMBERS = ("split_conditions", "base_weights", "loss_changes", "sum_hessian")
_NODE_FLAGS = ("default_left", "split_type")
_CATEGORY_ARRAYS = ("categories", "categories_nodes", "categories_segments", "categories_sizes")


class CraftedModel(ValueError):
    """XGBoost JSON outside the shape the zoo writes, or a tree XGBoost could walk out of."""


def is_xgboost(model: Any) -> bool:
    """Whether ``model`` is one of XGBoost's (known without importing XGBoost)."""
    return type(model).__module__.split(".")[0] == "xgboost"


def dumps(model: Any) -> bytes:
    """A fitted ``XGBRegressor`` as XGBoost's JSON, checked as ``loads`` will check it."""
    if not is_xgboost(model):
        raise ValueError(f"not an XGBoost model: {type(model).__module__}.{type(model).__name__}")
    data = bytes(model.get_booster().save_raw(raw_format="json"))
    check_model(_parse(data))
    return data


def loads(data: bytes) -> Any:
    """The ``XGBRegressor`` in ``data``; ValueError for anything but XGBoost's JSON model of the
    zoo's shape."""
    document = _parse(data)
    if not isinstance(document, dict) or not isinstance(document.get("learner"), dict):
        raise ValueError("not an XGBoost JSON model: no learner object at the top")
    check_model(document)
    from xgboost import XGBRegressor  # imported on use: see ml/models.py

    model = XGBRegressor()
    model.load_model(bytearray(data))  # XGBoostError, a ValueError, if XGBoost cannot read it
    return model


def _parse(data: bytes) -> Any:
    """The JSON document, refused where XGBoost's reader could read the bytes otherwise."""
    if not data.startswith(b'{"'):
        # XGBoost reads JSON only when the first two bytes are {" (else UBJSON or its old
        # binary format), where Python's parser would skip whitespace or a byte-order mark
        raise ValueError('not an XGBoost JSON model: it must start with {"')
    if b"\\" in data:
        # the zoo's JSON has no escapes; a reader that decoded one differently would see
        # other keys or names than the ones checked here
        raise ValueError("not an XGBoost JSON model of the zoo: it holds an escape (\\)")
    try:
        return json.loads(data, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, RecursionError, json.JSONDecodeError) as error:
        raise ValueError(f"not an XGBoost JSON model: {error}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps a duplicate key's last value; a reader that kept the first would load
    # something else than what was checked
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise CraftedModel(f"not an XGBoost JSON model: duplicate key {key!r}")
        document[key] = value
    return document


def _no_constant(name: str) -> Any:
    raise CraftedModel(f"not an XGBoost JSON model: {name} is not JSON")


def check_model(document: Any) -> None:
    """Refuse (CraftedModel) a model XGBoost's C++ could not read safely, or one the zoo would
    not write; see the module's docstring."""
    try:
        _check_learner(document["learner"])
    except CraftedModel as error:
        raise CraftedModel(f"not an XGBoost model of the zoo: {error}") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise CraftedModel(
            f"not an XGBoost model of the zoo: a field is missing or malformed "
            f"({type(error).__name__}: {error})"
        ) from None


def _check_learner(learner: dict) -> None:
    shape = learner["learner_model_param"]
    n_features = _count(shape["num_feature"], "num_feature")
    if shape["num_target"] != "1" or shape["num_class"] != "0":
        raise CraftedModel("the zoo's model has one target and no classes")
    base_score = json.loads(shape["base_score"])
    if not (isinstance(base_score, list) and len(base_score) == 1 and _is_number(base_score[0])):
        raise CraftedModel("base_score must be one finite number")
    names, types = learner["feature_names"], learner["feature_types"]
    if not (
        isinstance(names, list)
        and len(names) == n_features
        and all(isinstance(name, str) for name in names)
    ):
        raise CraftedModel(f"feature_names must be a list of {n_features} names")
    if not (
        isinstance(types, list) and len(types) == n_features and set(types) <= _NUMERICAL_TYPES
    ):
        raise CraftedModel(f"feature_types must be {n_features} numerical types (no categorical)")
    if learner["objective"]["name"] != "reg:squarederror":
        raise CraftedModel("the zoo's objective is reg:squarederror")
    if not all(isinstance(v, str) for v in learner.get("attributes", {}).values()):
        raise CraftedModel("attributes must be text")
    booster = learner["gradient_booster"]
    if booster["name"] != "gbtree":
        raise CraftedModel("the zoo's model is a gbtree booster")
    model = booster["model"]
    trees = model["trees"]
    n_trees = len(trees)
    if model["gbtree_model_param"] != {"num_parallel_tree": "1", "num_trees": str(n_trees)}:
        raise CraftedModel(f"gbtree_model_param must name 1 parallel tree and {n_trees} trees")
    if model["tree_info"] != [0] * n_trees:
        raise CraftedModel(f"tree_info must be 0 for each of the {n_trees} trees (one target)")
    if model["iteration_indptr"] != list(range(n_trees + 1)):
        raise CraftedModel(f"iteration_indptr must be 0 to {n_trees}, one tree a round")
    if any(model.get("cats", {}).values()):
        raise CraftedModel("categorical encodings (cats) are not the zoo's")
    for number, tree in enumerate(trees):
        try:
            _check_tree(tree, number, n_features)
        except CraftedModel as error:
            raise CraftedModel(f"tree {number}{error}") from None


def _check_tree(tree: dict, number: int, n_features: int) -> None:
    """The tree's arrays and structure; messages start after ``tree N``."""
    if tree["id"] != number:
        raise CraftedModel(f": its id is {tree['id']!r}")
    param = tree["tree_param"]
    n_nodes = _count(param["num_nodes"], "num_nodes")
    if param["num_deleted"] != "0" or param["size_leaf_vector"] not in ("0", "1"):
        raise CraftedModel(": deleted nodes or vector leaves are not the zoo's")
    if param["num_feature"] != str(n_features):
        raise CraftedModel(f": num_feature {param['num_feature']!r}, not {n_features}")
    for field in (*_NODE_INTEGERS, *_NODE_NUMBERS, *_NODE_FLAGS):
        values = tree[field]
        if not isinstance(values, list) or len(values) != n_nodes:
            shown = len(values) if isinstance(values, list) else type(values).__name__
            raise CraftedModel(f": {field} has {shown} entries, not {n_nodes} (num_nodes)")
    for field in _NODE_INTEGERS:
        if not all(type(value) is int for value in tree[field]):
            raise CraftedModel(f": {field} holds a value that is not an integer")
    for field in _NODE_NUMBERS:
        if not all(_is_number(value) for value in tree[field]):
            raise CraftedModel(f": {field} holds a value that is not a finite number")
    if not all(value in (0, 1) and type(value) is int for value in tree["default_left"]):
        raise CraftedModel(": default_left must be 0 or 1")
    if any(value != 0 for value in tree["split_type"]) or any(
        tree.get(field) for field in _CATEGORY_ARRAYS
    ):
        raise CraftedModel(": categorical splits are not the zoo's")
    # leaves too (XGBoost writes 0 there): every integer XGBoost reads is bounded
    for node, feature in enumerate(tree["split_indices"]):
        if not 0 <= feature < n_features:
            raise CraftedModel(f" node {node}: split on feature {feature} of {n_features}")
    _check_structure(tree, n_nodes)


def _check_structure(tree: dict, n_nodes: int) -> None:
    """Every node reached from the root exactly once, through children inside the tree, with
    its parent recorded."""
    lefts, rights, parents = tree["left_children"], tree["right_children"], tree["parents"]
    if parents[0] != _ROOT_PARENT:
        raise CraftedModel(f" node 0: the root's parent is {parents[0]}, not {_ROOT_PARENT}")
    reached = [False] * n_nodes
    reached[0] = True
    pending = [0]
    while pending:
        node = pending.pop()
        left, right = lefts[node], rights[node]
        if left == _LEAF and right == _LEAF:
            continue
        for child in (left, right):
            if not 0 < child < n_nodes:
                raise CraftedModel(f" node {node}: child {child} is not a node of {n_nodes}")
            if reached[child]:
                raise CraftedModel(f" node {node}: child {child} is reached twice")
            if parents[child] != node:
                raise CraftedModel(
                    f" node {child}: parent {parents[child]}, but node {node} leads there"
                )
            reached[child] = True
            pending.append(child)
    if not all(reached):
        raise CraftedModel(f" node {reached.index(False)}: not reached from the root")


def _count(text: Any, field: str) -> int:
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and int(text) > 0):
        raise CraftedModel(f"{field} must be a positive whole number, not {text!r}")
    return int(text)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)
