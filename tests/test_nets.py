"""The numpy networks against plain-loop references, PyTorch, and the paper's sizes."""

import numpy as np
import pytest

from xbar.errors import XbarError
from xbar.nets import build, cnn, mlp, rnn
from xbar.nets.layers import im2col_3x3_same

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
