"""The Keras importer (xbar.importers.keras): files written by Keras itself (a test-only dependency, Keras 3 on
the PyTorch backend; skipped without it) and files written here to the documented layout (always run)."""

from __future__ import annotations

import io
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

from xbar.errors import XbarError
from xbar.importers.keras import import_model
from xbar.nets import Activation, Conv2D, Dense

os.environ.setdefault("KERAS_BACKEND", "torch")

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

RTOL = 1e-4
"""Largest difference allowed between xbar's and Keras's logits, relative to the largest logit (float32)."""


def _tensor(name):
    return {"class_name": "__keras_tensor__", "config": {"shape": None, "keras_history": [name, 0, 0]}}


def _layer(cls, name, config, sources=()):
    node = [{"args": [_tensor(s) for s in sources] if len(sources) == 1 else [[_tensor(s) for s in sources]]}]
    return {
        "class_name": cls,
        "name": name,
        "config": {"name": name, **config},
        "inbound_nodes": node if sources else [],
    }


def _functional(layers, output):
    first = layers[0]["name"]
    return {
        "class_name": "Functional",
        "config": {"name": "m", "layers": layers, "input_layers": [[first, 0, 0]], "output_layers": [[output, 0, 0]]},
    }


def _write_keras(path, config, variables, *, metadata=True, skip=()):
    """A ``.keras`` archive in Keras 3's layout: ``variables`` maps a weights-file group (``layers/dense``) to
    its arrays, stored as ``<group>/vars/0``, ``1``, ..."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for group, arrays in variables.items():
            sub = f.create_group(group).create_group("vars")
            for i, array in enumerate(arrays):
                sub.create_dataset(str(i), data=np.asarray(array, np.float32))
    with zipfile.ZipFile(path, "w") as archive:
        if metadata:
            archive.writestr("metadata.json", json.dumps({"keras_version": "3.99.0"}))
        if "config.json" not in skip:
            archive.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
        if "model.weights.h5" not in skip:
            archive.writestr("model.weights.h5", buffer.getvalue())
    return path


def _small(rng):
    """A hand-written functional model, Conv2D -> BatchNormalization -> ReLU -> Dropout -> Flatten -> Dense
    (softmax), with its variables and the numpy logits it computes."""
    kernel = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    mean, var = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    dense_kernel = rng.normal(size=(4 * 4 * 4, 3)).astype(np.float32)
    dense_bias = rng.normal(size=3).astype(np.float32)
    layers = [
        _layer("InputLayer", "input_layer", {"batch_shape": [None, 6, 6, 2]}),
        _layer("Conv2D", "c", {"filters": 4, "kernel_size": [3, 3], "padding": "valid"}, ["input_layer"]),
        _layer("BatchNormalization", "bn", {"epsilon": 0.001}, ["c"]),
        _layer("ReLU", "r", {}, ["bn"]),
        _layer("Dropout", "d", {"rate": 0.5}, ["r"]),
        _layer("Flatten", "f", {}, ["d"]),
        _layer("Dense", "out", {"units": 3, "activation": "softmax"}, ["f"]),
    ]
    variables = {
        "layers/conv2d": [kernel, bias],
        "layers/batch_normalization": [gamma, beta, mean, var],
        "layers/dense": [dense_kernel, dense_bias],
    }

    def reference(x):
        patches = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # (b, 4, 4, 2, 3, 3)
        z = np.einsum("bijcpq,pqco->bijo", patches, kernel) + bias
        z = gamma * (z - mean) / np.sqrt(var + 0.001) + beta
        z = np.maximum(z, 0).reshape(len(x), -1)
        return z @ dense_kernel + dense_bias

    return _functional(layers, "out"), variables, reference


def _keras():
    """Keras 3 (a test-only dependency) on the PyTorch backend, or a skip where it is missing or will not import."""
    return pytest.importorskip("keras", reason="needs Keras 3 (the test extra)", exc_type=ImportError)


def _one_line_error(path, match):
    with pytest.raises(XbarError) as info:
        import_model(path, None)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    assert match in message, message
    return message


# ---------------------------------------------------------------------------------------------------------------
# Files written here to the documented layout.


def test_handwritten_archive_matches_numpy(tmp_path):
    rng = np.random.default_rng(0)
    config, variables, reference = _small(rng)
    network = import_model(_write_keras(tmp_path / "m.keras", config, variables), None)
    assert network.input_shape == (6, 6, 2) and network.n_classes == 3
    assert network.provenance == {"framework": "keras", "keras_version": "3.99.0"}
    assert [layer.kind for layer in network.layers] == ["conv2d", "activation", "flatten", "dense"]
    x = rng.uniform(size=(8, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(network.forward(x), reference(x), rtol=1e-4, atol=1e-4)


def test_handwritten_legacy_keras2_file(tmp_path):
    """A Keras 2 style ``.h5``: old inbound nodes, ``batch_input_shape``, weight names with ``:0``."""
    rng = np.random.default_rng(1)
    k1, b1, k2 = (rng.normal(size=s).astype(np.float32) for s in ((5, 4), (4,), (4, 2)))
    config = {
        "class_name": "Model",
        "config": {
            "name": "model",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "name": "in",
                    "config": {"batch_input_shape": [None, 5]},
                    "inbound_nodes": [],
                },
                {
                    "class_name": "Dense",
                    "name": "h",
                    "config": {"units": 4, "activation": "relu6"},
                    "inbound_nodes": [[["in", 0, 0, {}]]],
                },
                {
                    "class_name": "LeakyReLU",
                    "name": "lr",
                    "config": {"alpha": 0.1},
                    "inbound_nodes": [[["h", 0, 0, {}]]],
                },
                {
                    "class_name": "Dense",
                    "name": "o",
                    "config": {"units": 2, "use_bias": False, "activation": "linear"},
                    "inbound_nodes": [[["lr", 0, 0, {}]]],
                },
            ],
            "input_layers": [["in", 0, 0]],
            "output_layers": [["o", 0, 0]],
        },
    }
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = ["in", "h", "lr", "o"]
        for name, arrays in (("in", {}), ("h", {"kernel:0": k1, "bias:0": b1}), ("lr", {}), ("o", {"kernel:0": k2})):
            group = weights.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{key}" for key in arrays]
            for key, array in arrays.items():
                group.create_dataset(f"{name}/{key}", data=array)
    network = import_model(path, None)
    assert network.provenance["keras_version"] == "2.15.0"
    assert isinstance(network.layers[1], Activation) and network.layers[1].function == "clip"
    assert network.layers[2].function == "leakyrelu" and network.layers[2].alpha == pytest.approx(0.1)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    h = np.clip(x @ k1 + b1, 0, 6)
    np.testing.assert_allclose(network.forward(x), np.where(h >= 0, h, 0.1 * h) @ k2, rtol=1e-5, atol=1e-5)


def test_input_shape_argument(tmp_path):
    rng = np.random.default_rng(2)
    config, variables, _ = _small(rng)
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, None, None, 2]
    path = _write_keras(tmp_path / "m.keras", config, variables)
    _one_line_error(path, "--input-shape")
    assert import_model(path, (6, 6, 2)).input_shape == (6, 6, 2)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("not a zip", "neither a Keras 3 archive"),
        ("no weights", "has no 'model.weights.h5'"),
        ("no config", "has no 'config.json'"),
        ("bad json", "not valid JSON"),
        ("truncated", "not a Keras archive"),
        ("missing variables", "holds no weights"),
        ("wrong shape", "where (64, 3) was expected"),
        ("unsupported layer", "of class LSTM is not supported (supported: InputLayer, Dense"),
        ("channels_first", "only channels_last"),
        ("bn after relu", "BatchNormalization folds only into"),
        ("softmax inside", "softmax is supported only at the output"),
        ("not json object", "not a JSON object"),
        ("odd activation", "is not supported (one of linear, relu, relu6"),
        ("bn after dropout", "BatchNormalization folds only into"),
        ("cycle", "in a cycle"),
    ],
)
def test_malformed_files_give_one_line(tmp_path, change, match):
    rng = np.random.default_rng(3)
    config, variables, _ = _small(rng)
    path = tmp_path / "m.keras"
    layers = config["config"]["layers"]
    skip: tuple[str, ...] = ()
    if change == "not a zip":
        path.write_text("hello")
        _one_line_error(path, match)
        return
    if change == "no weights":
        skip = ("model.weights.h5",)
    elif change == "no config":
        skip = ("config.json",)
    elif change == "bad json":
        config = '{"class_name": "Functional", '
    elif change == "missing variables":
        del variables["layers/dense"]
    elif change == "wrong shape":
        variables["layers/dense"][0] = np.zeros((63, 3))
    elif change == "unsupported layer":
        layers[5]["class_name"] = "LSTM"
    elif change == "channels_first":
        layers[1]["config"]["data_format"] = "channels_first"
    elif change == "bn after relu":
        for index, source in ((3, "c"), (2, "r"), (4, "bn")):  # c -> r -> bn -> d
            layers[index]["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = source
    elif change == "softmax inside":
        layers[3] = _layer("Activation", "r", {"activation": "softmax"}, ["bn"])
    elif change == "odd activation":
        layers[1]["config"]["activation"] = ["relu"]
    elif change == "bn after dropout":
        layers[1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "input_layer"
        layers[4]["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "c"  # c -> d -> bn -> r -> f
        layers[2]["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "d"
        layers[5]["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "r"
    elif change == "cycle":
        layers[1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "r"
    elif change == "not json object":
        config = "[1, 2]"
    _write_keras(path, config, variables, skip=skip)
    if change == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    message = _one_line_error(path, match)
    if change == "unsupported layer":
        assert "'f'" in message


# ---------------------------------------------------------------------------------------------------------------
# Files written by Keras itself.


@pytest.fixture(scope="module")
def keras_cnn(tmp_path_factory):
    """A small functional CNN saved by Keras as ``.keras`` and legacy ``.h5``, with its logit model."""
    keras = _keras()
    from keras import layers as L

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x1 = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x1 = L.BatchNormalization()(x1)
    x1 = L.ReLU()(x1)
    y = L.DepthwiseConv2D(3, padding="same")(x1)
    y = L.BatchNormalization(epsilon=1e-2)(y)
    y = L.ReLU(max_value=6.0)(y)
    y = L.Conv2D(8, 1)(y)
    x = L.Add()([x1, y])
    x = L.MaxPooling2D(2)(x)
    a = L.Conv2D(4, 3, padding="same", dilation_rate=2, activation="tanh")(x)
    b = L.AveragePooling2D(pool_size=3, strides=1, padding="same")(x)
    c = L.Conv2D(4, 3, padding="valid", groups=2, activation="sigmoid")(x)
    c = L.GlobalAveragePooling2D(keepdims=True)(c)
    x = L.Concatenate()([a, b])
    x = L.Flatten()(x)
    x = L.Dense(16)(x)
    x = L.LeakyReLU(negative_slope=0.1)(x)
    x = L.Dropout(0.5)(x)
    c = L.Flatten()(c)
    x = L.Concatenate()([x, c])
    logits = L.Dense(10)(x)
    out = L.Activation("softmax")(logits)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # batch statistics far from 0 and 1, so that folding matters
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(size=n), rng.normal(size=n), rng.uniform(0.2, 3, n)])
    folder = tmp_path_factory.mktemp("keras")
    model.save(folder / "cnn.keras")
    model.save(folder / "cnn.h5")
    x = rng.uniform(size=(64, 16, 16, 3)).astype(np.float32)
    reference = keras.Model(inp, logits).predict(x, verbose=0)
    probabilities = model.predict(x, verbose=0)
    return folder, x, np.asarray(reference), np.asarray(probabilities), keras.__version__


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_cnn_matches_keras(keras_cnn, suffix):
    folder, x, reference, probabilities, version = keras_cnn
    network = import_model(folder / f"cnn{suffix}", None)
    assert network.input_shape == (16, 16, 3) and network.n_classes == 10
    assert network.provenance == {"framework": "keras", "keras_version": version}
    kinds = [layer.kind for layer in network.layers]
    assert "conv2d" in kinds and "concat" in kinds and "add" in kinds and "globalavgpool2d" in kinds
    depthwise = [layer for layer in network.layers if isinstance(layer, Conv2D) and layer.groups == 8]
    assert len(depthwise) == 1 and depthwise[0].kernel.shape == (3, 3, 1, 8)
    assert isinstance(network.layers[-1], Dense)
    logits = network.forward(x)
    relative = float(np.max(np.abs(logits - reference)) / np.max(np.abs(reference)))
    print(f"{suffix}: max relative difference to Keras {relative:.2e}")
    assert relative < RTOL
    assert np.array_equal(logits.argmax(axis=1), probabilities.argmax(axis=1))


@pytest.mark.parametrize("preset", ["reram", "sonos"])
def test_keras_cnn_runs_on_noisy_chips_with_energy(keras_cnn, preset):
    """The imported Keras CNN, every kind of layer above, programmed on three chip instances of each preset."""
    from xbar.config import resolve
    from xbar.evaluate import run_chips

    folder, x, reference, _, _ = keras_cnn
    network = import_model(folder / "cnn.keras", None)
    summary = run_chips(network, resolve(preset), x[:32], reference[:32].argmax(axis=1), seed=0, n_chips=3)
    print(f"{preset}: agreement with Keras {summary.accuracies}, {summary.energy_per_inference_j * 1e9:.1f} nJ")
    assert len(summary.accuracies) == 3 and all(0.0 <= a <= 1.0 for a in summary.accuracies)
    assert summary.energy_per_inference_j is not None and 0 < summary.energy_per_inference_j < 1e-3


def test_keras_sequential(tmp_path):
    keras = _keras()
    from keras import layers as L

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((6,)), L.Dense(5, activation="relu6"), L.Dense(4, activation="sigmoid"), L.Dense(3)]
    )
    x = np.random.default_rng(1).normal(size=(16, 6)).astype(np.float32)
    expected = np.asarray(model.predict(x, verbose=0))
    for suffix in (".keras", ".h5"):
        model.save(tmp_path / f"s{suffix}")
        network = import_model(tmp_path / f"s{suffix}", None)
        np.testing.assert_allclose(network.forward(x), expected, rtol=1e-5, atol=1e-5)


def test_keras_archive_found_by_group_path(keras_cnn, tmp_path):
    """A ``.keras`` archive without the ``name`` attribute of recent Keras: weights found by group path."""
    folder, x, _, _, _ = keras_cnn
    with zipfile.ZipFile(folder / "cnn.keras") as archive:
        config, weights = archive.read("config.json"), io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(weights, "a") as f:
        f.visititems(lambda name, obj: obj.attrs.__delitem__("name") if "name" in obj.attrs else None)
    with zipfile.ZipFile(tmp_path / "old.keras", "w") as archive:
        archive.writestr("config.json", config)
        archive.writestr("model.weights.h5", weights.getvalue())
    network = import_model(tmp_path / "old.keras", None)
    assert network.provenance == {"framework": "keras"}
    np.testing.assert_array_equal(network.forward(x), import_model(folder / "cnn.keras", None).forward(x))
