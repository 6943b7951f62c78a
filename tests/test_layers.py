"""The general layers (convolutions of any geometry, pools, activations, merges, reshapes, batch-norm
folding) against the plain-loop references of tests/reference.py and against PyTorch, and the graph
network's checks."""

import numpy as np
import pytest

from xbar.errors import XbarError
from xbar.nets import (
    Activation,
    Add,
    AvgPool2D,
    Concat,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Identity,
    MaxPool2D,
    Network,
    Reshape,
    fold_batchnorm,
)
from xbar.nets.layers import im2col_3x3_same

from .conftest import TOL
from .reference import ref_conv2d, ref_function, ref_layer, ref_pool

# (kernel h, w, C_in / groups, C_out), strides, padding, pads, dilations, groups
CONVS = {
    "3x3-same": ((3, 3, 3, 4), (1, 1), "same", (0, 0, 0, 0), (1, 1), 1),
    "5x5-stride2-same": ((5, 5, 3, 4), (2, 2), "same", (0, 0, 0, 0), (1, 1), 1),
    "5x5-valid": ((5, 5, 3, 2), (1, 1), "valid", (0, 0, 0, 0), (1, 1), 1),
    "3x2-explicit-asym": ((3, 2, 3, 4), (2, 1), "explicit", (2, 0, 1, 3), (1, 1), 1),
    "3x3-dilated": ((3, 3, 3, 4), (1, 2), "same", (0, 0, 0, 0), (2, 2), 1),
    "1x1-stride2": ((1, 1, 3, 5), (2, 2), "valid", (0, 0, 0, 0), (1, 1), 1),
    "grouped": ((3, 3, 1, 6), (1, 1), "same", (0, 0, 0, 0), (1, 1), 3),
    "depthwise-stride2": ((3, 3, 1, 3), (2, 2), "explicit", (1, 1, 1, 1), (1, 1), 3),
    "depthwise-multiplier": ((3, 3, 1, 6), (1, 1), "valid", (0, 0, 0, 0), (1, 1), 3),
}


def _conv(rng, name, activation="linear"):
    shape, strides, padding, pads, dilations, groups = CONVS[name]
    kernel = rng.standard_normal(shape).astype(np.float32)
    bias = rng.standard_normal(shape[3]).astype(np.float32)
    return Conv2D(kernel=kernel, bias=bias, activation=activation, strides=strides, padding=padding, pads=pads,
                  dilations=dilations, groups=groups)


@pytest.mark.parametrize("name", sorted(CONVS))
def test_conv2d_matches_loop_reference_and_pytorch(name, rng):
    torch = pytest.importorskip("torch")
    layer = _conv(rng, name, activation="brelu")
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    y = layer.forward(x, layer.ideal_matmul())
    assert y.shape[1:] == layer.output_shape(x.shape[1:]) and y.dtype == np.float32
    expected = ref_conv2d(x, layer.kernel, layer.bias, layer.strides, layer.padding, layer.pads, layer.dilations,
                          layer.groups, "brelu")
    np.testing.assert_allclose(y, expected, **TOL[np.float32])
    # PyTorch, as a user's model would compute it (NCHW, OIHW, symmetric padding where it can).
    shape, strides, padding, pads, dilations, groups = CONVS[name]
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    weight = torch.from_numpy(layer.kernel).permute(3, 2, 0, 1)
    if padding == "explicit":
        xt = torch.nn.functional.pad(xt, (pads[2], pads[3], pads[0], pads[1]))
    torch_padding = "same" if padding == "same" and strides == (1, 1) else 0
    if padding == "same" and strides != (1, 1):  # torch has no strided "same": TF's split, bottom-right heavier
        (_, _), (t, b, left, r) = layer._geometry(x.shape[1:])
        xt = torch.nn.functional.pad(xt, (left, r, t, b))
    z = torch.nn.functional.conv2d(xt, weight, torch.from_numpy(layer.bias), stride=strides, padding=torch_padding,
                                   dilation=dilations, groups=groups)
    np.testing.assert_allclose(y, z.clamp(0, 1).permute(0, 2, 3, 1).numpy(), **TOL[np.float32])


