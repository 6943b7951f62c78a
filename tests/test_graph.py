"""A graph network (residual CNN: strided 5x5, depthwise and pointwise convolutions, an addition, digital
activations, global average pooling) on the crossbar: every weight layer programmed as in a chain, ideal
hardware equal to the float forward, noisy hardware running, operation counts and energy produced, and
the weights file (version 2) round-tripping it."""

from dataclasses import replace

import numpy as np
import pytest

from xbar import io
from xbar.config import Tile, resolve
from xbar.crossbar import program
from xbar.energy import energy_report
from xbar.nets import Activation, Add, Conv2D, Dense, GlobalAvgPool2D, Network

from .conftest import TOL
from .reference import ref_forward


def residual_cnn(seed=0):
    """(12, 12, 3) -> 10 logits: a 5x5 stride-2 conv, then a depthwise-separable block with a residual."""
    rng = np.random.default_rng(seed)

    def w(*shape, fan_in):
        return rng.uniform(-1, 1, shape).astype(np.float32) / np.sqrt(fan_in)

    layers = [
        Conv2D(kernel=w(5, 5, 3, 8, fan_in=75), bias=w(8, fan_in=75), activation="linear", strides=(2, 2)),  # 0
        Activation(function="relu"),                                                                         # 1
        Conv2D(kernel=w(3, 3, 1, 8, fan_in=9), bias=w(8, fan_in=9), activation="linear", groups=8),          # 2
        Activation(function="clip", low=0.0, high=6.0),                                                      # 3
        Conv2D(kernel=w(1, 1, 8, 8, fan_in=8), bias=None, activation="linear"),                              # 4
        Add(),                                                                                               # 5
        Activation(function="relu"),                                                                         # 6
        GlobalAvgPool2D(),                                                                                   # 7
        Dense(kernel=w(8, 10, fan_in=8), bias=w(10, fan_in=8), activation="linear"),                         # 8
    ]
    inputs = [(-1,), (0,), (1,), (2,), (3,), (1, 4), (5,), (6,), (7,)]
    return Network("rescnn", "none", (12, 12, 3), 10, layers, inputs=inputs)


@pytest.fixture
def images(rng):
    return rng.random((24, 12, 12, 3), dtype=np.float32)


@pytest.mark.parametrize("tile", [(1024, 1024), (16, 8)])
def test_ideal_crossbar_equals_float_forward_of_a_graph(tile, images):
    network = residual_cnn()
    assert [layer.kind for layer in network.weight_layers] == ["conv2d", "conv2d", "conv2d", "dense"]
    chip = program(network, replace(resolve("ideal"), tile=Tile(*tile)), seed=1, calibration=images[:16])
    # One matrix per weight layer, the grouped conv as its block-diagonal (3*3*8, 8) matrix.
    assert [m.n_out for m in chip.matrices] == [8, 8, 8, 10]
    expected = network.forward(images)
    np.testing.assert_allclose(chip.forward(images), expected, **TOL[np.float32])
    np.testing.assert_allclose(expected[:3], ref_forward(network, images[:3]), **TOL[np.float32])


def test_noisy_crossbar_runs_a_graph_and_counts_it(images):
    network = residual_cnn()
    hw = resolve("reram")
    chip = program(network, hw, seed=3, calibration=images[:16])
    logits = chip.forward(images)
    assert logits.shape == (24, 10) and np.all(np.isfinite(logits))
    assert not np.allclose(logits, network.forward(images), rtol=1e-3, atol=1e-3)  # the noise is there
    counts = chip.operation_counts()
    assert counts.n_images == 24
    # Vectors: one per output pixel (6 x 6 after the stride-2 conv), one for the dense layer.
    assert [layer.vectors for layer in counts.layers] == [36, 36, 36, 1]
    # Neurons: the digital ReLU and ReLU6 charged to the conv before them; the 1x1 conv's output goes to the
    # addition, whose ReLU is charged along its first input (the first ReLU, so the 5x5 conv); logits none.
    assert [layer.neuron_activations for layer in counts.layers] == [2 * 6 * 6 * 8, 6 * 6 * 8, 0, 0]
    report = energy_report(counts, hw)
    assert report["total_j"] > 0 and len(report["layers"]) == 4


def test_graph_round_trips_through_the_weights_file(tmp_path, images):
    network = residual_cnn()
    loaded = io.load(io.save(network, tmp_path / "rescnn.h5"))
    assert loaded.inputs == network.inputs and not loaded.is_chain
    np.testing.assert_array_equal(loaded.forward(images), network.forward(images))
