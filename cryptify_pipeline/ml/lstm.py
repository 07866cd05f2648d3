"""The LSTM of the web app this replaces: a Keras network over the last N hours of features.

A sample at hour t is the feature rows of hours t - N + 1 .. t of one symbol (``windows``),
never a later one; its target is the h-hour log return, as for every model of the zoo. One
network per symbol learns every horizon at once (an output each: one fit instead of three, and
no less accurate on the sample market, ``benchmarks/lstm_accuracy.py``); each horizon is stored
as its own network, the shared LSTM with that output's head. The network is small on purpose
(a day of models must stay cheap): standardise, ``LSTM(UNITS)``, ``Dense(1)``, and a fixed
rescaling of the output back to log returns. The standardisation (the fitted windows' means
and variances) and the target's scale are layers of the saved model, so a forecast uses
nothing that the signature does not cover.

Training (``train``): epochs are chosen like the boosted models' rounds, on the last part of
the fitted rows, time-ordered and purged (``training.fit_windowed`` splits them): early stopping
there, then the network fitted on all the fitted windows for the best number of epochs.
Seeded, one XLA thread: the same rows give the same network, bytes included.

Stored in Keras's own ``.keras`` archive (``dumps``), rewritten canonically (no save date,
object ids numbered, fixed member times: equal networks give equal bytes), an archive Keras
loads with ``safe_mode=True`` (``keras_loads``). Forecasts never import Keras (5-6 CPU seconds
a process, more than an hour's other forecasts): ``loads`` checks that the archive holds
exactly the three files Keras writes and that its config is exactly the zoo's LSTM
(``check_archive``: layer classes, settings, shapes; a Lambda or any other layer is refused),
reads the weights from its HDF5 file with h5py, checking their names and shapes, and
``forward`` computes the network in float64 (equal to Keras's predict to 1e-6, a test checks).

Keras (on JAX) is imported only to train (``keras_module``), never with this module.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

WINDOW_HOURS = 48  # N: hours of feature rows per sample (TrainConfig.lstm_window_hours)
MAX_WINDOW_HOURS = 168  # the longest window a run may ask for: predictions read this far back
UNITS = 32
BATCH_SIZE = 256
MAX_EPOCHS = 12
PATIENCE = 2  # epochs without a better hold-out loss before the probe stops
LEARNING_RATE = 3e-3
SEED = 0

# What a .keras archive of ours holds, exactly, and the only layer classes it may name.
ARCHIVE_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")
TRUSTED_LAYERS = ("InputLayer", "Normalization", "LSTM", "Dense", "Rescaling")
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def keras_module() -> Any:
    """Keras, imported on first use, on JAX's CPU backend."""
    # JAX on the CPU, one thread per fit (the symbols' worker processes share the cores, and a
    # single-threaded XLA reduces in one order: the same fit, the same bytes)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    # XLA's compiled steps kept on disk for the next process (a daily run is a fresh one):
    # compiling them took half of a day's LSTM training (~7 of ~16 CPU seconds for two
    # symbols). The user's own cache directory, never a shared one: JAX runs what it finds there
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(compilation_cache_dir()))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(
            f"the LSTM runs on Keras's JAX backend, but KERAS_BACKEND is "
            f"{keras.backend.backend()!r}: unset it or set it to jax"
        )
    return keras


