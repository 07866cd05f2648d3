"""Trained models as bytes with provenance: loading refuses anything it cannot vouch for.

Unpickling runs code, so a model is loaded only if its bytes hash to the sha256 recorded when
it was trained, and only by the scikit-learn version that trained it.
"""

import hashlib
import pickle
import platform


def _sklearn_version() -> str:
    import sklearn  # imported on use: see ml/models.py

    return sklearn.__version__


class ModelIntegrityError(RuntimeError):
    """A stored model whose bytes or scikit-learn version do not match its record."""


def dump_model(pipeline) -> tuple[bytes, str]:
    blob = pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)
    return blob, hashlib.sha256(blob).hexdigest()


def runtime_versions() -> dict[str, str]:
    return {"sklearn_version": _sklearn_version(), "python_version": platform.python_version()}


def load_model(blob: bytes, sha256: str, sklearn_version: str, name: str = "model"):
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise ModelIntegrityError(
            f"{name}: stored bytes hash to {digest[:12]}..., not the recorded {sha256[:12]}...; "
            "refusing to unpickle it (retrain the model)"
        )
    if sklearn_version != _sklearn_version():
        raise ModelIntegrityError(
            f"{name} was trained with scikit-learn {sklearn_version}, this process has "
            f"{_sklearn_version()}; refusing to load it (retrain the model)"
        )
    return pickle.loads(blob)  # noqa: S301 - verified above
