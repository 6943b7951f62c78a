"""The numpy networks against plain-loop references, PyTorch, and the paper's sizes."""

import h5py
import numpy as np
import pytest

from xbar import io
from xbar.errors import XbarError
from xbar.nets import LAYER_KINDS, Conv2D, Dense, Flatten, MaxPool2D, Mosaic, Network, build, cnn, mlp, rnn, srnn
from xbar.nets.layers import Activation, Add, AvgPool2D, Concat, GlobalAvgPool2D, Identity, Reshape, im2col_3x3_same

from .conftest import TOL
from .reference import ref_conv3x3_same, ref_forward


def test_parameter_counts_match_the_paper():
    assert cnn().n_params == 119_322
    assert mlp(hidden=128).n_params == 101_770
    assert [layer.kernel.shape for layer in mlp().weight_layers] == [(784, 300), (300, 10)]


@pytest.mark.parametrize("timesteps, feedback", [(7, 189), (14, 245), (28, 273), (56, 287)])
def test_rnn_core_is_301_by_400_with_the_papers_feedback(timesteps, feedback):
    net = rnn(timesteps=timesteps)
    core, readout = net.weight_layers
    assert core.kernel.shape == (301, 400) and core.bias is None
    assert core.feedback == feedback and core.n_step == 784 // timesteps
    assert readout.kernel.shape == (400, 10) and readout.bias.shape == (10,)