def compilation_cache_dir() -> Path:
    """Where JAX keeps the LSTM's compiled steps by default: ``$XDG_CACHE_HOME`` (else
    ``~/.cache``) ``/cryptify/jax`` (``keras_module`` leaves a ``JAX_COMPILATION_CACHE_DIR``
    already set alone)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cryptify" / "jax"


def windows(history: pd.DataFrame, at: Any, columns: list[str], hours: int) -> np.ndarray:
    """(len(at), hours, len(columns)) float32: for each hour t of ``at``, ``columns`` of the
    rows of ``history`` (one symbol's, with ``ts``) at t - hours + 1 .. t, oldest first; an
    hour without a row is NaN. Only rows at or before t are read: no look-ahead."""
    at = pd.DatetimeIndex(at)
    if not len(at):
        return np.empty((0, hours, len(columns)), dtype="float32")
    first = at.min() - timedelta(hours=hours - 1)
    grid = pd.date_range(first, at.max(), freq="h")
    values = (
        history.drop_duplicates("ts", keep="last")
        .set_index("ts")[list(columns)]
        .reindex(grid)
        .to_numpy("float32")
    )
    ends = np.asarray((at - first) // timedelta(hours=1), dtype="int64")  # row of t in the grid
    offsets = np.arange(-(hours - 1), 1)
    return values[ends[:, None] + offsets[None, :]]


def short_of_history(history: pd.DataFrame, at: Any, hours: int) -> pd.DatetimeIndex:
    """The hours of ``at`` whose window begins before ``history``'s first row: too little
    history to forecast from. (A gap inside a window is not: its hours are NaN, and NaN
    features stand at the training mean, as for the other models.)"""
    at = pd.DatetimeIndex(at).unique().sort_values()
    if history.empty:
        return at
    return at[at - timedelta(hours=hours - 1) < pd.Timestamp(history["ts"].min())]


@dataclass
class LstmForecaster:
    """A network of the zoo as ``forward`` computes it: its standardisation, weights and output
    map (``values``) and its window; ``network`` is the Keras network when freshly trained
    (what ``dumps`` saves), None when read back from an archive (``loads``: no Keras)."""

    values: dict[str, np.ndarray]
    window_hours: int
    network: Any = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The log returns of windows ``x``, computed in float64 by ``forward`` (a NaN, a gap
        or context not yet known, stands at the training mean). Not Keras's predict: that
        needs Keras imported (~3 s a process) and compiles anew for every network loaded."""
        return forward(self.values, x)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * z) + 1.0)


