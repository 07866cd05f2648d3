"""scikit-learn pipelines in skops's format: only the zoo's types load, and equal fits are equal
bytes.

skops's loader builds only objects of types it trusts, but its default trust covers every
scikit-learn estimator and more. So every type a file names is checked here against
``TRUSTED_TYPES``, exactly the types the zoo (``ml/models.py``) builds, and every node against
``TRUSTED_NODES``, the kinds of skops node those types need, before skops reads the file; then
skops's own audit runs with the same list. A file naming anything else (a function, a class from
another package, ``os.system``) is refused without importing or building anything.

``TreePredictor`` (HistGradientBoosting's trees) is trusted by necessity and checked after
loading: its node indices must stay inside the tree (``_check_trees``).

skops writes object ids (memory addresses) and the time into its archive, so two dumps of one
fit differ. ``dumps`` rewrites the archive canonically (ids numbered in order of appearance,
fixed member names and timestamps): equal fits give equal bytes, hence equal sha256.

A new model in the zoo whose fit holds a type outside the list fails when it is saved, naming
the type: add the type here, deliberately, with the model.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

# Every type a fitted zoo model holds, as skops names it (module.class). Computed by dumping
# each model of the zoo fitted on real features; `test_skops_format.py` checks that the zoo
# needs every entry and nothing more.
TRUSTED_TYPES: tuple[str, ...] = (
    # containers and JSON values
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    # numpy: arrays (read with allow_pickle=False), scalars, dtypes, the random states of
    # HistGradientBoosting and MLP
    "numpy.dtype",
    "numpy.float64",
    "numpy.ndarray",
    "numpy.uint64",
    "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState",
    # the pipeline and its transforms
    "sklearn.pipeline.Pipeline",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.StandardScaler",
    # baselines and linear models
    "sklearn.dummy.DummyRegressor",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._ridge.Ridge",
    # HistGradientBoostingRegressor and its fitted internals: the binner, the trees, the loss
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    # the MLP, its optimiser, and the target transform around it
    "sklearn.compose._target.TransformedTargetRegressor",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
)

# The kinds of skops node those types are stored as. Left out on purpose: FunctionNode,
# MethodNode, OperatorFuncNode and PartialNode (they call functions), ReduceNode (it calls a
# type's reconstructor), BytesNode, SparseMatrixNode and the rest, which no zoo model needs.
TRUSTED_NODES: tuple[str, ...] = (
    "CachedNode",
    "DTypeNode",
    "DictNode",
    "JsonNode",
    "ListNode",
    "LossNode",
    "NdArrayNode",
    "ObjectNode",
    "RandomGeneratorNode",
    "RandomStateNode",
    "TupleNode",
    "TypeNode",
)

_TRUSTED_TYPE_SET = frozenset(TRUSTED_TYPES)
_TRUSTED_NODE_SET = frozenset(TRUSTED_NODES)
_SCHEMA = "schema.json"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


class UntrustedArtifact(ValueError):
    """A skops file that is not a zoo model: unreadable, or naming a type outside the list."""


def dumps(pipeline: Any) -> bytes:
    """``pipeline`` as canonical skops bytes; refuses a fit that holds an untrusted type."""
    import skops.io  # imported on use: it imports scikit-learn

    with zipfile.ZipFile(io.BytesIO(skops.io.dumps(pipeline))) as archive:
        schema = json.loads(archive.read(_SCHEMA))
        members = {name: archive.read(name) for name in archive.namelist() if name != _SCHEMA}
    _audit(schema)
    return _canonical(schema, members)


def loads(data: bytes) -> Any:
    """The pipeline in ``data``, built only if every type and node in it is trusted."""
    import skops.io

    untrusted_types(data, raise_on_any=True)
    try:
        pipeline = skops.io.loads(data, trusted=list(TRUSTED_TYPES))
    except Exception as error:  # skops's own audit, or a malformed file
        raise UntrustedArtifact(f"skops refused it: {type(error).__name__}: {error}") from None
    _check_trees(pipeline)
    return pipeline


def untrusted_types(data: bytes, raise_on_any: bool = False) -> list[str]:
    """Every type or node kind ``data`` names that is outside the lists, read from its schema
    without importing or building anything; with ``raise_on_any``, refuses a file naming any."""
    nodes: list[dict] = []

    def collect(item: dict) -> dict:
        # every dict of the document, at any depth, passes here once as it is parsed: the
        # nodes are found without a second walk over the (large) schema
        if "__loader__" in item:
            nodes.append(item)
        return item

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            json.loads(archive.read(_SCHEMA), object_hook=collect)
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError) as error:
        raise UntrustedArtifact(f"not a readable skops file ({type(error).__name__})") from None
    found = sorted(set(_outside_lists(nodes)))
    if found and raise_on_any:
        raise UntrustedArtifact(f"it names untrusted type(s) {', '.join(found)}")
    return found


def _check_trees(pipeline: Any) -> None:
    """Refuse HistGradientBoosting trees that compiled code could walk out of bounds.

    skops trusts no ``TreePredictor`` by default for this reason: ``predict`` follows a tree's
    child and feature indices without bounds checks, so a crafted tree (signed by someone who
    holds the key) could read outside its arrays. Every split must lead to later nodes of the
    same tree (so a walk also ends) and read an existing feature; the zoo has no categorical
    splits.
    """
    import numpy as np
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.pipeline import Pipeline

    if type(pipeline) is not Pipeline:
        raise UntrustedArtifact(f"it holds a {type(pipeline).__name__}, not a Pipeline")
    for _, step in pipeline.steps:
        for iteration in getattr(step, "_predictors", None) or []:
            for tree in iteration:
                nodes = getattr(tree, "nodes", None)
                if not (
                    isinstance(nodes, np.ndarray)
                    and nodes.dtype == PREDICTOR_RECORD_DTYPE
                    and nodes.ndim == 1
                    and len(nodes) > 0
                ):
                    raise UntrustedArtifact("a tree's nodes are not a tree's node array")
                split = nodes["is_leaf"] == 0
                at = np.flatnonzero(split)
                children = (nodes[child][split].astype(np.int64) for child in ("left", "right"))
                features = nodes["feature_idx"][split]
                if (
                    not all(((c > at) & (c < len(nodes))).all() for c in children)
                    or not ((features >= 0) & (features < step.n_features_in_)).all()
                    or nodes["is_categorical"].any()
                ):
                    raise UntrustedArtifact(
                        "a tree's split points outside the tree or its features; refused"
                    )


def _audit(schema: object) -> None:
    if found := sorted(set(_outside_lists(_nodes(schema)))):
        raise UntrustedArtifact(
            f"the fitted model holds type(s) {', '.join(found)} that are not in "
            "skops_format.TRUSTED_TYPES / TRUSTED_NODES; add them there deliberately"
        )


def _nodes(state: object) -> Iterator[dict]:
    """Every node in a skops schema: each dict that names a loader, at any depth."""
    stack = [state]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _outside_lists(nodes: Iterable[dict]) -> Iterator[str]:
    for node in nodes:
        loader, module, name = node.get("__loader__"), node.get("__module__"), node.get("__class__")
        if not all(isinstance(part, str) for part in (loader, module, name)):
            yield f"<malformed node {str(loader)[:40]!r}>"
            continue
        if loader not in _TRUSTED_NODE_SET:
            yield f"{module}.{name} (as {loader})"
        elif f"{module}.{name}" not in _TRUSTED_TYPE_SET:
            yield f"{module}.{name}"


def _canonical(schema: dict, members: dict[str, bytes]) -> bytes:
    """The archive rebuilt with ids and member names numbered in order of appearance and fixed
    timestamps, so that it depends on the fit alone."""
    ids: dict[int, int] = {}
    names: dict[str, str] = {}

    def renumber(item: object) -> object:
        if isinstance(item, list):
            return [renumber(value) for value in item]
        if not isinstance(item, dict):
            return item
        out = {key: renumber(value) for key, value in item.items()}
        if "__loader__" in item:
            if isinstance(item.get("__id__"), int):
                # ids start at 1: skops treats an id of 0 as none
                out["__id__"] = ids.setdefault(item["__id__"], len(ids) + 1)
            if isinstance(item.get("file"), str) and item["file"] in members:
                suffix = item["file"][item["file"].rfind(".") :] if "." in item["file"] else ""
                out["file"] = names.setdefault(item["file"], f"{len(names):06d}{suffix}")
        return out

    canonical = renumber(schema)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        entries = [(_SCHEMA, json.dumps(canonical, separators=(",", ":")).encode())]
        entries += sorted((names[old], data) for old, data in members.items() if old in names)
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()
