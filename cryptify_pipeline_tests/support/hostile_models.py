"""Model artifacts that run a command when deserialised, and proof that they really would.

Each payload creates ``marker`` through ``os.system``, as the attack on the models table did.
``runs_when_deserialised`` deserialises a payload in a separate process with the loader that
trusts it and reports whether the marker appeared there, so a test that shows a payload refused
also shows that the payload was live.

``keras_lambda_payload`` is a real .keras archive whose Lambda layer runs the command;
``keras_with_member`` and ``keras_with_config`` alter a real one.

``xgboost_walking_out`` is a real XGBoost JSON whose first split leads outside its tree: XGBoost
loads it, and its predict then segfaults.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import skops
from skops.io._protocol import PROTOCOL


class _RunsCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def touch_command(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def pickle_payload(marker: Path) -> bytes:
    """A pickle that runs ``touch marker`` when it is unpickled."""
    return pickle.dumps(_RunsCommand(touch_command(marker)))


def xgboost_walking_out(data: bytes) -> bytes:
    """XGBoost's JSON ``data`` with its first tree's root leading to a node a million past the
    end of the tree."""
    document = json.loads(data)
    tree = document["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["left_children"][0] = 10**6
    return json.dumps(document, separators=(",", ":")).encode()


def skops_payload(marker: Path) -> bytes:
    """A well-formed skops file whose only object is a call of ``os.system('touch marker')``:
    skops builds it if told to trust ``os.system``."""

    def node(cls: str, module: str, loader: str, **fields) -> dict:
        return {"__class__": cls, "__module__": module, "__loader__": loader, **fields}

    command = node("str", "builtins", "JsonNode", content=json.dumps(touch_command(marker)))
    command["is_json"] = True
    schema = node(
        "system", "os", "ConstructorFromReduceNode",
        content=node("tuple", "builtins", "TupleNode", content=[command]),
        protocol=PROTOCOL, _skops_version=skops.__version__,
    )  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


_LOADERS = {
    "pickle": "import pickle, sys; pickle.loads(sys.stdin.buffer.read())",
    # trusting exactly what skops reports as untrusted in the file
    "skops": (
        "import sys, skops.io as sio; data = sys.stdin.buffer.read(); "
        "sio.loads(data, trusted=sio.get_untrusted_types(data=data))"
    ),
    # Keras outside its safe mode, calling the network once
    "keras-unsafe": (
        "import os, sys, tempfile; os.environ['KERAS_BACKEND'] = 'jax'; import keras, numpy; "
        "path = os.path.join(tempfile.mkdtemp(), 'model.keras'); "
        "open(path, 'wb').write(sys.stdin.buffer.read()); "
        "keras.saving.load_model(path, safe_mode=False).predict(numpy.zeros((1, 2)), verbose=0)"
    ),
}


def runs_when_deserialised(payload: bytes, loader: str, marker: Path) -> bool:
    """Whether ``payload``, deserialised by ``loader`` (pickle, skops trusting what the file
    names, or Keras outside safe mode) in another process, creates ``marker``."""
    subprocess.run(
        [sys.executable, "-c", _LOADERS[loader]], input=payload, capture_output=True, timeout=60
    )
    return marker.exists()


def keras_lambda_payload(marker: Path) -> bytes:
    """A .keras archive of a network whose Lambda layer runs ``touch marker`` when it is
    called: Keras rebuilds the function only outside its safe mode. Building it may already
    run the command here: the marker is removed before it is returned."""
    import tempfile

    from cryptify_pipeline.ml.lstm import keras_module

    keras = keras_module()
    command = touch_command(marker)
    runs = eval(f"lambda x: (__import__('os').system({command!r}), x)[1]")  # noqa: S307
    network = keras.Sequential(
        [keras.Input(shape=(2,)), keras.layers.Lambda(runs, output_shape=(2,), name="payload")]
    )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "payload.keras"
        network.save(path)
        payload = path.read_bytes()
    marker.unlink(missing_ok=True)
    return payload


def keras_with_member(data: bytes, name: str, content: bytes) -> bytes:
    """The .keras archive ``data`` with one more member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as archive:
        for member in source.namelist():
            archive.writestr(member, source.read(member))
        archive.writestr(name, content)
    return buffer.getvalue()


def keras_with_config(data: bytes, change) -> bytes:
    """The .keras archive ``data`` with ``change`` applied to its parsed config.json."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as archive:
        for member in source.namelist():
            content = source.read(member)
            if member == "config.json":
                config = json.loads(content)
                change(config)
                content = json.dumps(config).encode()
            archive.writestr(member, content)
    return buffer.getvalue()