@pytest.mark.parametrize("timesteps", [7, 14, 28, 56])
def test_plain_rnn_parameter_counts_are_the_papers(timesteps):
    # The paper's RNN counts (118,37x at t = 7, 158,656 at t = 56) are U (U + M/t + 1) + 10 U + 10 with
    # U = 400 - M/t (NOTES.md); computed here from that formula, not from the network.
    units = 400 - 784 // timesteps
    expected = units * (units + 784 // timesteps + 1) + 10 * units + 10
    net = srnn(timesteps=timesteps)
    assert net.n_params == expected
    core, readout = net.weight_layers
    assert core.kernel.shape == (784 // timesteps + units, units) and core.feedback == units
    assert core.bias.shape == (units,) and readout.kernel.shape == (units, 10)
    assert {7: 118_378, 56: 158_656}.get(timesteps, expected) == expected


def test_plain_rnn_is_a_simple_rnn_loop(rng):
    # h_s = brelu([x_s, h_(s-1)] W + b), h_0 = 0, then the readout: a plain loop over the steps.
    net = srnn(timesteps=14, seed=3)
    x = rng.random((5, 28, 28), dtype=np.float32)
    core, readout = net.weight_layers
    flat = x.reshape(5, -1).astype(np.float64)
    h = np.zeros((5, core.feedback))
    for step in range(14):
        z = np.hstack([flat[:, step * 56 : (step + 1) * 56], h]) @ core.kernel + core.bias
        h = np.clip(z, 0.0, 1.0)
    expected = h @ readout.kernel + readout.bias
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name, params",
    [("mlp128-mnist.h5", 101_770), ("srnn-mnist-t7.h5", 118_378), ("srnn-fashion-mnist-t56.h5", 158_656)],
)
def test_shipped_readings_have_the_papers_sizes(name, params, shipped_weights):
    assert io.load(shipped_weights / name).n_params == params


@pytest.mark.parametrize("timesteps", [0, 5, 2])
def test_rnn_rejects_impossible_timesteps(timesteps):
    with pytest.raises(XbarError):
        rnn(timesteps=timesteps)


def _scaled(network, gain):
    """Larger weights so that the bounded ReLU both clips at 0 and saturates at 1."""
    for layer in network.weight_layers:
        layer.kernel = (layer.kernel * gain).astype(np.float32)
    return network


@pytest.mark.parametrize("arch, kwargs", [("mlp", {"hidden": 40}), ("cnn", {}), ("rnn", {"timesteps": 7}),
                                          ("rnn", {"timesteps": 28})])
def test_forward_matches_plain_loop_reference(arch, kwargs, rng):
    network = _scaled(build(arch, seed=3, **kwargs), 3.0)
    x = rng.random((2, 28, 28), dtype=np.float32)
    expected = ref_forward(network, x)
    activations = network.forward(x)
    np.testing.assert_allclose(activations, expected, **TOL[np.float32])


def test_im2col_product_equals_loop_convolution(rng):
    x = rng.random((2, 5, 6, 3), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    y = (im2col_3x3_same(x) @ kernel.reshape(27, 4) + bias).reshape(2, 5, 6, 4)
    np.testing.assert_allclose(y, ref_conv3x3_same(x, kernel, bias, "linear"), **TOL[np.float32])


@pytest.mark.parametrize("arch", ["mlp", "cnn", "rnn"])
def test_forward_matches_pytorch(arch, rng):
    pytest.importorskip("torch")
    from xbar.train import torch_forward

    network = _scaled(build(arch, seed=5), 3.0)
    x = rng.random((16, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(network.forward(x), torch_forward(network, x), **TOL[np.float32])


def test_batch_results_do_not_depend_on_batch_size(rng):
    network = build("cnn", seed=1)
    x = rng.random((10, 28, 28), dtype=np.float32)
    whole = network.forward(x)
    parts = np.concatenate([network.forward(x[:3]), network.forward(x[3:])])
    np.testing.assert_allclose(whole, parts, **TOL[np.float32])


def _one_of_each_kind(rng):
    """A small graph network holding every layer kind, with parameters away from their defaults where allowed."""
    def w(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    layers = [
        Conv2D(kernel=w(3, 3, 2, 3), bias=w(3), activation="linear"),   # 0: (8, 8, 2) -> (8, 8, 3)
        Activation(function="leakyrelu", alpha=0.2),                     # 1
        Conv2D(kernel=w(5, 5, 3, 4), bias=None, activation="linear", strides=(2, 2), padding="explicit",
               pads=(2, 1, 2, 1)),                                       # 2: -> (4, 4, 4)
        Conv2D(kernel=w(3, 3, 1, 4), bias=w(4), dilations=(2, 2), groups=4),  # 3: depthwise, dilated
        Add(),                                                           # 4: 2 + 3
        AvgPool2D(pool_size=(3, 3), strides=(1, 1), padding="same"),     # 5
        Concat(),                                                        # 6: 4 and 5 -> (4, 4, 8)
        MaxPool2D(pool_size=4),                                          # 7: -> (1, 1, 8)
        GlobalAvgPool2D(),                                               # 8: -> (8,)
        Reshape(shape=(-1, 2)),                                          # 9: -> (4, 2)
        Flatten(),                                                       # 10: -> (8,)
        Identity(),                                                      # 11
        Mosaic(kernel=w(6, 5), bias=None, timesteps=2, feedback=2),      # 12: 2 steps of 4 inputs, 2 fed back
        Dense(kernel=w(5, 4), bias=None, activation="linear"),           # 13
    ]
    inputs = [(-1,), (0,), (1,), (2,), (2, 3), (4,), (4, 5), (6,), (7,), (8,), (9,), (10,), (11,), (12,)]
    return Network("mixed", "none", (8, 8, 2), 4, layers, inputs=inputs)


# The stored attributes of each kind, written out by hand: the file format (docs/format.md) must not
# change when a layer class does. Integers are stored as int64, tuples as int64 arrays (shown here as
# tuples), strings as variable-length str, floats as float64.
STORED_ATTRS = {
    "00_conv2d": {"kind": "conv2d", "inputs": (-1,), "activation": "linear", "padding": "same", "strides": (1, 1),
                  "pads": (0, 0, 0, 0), "dilations": (1, 1), "groups": 1},
    "01_activation": {"kind": "activation", "inputs": (0,), "function": "leakyrelu", "alpha": 0.2, "low": 0.0,
                      "high": 1.0},
    "02_conv2d": {"kind": "conv2d", "inputs": (1,), "activation": "linear", "padding": "explicit",
                  "strides": (2, 2), "pads": (2, 1, 2, 1), "dilations": (1, 1), "groups": 1},
    "03_conv2d": {"kind": "conv2d", "inputs": (2,), "activation": "brelu", "padding": "same", "strides": (1, 1),
                  "pads": (0, 0, 0, 0), "dilations": (2, 2), "groups": 4},
    "04_add": {"kind": "add", "inputs": (2, 3)},
    "05_avgpool2d": {"kind": "avgpool2d", "inputs": (4,), "pool_size": (3, 3), "strides": (1, 1),
                     "padding": "same", "pads": (0, 0, 0, 0)},
    "06_concat": {"kind": "concat", "inputs": (4, 5)},
    "07_maxpool2d": {"kind": "maxpool2d", "inputs": (6,), "pool_size": (4, 4), "strides": (4, 4),
                     "padding": "valid", "pads": (0, 0, 0, 0)},
    "08_globalavgpool2d": {"kind": "globalavgpool2d", "inputs": (7,)},
    "09_reshape": {"kind": "reshape", "inputs": (8,), "shape": (-1, 2)},
    "10_flatten": {"kind": "flatten", "inputs": (9,)},
    "11_identity": {"kind": "identity", "inputs": (10,)},
    "12_mosaic": {"kind": "mosaic", "inputs": (11,), "activation": "brelu", "timesteps": 2, "feedback": 2},
    "13_dense": {"kind": "dense", "inputs": (12,), "activation": "linear"},
}
_STORED_TYPES = {str: str, int: np.int64, float: np.float64, tuple: np.ndarray}


def test_every_layer_kind_round_trips_its_attributes(tmp_path, rng):
    network = _one_of_each_kind(rng)
    assert {layer.kind for layer in network.layers} == set(LAYER_KINDS), "add the new kind to _one_of_each_kind"
    assert {typ for cls in LAYER_KINDS.values() for typ in cls.attr_types().values()} \
        <= {str, int, float, tuple[int, ...]}
    path = io.save(network, tmp_path / "mixed.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 2
        raw = {name: dict(group.attrs) for name, group in f["layers"].items()}
    stored = {name: {key: tuple(v.tolist()) if isinstance(v, np.ndarray) else v for key, v in attrs.items()}
              for name, attrs in raw.items()}
    assert stored == STORED_ATTRS
    for name, attrs in raw.items():
        for key, value in attrs.items():
            assert type(value) is _STORED_TYPES[type(STORED_ATTRS[name][key])], (name, key)
            assert not isinstance(value, np.ndarray) or value.dtype == np.int64, (name, key)
    loaded = io.load(path)
    assert loaded.inputs == network.inputs
    for a, b in zip(network.layers, loaded.layers):
        assert type(a) is type(b) and a.attrs() == b.attrs()
        for key, typ in b.attr_types().items():
            value = b.attrs()[key]
            assert type(value) is (tuple if typ == tuple[int, ...] else typ), key
            assert typ != tuple[int, ...] or all(type(v) is int for v in value), key
    x = rng.random((3, 8, 8, 2), dtype=np.float32)
    np.testing.assert_array_equal(network.forward(x), loaded.forward(x))
    np.testing.assert_allclose(network.forward(x), ref_forward(network, x), **TOL[np.float32])


@pytest.mark.parametrize("name, per_layer", [
    ("mlp-mnist.h5", [300, 0]),                                              # 300 hidden, linear logits
    ("cnn-mnist.h5", [28 * 28 * 3, 28 * 28 * 3, 14 * 14 * 6, 14 * 14 * 6, 100, 0]),
    ("rnn-mnist-t7.h5", [189 * 7, 0]),                                       # D_hl = 189 neurons, 7 steps
])
def test_neuron_activations_of_the_shipped_networks(name, per_layer, shipped_weights):
    network = io.load(shipped_weights / name)
    counts = [layer.neuron_activations(shape) for layer, shape in zip(network.layers, network.shapes[1:])
              if layer.has_weights]
    assert counts == per_layer
    assert sum(layer.neuron_activations(shape) for layer, shape in zip(network.layers, network.shapes[1:])) \
        == {"mlp-mnist.h5": 300, "cnn-mnist.h5": 28 * 28 * 3 * 2 + 14 * 14 * 6 * 2 + 100,
            "rnn-mnist-t7.h5": 189 * 7}[name]


def test_batch_size_follows_the_widest_operand():
    # The CNN's widest operand is the second conv's patch matrix, 9 x 28 x 28 x 3 float32 per image;
    # the MLP's is its 784 pixels.
    assert cnn().batch_size_for() == (8 << 20) // (4 * 9 * 28 * 28 * 3) == 99
    assert mlp().batch_size_for(most=10**6) == (8 << 20) // (4 * 784)
    assert mlp().batch_size_for() == 1000 and cnn().batch_size_for(budget_bytes=1 << 10) == 16