def test_conv2d_3x3_same_keeps_the_version_1_patch_code(rng):
    """The shipped CNN's convolutions take im2col_3x3_same, as before (the golden logits hold the bits)."""
    layer = _conv(rng, "3x3-same")
    x = rng.random((2, 6, 5, 3), dtype=np.float32)
    seen = []
    layer.forward(x, lambda patches: seen.append(patches.copy()) or patches @ layer.kernel2d)
    np.testing.assert_array_equal(seen[0], im2col_3x3_same(x))
    assert layer._is_3x3_same((6, 5, 3)) and not _conv(rng, "3x3-dilated")._is_3x3_same((6, 5, 3))


def test_grouped_conv_is_one_block_diagonal_matrix(rng):
    layer = _conv(rng, "grouped")  # 3 groups of 1 input channel, 2 output channels each
    matrix = layer.kernel2d
    assert matrix.shape == (3 * 3 * 3, 6) and layer.kernel.size == 3 * 3 * 6
    rows = matrix.reshape(3, 3, 3, 6)
    for c_in in range(3):
        for c_out in range(6):
            if c_out // 2 != c_in:
                assert not rows[:, :, c_in, c_out].any()
            else:
                np.testing.assert_array_equal(rows[:, :, c_in, c_out], layer.kernel[:, :, 0, c_out])


@pytest.mark.parametrize("mode, pool, strides, padding, pads", [
    ("max", (2, 2), (2, 2), "valid", (0, 0, 0, 0)),
    ("max", (3, 3), (2, 2), "valid", (0, 0, 0, 0)),
    ("max", (3, 2), (1, 2), "same", (0, 0, 0, 0)),
    ("max", (3, 3), (2, 2), "explicit", (1, 1, 1, 1)),
    ("avg", (2, 2), (2, 2), "valid", (0, 0, 0, 0)),
    ("avg", (5, 5), (3, 3), "valid", (0, 0, 0, 0)),
    ("avg", (3, 3), (1, 1), "same", (0, 0, 0, 0)),
    ("avg", (3, 3), (2, 2), "explicit", (1, 0, 1, 2)),
])
def test_pools_match_loop_reference_and_pytorch(mode, pool, strides, padding, pads, rng):
    torch = pytest.importorskip("torch")
    cls = MaxPool2D if mode == "max" else AvgPool2D
    layer = cls(pool_size=pool, strides=strides, padding=padding, pads=pads)
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    y = layer.forward(x, None)
    assert y.shape[1:] == layer.output_shape(x.shape[1:]) and y.dtype == np.float32
    np.testing.assert_allclose(y, ref_pool(x, mode, pool, strides, padding, pads), **TOL[np.float32])
    # PyTorch: the padding as the layer resolves it, never counted (count_include_pad=False, ONNX's default).
    (_, _), (t, b, left, r) = layer._geometry(x.shape[1:])
    if t == b and left == r:
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)
        if mode == "max":
            z = torch.nn.functional.max_pool2d(xt, pool, strides, padding=(t, left))
        else:
            z = torch.nn.functional.avg_pool2d(xt, pool, strides, padding=(t, left), count_include_pad=False)
        np.testing.assert_allclose(y, z.permute(0, 2, 3, 1).numpy(), **TOL[np.float32])
    assert callable(layer.torch_forward)  # the mirror exists for both kinds
    z = layer.torch_forward(torch, torch.from_numpy(x), None, None, None)
    np.testing.assert_allclose(y, z.numpy(), **TOL[np.float32])


def test_global_average_pool(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    layer = GlobalAvgPool2D()
    y = layer.forward(x, None)
    assert layer.output_shape((5, 4, 6)) == (6,)
    np.testing.assert_allclose(y, ref_layer(layer, [x.astype(np.float64)]), **TOL[np.float32])
    z = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), 1).flatten(1)
    np.testing.assert_allclose(y, z.numpy(), **TOL[np.float32])