def _outputs(values: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """(samples, outputs): the LSTM's last state through the dense head, before rescaling."""
    x = standardised(x, values["mean"], values["variance"])
    units = values["recurrent"].shape[0]
    h = np.zeros((len(x), units))
    c = np.zeros((len(x), units))
    inputs = x @ values["kernel"] + values["bias"]  # every hour's input part at once
    for hour in range(x.shape[1]):
        z = inputs[:, hour] + h @ values["recurrent"]
        i, f = _sigmoid(z[:, :units]), _sigmoid(z[:, units : 2 * units])
        c = f * c + i * np.tanh(z[:, 2 * units : 3 * units])
        h = _sigmoid(z[:, 3 * units :]) * np.tanh(c)
    return h @ values["dense_kernel"] + values["dense_bias"]


def forward(values: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The network's output for windows ``x`` (samples, hours, features): Keras's
    Normalization, LSTM (tanh, sigmoid gates in the order i, f, c, o; ``check_archive``
    refuses any other configuration), Dense(1) and Rescaling, written out."""
    if not len(x):
        return np.empty(0, dtype="float64")
    return _outputs(values, x).reshape(-1) * values["scale"] + values["offset"]


def standardised(x: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Keras's Normalization of ``x`` in float64, a NaN at the mean (0 once standardised)."""
    x = (np.asarray(x, "float64") - mean) / np.maximum(np.sqrt(variance), 1e-7)
    return np.where(np.isnan(x), 0.0, x)


@dataclass(frozen=True)
class UntrainedLstm:
    """The zoo's entry before training (``models.lstm``): ``training.fit_windowed`` fits it."""

    def fit(self, *_: Any) -> Any:
        raise TypeError("the lstm is fitted on windows of past rows: use training.fit_windowed")


def is_lstm(model: Any) -> bool:
    """Whether ``model`` is the zoo's LSTM, trained or not (stored as ``keras``)."""
    return isinstance(model, LstmForecaster | UntrainedLstm)


# One training network per shape and process, reset to the same seeded start before each fit:
# a network's first fit compiles its step (~2 s), longer than the fit itself
_TRAINERS: dict[tuple[int, int, int], tuple[Any, list, list]] = {}


def _trainer(keras: Any, hours: int, features: int, outputs: int) -> Any:
    shape = (hours, features, outputs)
    if shape not in _TRAINERS:
        keras.utils.set_random_seed(SEED)
        network = keras.Sequential(
            [
                keras.Input(shape=(hours, features), name="window"),
                keras.layers.LSTM(UNITS, name="lstm"),
                keras.layers.Dense(outputs, name="standardised_return"),
            ],
            name="lstm_trainer",
        )
        network.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")
        network.optimizer.build(network.trainable_variables)
        weights = network.get_weights()
        optimizer_state = [np.array(variable.numpy()) for variable in network.optimizer.variables]
        # a first fit compiles the step, and compiling draws from the random state: the first
        # real fit of a process would be shuffled unlike every later one. A batch of zero
        # weight compiles it here, and its state is then put back
        network.fit(
            np.zeros((BATCH_SIZE, hours, features), "float32"),
            np.zeros((BATCH_SIZE, outputs), "float32"),
            sample_weight=np.zeros(BATCH_SIZE, "float32"), epochs=1, batch_size=BATCH_SIZE,
            verbose=0,
        )  # fmt: skip
        _TRAINERS[shape] = (network, weights, optimizer_state)
    network, weights, optimizer_state = _TRAINERS[shape]
    network.set_weights(weights)
    for variable, value in zip(network.optimizer.variables, optimizer_state, strict=True):
        variable.assign(value)
    keras.utils.set_random_seed(SEED)  # the batches' order
    return network


def _padded(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x`` and ``y`` padded to whole batches, with sample weights 0 for the padding: every
    batch has the one shape, so the compiled step is reused."""
    pad = -len(x) % BATCH_SIZE
    weights = np.concatenate([np.ones(len(x)), np.zeros(pad)]).astype("float32")
    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), "float32")])
    return x, np.concatenate([y, np.zeros((pad, *y.shape[1:]), "float32")]), weights


def complete_windows(x: np.ndarray, y: np.ndarray, required: int) -> np.ndarray:
    """Which windows have their first ``required`` columns known at every hour, and every
    target (``y``: one column per horizon, or one target): training fits complete windows only
    (forecasts fill gaps), as the other models fit complete rows."""
    targets = np.isfinite(y) if y.ndim == 1 else np.isfinite(y).all(axis=1)
    return np.isfinite(x[:, :, :required]).all(axis=(1, 2)) & targets


def training_samples(x: np.ndarray, y: np.ndarray, required: int) -> tuple[np.ndarray, np.ndarray]:
    """The complete windows of ``x`` and their targets (``complete_windows``)."""
    keep = complete_windows(x, y, required)
    return x[keep], y[keep]


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance of the training windows' values (float32, as the
    Normalization layer holds them)."""
    flat = x.reshape(-1, x.shape[-1]).astype("float64")
    mean = np.nan_to_num(np.nanmean(flat, axis=0))
    variance = np.nan_to_num(np.nanvar(flat, axis=0), nan=1.0)
    return mean.astype("float32"), np.where(variance > 0, variance, 1.0).astype("float32")


def _trained_values(network: Any) -> dict[str, np.ndarray]:
    kernel, recurrent, bias = network.get_layer("lstm").get_weights()
    dense_kernel, dense_bias = network.get_layer("standardised_return").get_weights()
    return {
        "kernel": kernel.astype("float64"), "recurrent": recurrent.astype("float64"),
        "bias": bias.astype("float64"), "dense_kernel": dense_kernel.astype("float64"),
        "dense_bias": dense_bias.astype("float64"),
    }  # fmt: skip


def _fit(
    keras: Any, x: np.ndarray, y: np.ndarray, epochs: int, check=None
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:  # fmt: skip
    """The trainer fitted on windows ``x`` (raw) and targets ``y`` (a column per output) for
    ``epochs``, or, with ``check`` windows and targets, until ``PATIENCE`` epochs bring no
    lower loss there (the mean over the outputs, each in units of its target's spread); the
    standardisation and target scales it was fitted with, and the epochs (the best, with
    ``check``)."""
    mean, variance = _standardisation(x)
    centre, spread = y.mean(axis=0), y.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    network = _trainer(keras, x.shape[1], x.shape[2], y.shape[1])
    inputs, targets, weights = _padded(
        standardised(x, mean, variance).astype("float32"), ((y - centre) / spread).astype("float32")
    )
    if check is None:
        network.fit(inputs, targets, sample_weight=weights, epochs=epochs,
                    batch_size=BATCH_SIZE, shuffle=True, verbose=0)  # fmt: skip
        return network, mean, variance, centre, spread, epochs
    expected = (check[1] - centre) / spread
    standardisation = {"mean": mean.astype("float64"), "variance": variance.astype("float64")}
    losses: list[float] = []
    while len(losses) < epochs and len(losses) - int(np.argmin(losses or [0])) <= PATIENCE:
        network.fit(inputs, targets, sample_weight=weights, epochs=1,
                    batch_size=BATCH_SIZE, shuffle=True, verbose=0)  # fmt: skip
        values = {**_trained_values(network), **standardisation}
        losses.append(float(np.mean((_outputs(values, check[0]) - expected) ** 2)))
    return network, mean, variance, centre, spread, int(np.argmin(losses)) + 1


def train(
    fit: tuple[np.ndarray, np.ndarray],
    probe: tuple[np.ndarray, np.ndarray],
    check: tuple[np.ndarray, np.ndarray],
) -> tuple[list[LstmForecaster], int]:
    """Networks fitted on the windows and targets ``fit`` (one target column per output), one
    per output, and their epochs: chosen by early stopping of a probe fitted on ``probe`` and
    scored on ``check`` (the last fitted rows, purged), as the boosted models' rounds are; each
    fit standardised on its own training windows only.

    One network learns every column of ``y`` at once (the horizons of a symbol share their
    LSTM); each output is then stored as its own network: the shared LSTM and that output's
    row of the dense head and its rescaling, the architecture ``forward`` computes.
    """
    keras = keras_module()

    def columns(part: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return part[0], part[1].reshape(len(part[1]), -1).astype("float64")

    *_, epochs = _fit(keras, *columns(probe), MAX_EPOCHS, check=columns(check))
    network, mean, variance, centre, spread, _ = _fit(keras, *columns(fit), epochs)
    stored = [
        _stored(keras, network, mean, variance, output, spread[output], centre[output])
        for output in range(len(centre))
    ]
    return stored, epochs


def _stored(
    keras: Any, trainer: Any, mean: np.ndarray, variance: np.ndarray, output: int,
    scale: float, offset: float,
) -> LstmForecaster:  # fmt: skip
    """The network stored for one output of ``trainer``: the standardisation, the shared LSTM,
    that output's dense row and the fixed map from standardised returns back to log returns,
    all in the one signed archive."""
    hours, features = trainer.input_shape[1:]
    scale, offset = float(scale), float(offset)
    network = keras.Sequential(
        [
            keras.Input(shape=(hours, features), name="window"),
            keras.layers.Normalization(
                axis=-1, mean=mean.tolist(), variance=variance.tolist(), name="standardise"
            ),
            # zeros to start: the trained weights are set next, and Keras's default
            # initialisers (a QR decomposition for the recurrent kernel) compiled anew for
            # every network built, most of the cost of storing one
            keras.layers.LSTM(
                UNITS, kernel_initializer="zeros", recurrent_initializer="zeros", name="lstm"
            ),
            keras.layers.Dense(1, kernel_initializer="zeros", name="standardised_return"),
            keras.layers.Rescaling(scale=scale, offset=offset, name="log_return"),
        ],
        name="lstm",
    )
    network.get_layer("lstm").set_weights(trainer.get_layer("lstm").get_weights())
    kernel, bias = trainer.get_layer("standardised_return").get_weights()
    network.get_layer("standardised_return").set_weights(
        [kernel[:, output : output + 1], bias[output : output + 1]]
    )
    return LstmForecaster(values_of(network), hours, network)


def values_of(network: Any) -> dict[str, np.ndarray]:
    """What ``forward`` computes with, from a Keras network of the zoo: the standardisation and
    output map of its config (float32, as Keras holds them), and its layers' weights."""
    standardise = network.get_layer("standardise").get_config()
    rescale = network.get_layer("log_return").get_config()
    return {
        **_trained_values(network),
        "mean": np.asarray(standardise["mean"], "float32").astype("float64").reshape(-1),
        "variance": np.asarray(standardise["variance"], "float32").astype("float64").reshape(-1),
        "scale": np.float64(np.float32(rescale["scale"])),
        "offset": np.float64(np.float32(rescale["offset"])),
    }


def dumps(model: LstmForecaster) -> bytes:
    """The network as a ``.keras`` archive, rewritten with fixed member times and order and
    without the save date: equal networks give equal bytes."""
    if model.network is None:
        raise ValueError("an LSTM read back from its archive is stored as those bytes")
    with tempfile.TemporaryDirectory(prefix="cryptify-lstm-") as directory:
        path = Path(directory) / "model.keras"
        model.network.save(path, zipped=True)
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
    if sorted(members) != sorted(ARCHIVE_MEMBERS):
        raise ValueError(f"Keras wrote {sorted(members)}, not {list(ARCHIVE_MEMBERS)}")
    metadata = json.loads(members["metadata.json"])
    metadata.pop("date_saved", None)
    members["metadata.json"] = json.dumps(metadata, sort_keys=True).encode()
    config = _renumbered(json.loads(members["config.json"]), {})
    members["config.json"] = json.dumps(config).encode()
    return _archive(members)


def _renumbered(value: Any, ids: dict[int, int]) -> Any:
    """``value`` with each ``shared_object_id`` (a memory address) numbered in order of first
    appearance: the same objects shared, the same text every time."""
    if isinstance(value, dict):
        return {
            key: ids.setdefault(item, len(ids) + 1)
            if key == "shared_object_id"
            else _renumbered(item, ids)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_renumbered(item, ids) for item in value]
    return value


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ARCHIVE_MEMBERS:
            info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            archive.writestr(info, members[name])
    return buffer.getvalue()


def _members(blob: bytes) -> dict[str, bytes]:
    """The archive's three members; anything else (more, fewer, not a zip) is refused."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            names = archive.namelist()
            if sorted(names) != sorted(ARCHIVE_MEMBERS):
                raise ValueError(
                    f"the archive holds {sorted(names)}; a .keras model of the zoo holds "
                    f"exactly {list(ARCHIVE_MEMBERS)}"
                )
            return {name: archive.read(name) for name in ARCHIVE_MEMBERS}
    except zipfile.BadZipFile as error:
        raise ValueError(f"not a .keras archive: {error}") from None


@dataclass(frozen=True)
class Architecture:
    """What a checked config says: the window's hours and features, the LSTM's units, and the
    standardisation and output map ``forward`` applies."""

    hours: int
    features: int
    units: int
    mean: np.ndarray
    variance: np.ndarray
    scale: float
    offset: float


def check_archive(blob: bytes) -> Architecture:
    """The architecture of the archive's config, refused (ValueError) unless it is exactly the
    zoo's LSTM: the three files Keras writes, a keras.Sequential of exactly the layers
    ``_LAYERS`` (no other class, such as a Lambda, nor module), each configured as ``forward``
    computes it, with consistent shapes."""
    members = _members(blob)
    try:
        config = json.loads(members["config.json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"not a .keras archive: config.json: {error}") from None
    if not isinstance(config, dict):
        raise ValueError("not a .keras archive: config.json is not an object")
    try:
        return _architecture(config)
    except (AttributeError, KeyError, TypeError) as error:
        # a layer list or setting of the wrong type: refused as a config, not a crash
        raise ValueError(f"the config is not the zoo's LSTM's: {error!r}") from None


def _architecture(config: dict[str, Any]) -> Architecture:
    """``check_archive`` for a parsed config."""
    if config.get("class_name") != "Sequential" or config.get("module") != "keras":
        raise ValueError(
            f"the model is a {config.get('module')}.{config.get('class_name')}, not a "
            "keras.Sequential"
        )
    layers = config.get("config", {}).get("layers", [])
    for layer in layers:
        name, module = layer.get("class_name"), layer.get("module")
        if name not in TRUSTED_LAYERS or module != "keras.layers":
            raise ValueError(
                f"the model holds a {module}.{name} layer; only {', '.join(TRUSTED_LAYERS)} of "
                "keras.layers are trusted"
            )
    shape = [(layer["class_name"], layer["config"].get("name")) for layer in layers]
    if shape != _LAYERS:
        raise ValueError(f"the layers are {shape}, not the zoo's LSTM {_LAYERS}")
    # ``forward`` computes exactly this configuration
    settings = {layer["config"]["name"]: layer["config"] for layer in layers}
    for layer, expected in _SETTINGS.items():
        wrong = {
            k: settings[layer].get(k) for k, v in expected.items() if settings[layer].get(k) != v
        }
        if wrong:
            raise ValueError(f"layer {layer} is configured {wrong}, not {expected}")
    try:
        _, hours, features = settings["window"]["batch_shape"]
        units = int(settings["lstm"]["units"])
        mean = np.asarray(settings["standardise"]["mean"], "float32").reshape(-1)
        variance = np.asarray(settings["standardise"]["variance"], "float32").reshape(-1)
        scale = float(np.float32(settings["log_return"]["scale"]))
        offset = float(np.float32(settings["log_return"]["offset"]))
        hours, features = int(hours), int(features)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"the config's shapes are not the zoo's LSTM's: {error!r}") from None
    if not (0 < hours <= MAX_WINDOW_HOURS and features > 0 and units > 0):
        raise ValueError(f"a window of {hours} hours of {features} features into {units} units")
    if mean.shape != (features,) or variance.shape != (features,):
        raise ValueError(
            f"the standardisation has {mean.size} means and {variance.size} variances for "
            f"{features} features"
        )
    if not (np.isfinite(mean).all() and np.isfinite(variance).all() and (variance >= 0).all()):
        raise ValueError("the standardisation holds a non-finite mean or a negative variance")
    if not (np.isfinite(scale) and np.isfinite(offset)):
        raise ValueError("the output map is not finite")
    return Architecture(hours, features, units, mean, variance, scale, offset)


_LAYERS = [
    ("InputLayer", "window"),
    ("Normalization", "standardise"),
    ("LSTM", "lstm"),
    ("Dense", "standardised_return"),
    ("Rescaling", "log_return"),
]
_SETTINGS = {
    "window": {"dtype": "float32", "sparse": False, "ragged": False},
    "standardise": {"axis": [-1], "invert": False},
    "lstm": {
        "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
        "return_sequences": False, "return_state": False, "go_backwards": False,
        "stateful": False, "unroll": False,
    },
    "standardised_return": {"activation": "linear", "use_bias": True, "units": 1},
}  # fmt: skip


def _weights(data: bytes, architecture: Architecture) -> dict[str, np.ndarray]:
    """The weights in ``model.weights.h5``, read with h5py (no Keras): exactly the datasets the
    zoo's LSTM has, of the shapes its config says, all finite; anything else is refused."""
    import h5py  # installed with Keras; imported here, as only forecasts from an LSTM read it

    units, features = architecture.units, architecture.features
    expected = {
        "layers/lstm/cell/vars/0": (features, 4 * units),
        "layers/lstm/cell/vars/1": (units, 4 * units),
        "layers/lstm/cell/vars/2": (4 * units,),
        "layers/dense/vars/0": (units, 1),
        "layers/dense/vars/1": (1,),
    }
    found: dict[str, Any] = {}
    try:
        with h5py.File(io.BytesIO(data), "r") as weights:

            def visit(name: str, item: Any) -> None:
                if isinstance(item, h5py.Dataset):
                    found[name] = np.asarray(item[()])

            weights.visititems(visit)
    except (OSError, ValueError) as error:
        raise ValueError(f"model.weights.h5 is not an HDF5 file of weights: {error}") from None
    if sorted(found) != sorted(expected):
        raise ValueError(
            f"model.weights.h5 holds {sorted(found)}; the zoo's LSTM has exactly {sorted(expected)}"
        )
    for name, shape in expected.items():
        array = found[name]
        if array.shape != shape or array.dtype != np.float32 or not np.isfinite(array).all():
            raise ValueError(
                f"model.weights.h5's {name} is {array.dtype} {array.shape}, not finite float32 "
                f"{shape}"
            )
    return {
        "kernel": found["layers/lstm/cell/vars/0"].astype("float64"),
        "recurrent": found["layers/lstm/cell/vars/1"].astype("float64"),
        "bias": found["layers/lstm/cell/vars/2"].astype("float64"),
        "dense_kernel": found["layers/dense/vars/0"].astype("float64"),
        "dense_bias": found["layers/dense/vars/1"].astype("float64"),
    }


def loads(blob: bytes) -> LstmForecaster:
    """The network in ``blob`` as ``forward`` computes it, without Keras: its config checked to
    be exactly the zoo's LSTM (``check_archive``) and its weights read from the archive's HDF5
    file (``_weights``). The archive stays one Keras loads in safe mode (``keras_loads``)."""
    architecture = check_archive(blob)
    values = {
        **_weights(_members(blob)["model.weights.h5"], architecture),
        "mean": architecture.mean.astype("float64"),
        "variance": architecture.variance.astype("float64"),
        "scale": np.float64(architecture.scale),
        "offset": np.float64(architecture.offset),
    }
    return LstmForecaster(values, architecture.hours)


def keras_loads(blob: bytes) -> Any:
    """The Keras network in ``blob``, checked (``check_archive``) and loaded in Keras's safe
    mode: what the stored format promises, and what ``forward`` is tested against."""
    check_archive(blob)
    keras = keras_module()
    with tempfile.TemporaryDirectory(prefix="cryptify-lstm-") as directory:
        path = Path(directory) / "model.keras"
        path.write_bytes(blob)
        try:
            return keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many types for a bad file: all are refusals
            raise ValueError(
                f"Keras refused the archive: {type(error).__name__}: {error}"
            ) from None