@pytest.mark.parametrize("function, params, torch_name", [
    ("relu", {}, "relu"),
    ("clip", {"low": 0.0, "high": 6.0}, "relu6"),
    ("clip", {"low": -0.5, "high": 1.0}, None),
    ("leakyrelu", {"alpha": 0.1}, "leaky_relu"),
    ("sigmoid", {}, "sigmoid"),
    ("tanh", {}, "tanh"),
    ("identity", {}, None),
])
def test_activations_match_loop_reference_and_pytorch(function, params, torch_name, rng):
    torch = pytest.importorskip("torch")
    layer = Activation(function=function, **params)
    x = (rng.standard_normal((4, 3, 5)) * 8).astype(np.float32)
    x[0, 0, :3] = (-100.0, 100.0, 0.0)  # sigmoid far out: exp overflows to inf, the answer is still 0 or 1
    before = x.copy()
    with np.errstate(over="ignore"):
        y = layer.forward(x, None)
    np.testing.assert_array_equal(x, before)  # never in place: another layer may read the same input
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    np.testing.assert_allclose(y, ref_function(x, function, **params), **TOL[np.float32])
    if torch_name:
        fn = getattr(torch.nn.functional, torch_name, None) or getattr(torch, torch_name)
        z = fn(torch.from_numpy(x), params["alpha"]) if "alpha" in params else fn(torch.from_numpy(x))
        np.testing.assert_allclose(y, z.numpy(), **TOL[np.float32])
    z = layer.torch_forward(torch, torch.from_numpy(x), None, None, None)
    np.testing.assert_allclose(y, z.numpy(), **TOL[np.float32])
    assert layer.neuron_activations((3, 5)) == (0 if function == "identity" else 15)


def test_merges_reshape_and_identity(rng):
    a, b, c = (rng.standard_normal((2, 3, 3, k)).astype(np.float32) for k in (4, 4, 2))
    np.testing.assert_array_equal(Add().merge([a, b, a]), a + b + a)
    assert Add().merge_shape([(3, 3, 4)] * 3) == (3, 3, 4)
    np.testing.assert_array_equal(Concat().merge([a, c]), np.concatenate([a, c], axis=3))
    assert Concat().merge_shape([(3, 3, 4), (3, 3, 2)]) == (3, 3, 6)
    with pytest.raises(XbarError, match="different shapes"):
        Add().merge_shape([(3, 3, 4), (3, 3, 2)])
    with pytest.raises(XbarError, match="channel"):
        Concat().merge_shape([(3, 3, 4), (3, 2, 4)])
    assert Reshape(shape=(-1, 6)).output_shape((3, 3, 4)) == (6, 6)
    assert Reshape(shape=(36,)).output_shape((3, 3, 4)) == (36,)
    np.testing.assert_array_equal(Reshape(shape=(9, -1)).forward(a, None), a.reshape(2, 9, 4))
    for bad in [(0,), (-1, -1), (5, 7)]:
        with pytest.raises(XbarError, match="reshape"):
            Reshape(shape=bad).output_shape((3, 3, 4))
    assert Identity().forward(a, None) is a


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_fold_batchnorm_equals_batchnorm_after_the_layer(kind, rng):
    if kind == "dense":
        layer = Dense(kernel=rng.standard_normal((7, 5)).astype(np.float32), bias=None, activation="linear")
        x = rng.standard_normal((6, 7)).astype(np.float32)
    else:
        layer = _conv(rng, "5x5-stride2-same")
        x = rng.standard_normal((3, 8, 8, 3)).astype(np.float32)
    n = layer.kernel.shape[-1]
    gamma, beta, mean = (rng.standard_normal(n) for _ in range(3))
    var = rng.random(n) + 0.1
    folded = fold_batchnorm(layer, gamma, beta, mean, var, eps=1e-3)
    assert type(folded) is type(layer) and folded.kernel.dtype == np.float32 and folded.bias.shape == (n,)
    z = layer.forward(x, layer.ideal_matmul()).astype(np.float64)
    expected = gamma * (z - mean) / np.sqrt(var + 1e-3) + beta
    np.testing.assert_allclose(folded.forward(x, folded.ideal_matmul()), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(XbarError, match="linear"):
        fold_batchnorm(Dense(kernel=layer.kernel2d, bias=None), gamma, beta, mean, var)
    with pytest.raises(XbarError, match="shape"):
        fold_batchnorm(layer, gamma[:2], beta, mean, var)


@pytest.mark.parametrize("padding, pads, message", [
    ("bogus", (0, 0, 0, 0), "padding"),
    ("same", (1, 1, 1, 1), "explicit"),
    ("explicit", (1, -1, 0, 0), "pads"),
])
def test_conv2d_refuses_bad_geometry(padding, pads, message, rng):
    with pytest.raises(XbarError, match=message):
        Conv2D(kernel=np.ones((3, 3, 1, 2), np.float32), padding=padding, pads=pads)
    with pytest.raises(XbarError, match="groups"):
        Conv2D(kernel=np.ones((3, 3, 1, 3), np.float32), groups=2)
    with pytest.raises(XbarError, match="strides"):
        Conv2D(kernel=np.ones((3, 3, 1, 3), np.float32), strides=(0, 1))
    with pytest.raises(XbarError, match="does not fit"):
        Conv2D(kernel=np.ones((5, 5, 1, 3), np.float32), padding="valid").output_shape((3, 3, 1))
    with pytest.raises(XbarError, match="window"):
        MaxPool2D(pool_size=2, padding="explicit", pads=(2, 0, 0, 0))


def _w(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("inputs, message", [
    ([(-1,), (0,), (0,)], "takes 2"),                 # add with one input
    ([(-1,), (1,), (0, 1)], "earlier layers"),        # reads itself
    ([(-1,), (0,), (0, 5)], "earlier layers"),        # out of range
    ([(-1,), (0,), (1, -1)], None),                   # valid: a residual over two layers
    ([(-1,), (0,)], "entries of inputs"),
    ([(-1,), (-1,), (1, 1)], "never read"),           # layer 0 dangles
])
def test_network_checks_its_graph(inputs, message, rng):
    layers = [Dense(kernel=_w(rng, 4, 4), activation="linear"), Dense(kernel=_w(rng, 4, 4), activation="linear"),
              Add()]
    if message is None:
        network = Network("g", "none", (4,), 4, layers, inputs=inputs)
        x = _w(rng, 3, 4)
        np.testing.assert_allclose(network.forward(x), x @ layers[0].kernel @ layers[1].kernel + x, **TOL[np.float32])
        assert not network.is_chain
        return
    with pytest.raises(XbarError, match=message):
        Network("g", "none", (4,), 4, layers, inputs=inputs)


def test_graph_forward_frees_outputs_and_never_writes_into_shared_inputs(rng):
    """A ReLU and a residual both read the same conv output: neither may change what the other sees."""
    layers = [
        Conv2D(kernel=_w(rng, 3, 3, 2, 2), bias=None, activation="linear"),
        Activation(function="relu"),
        Add(),
        Activation(function="clip", low=-1.0, high=1.0),
        Flatten(),
    ]
    network = Network("res", "none", (4, 4, 2), 32, layers, inputs=[(-1,), (0,), (0, 1), (2,), (3,)])
    x = _w(rng, 5, 4, 4, 2)
    z = layers[0].forward(x, layers[0].ideal_matmul())
    expected = np.clip(z + np.maximum(z, 0), -1, 1).reshape(5, -1)
    np.testing.assert_allclose(network.forward(x), expected, **TOL[np.float32])
    assert network.shapes == [(4, 4, 2), (4, 4, 2), (4, 4, 2), (4, 4, 2), (4, 4, 2), (32,)]
