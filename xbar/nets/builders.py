"""The paper's three networks (see ``../shared/paper/NOTES.md``), and the other reading of its RNN, with fresh
random weights.

Weights are drawn as in PyTorch's default initialisation,
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from a seeded generator; training
(:mod:`xbar.train`) starts from these.
"""

from __future__ import annotations

import numpy as np

from ..errors import XbarError
from .layers import Conv2D, Dense, Flatten, MaxPool2D, Mosaic
from .network import Network

IMAGE_SHAPE = (28, 28, 1)
N_PIXELS = 784
N_CLASSES = 10
RNN_CORE_ROWS = 301
RNN_CORE_COLS = 400
ARCHS = ("mlp", "cnn", "rnn", "srnn")


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def _dense(rng, n_in, n_out, activation="brelu", bias=True) -> Dense:
    return Dense(
        kernel=_uniform(rng, (n_in, n_out), n_in),
        bias=_uniform(rng, (n_out,), n_in) if bias else None,
        activation=activation,
    )


def _conv(rng, c_in, c_out) -> Conv2D:
    fan_in = 9 * c_in
    return Conv2D(kernel=_uniform(rng, (3, 3, c_in, c_out), fan_in), bias=_uniform(rng, (c_out,), fan_in))


def mlp(dataset: str = "mnist", hidden: int = 300, seed: int = 0) -> Network:
    """The paper's MLP: 784 -> hidden (bounded ReLU) -> 10, biases included (785 x hidden, hidden+1 x 10)."""
    if hidden < 1:
        raise XbarError(f"hidden size must be >= 1, got {hidden}")
    rng = np.random.default_rng(seed)
    layers = [Flatten(), _dense(rng, N_PIXELS, hidden), _dense(rng, hidden, N_CLASSES, "linear")]
    return Network("mlp", dataset, IMAGE_SHAPE, N_CLASSES, layers, {"hidden": hidden})


def cnn(dataset: str = "mnist", seed: int = 0) -> Network:
    """The paper's CNN C3/3-C3/3-MP2-C3/6-C3/6-D100-D10 ("same" 3x3 convs): 119,322 parameters."""
    rng = np.random.default_rng(seed)
    layers = [
        _conv(rng, 1, 3),
        _conv(rng, 3, 3),
        MaxPool2D(pool_size=(2, 2)),
        _conv(rng, 3, 6),
        _conv(rng, 6, 6),
        Flatten(),
        _dense(rng, 14 * 14 * 6, 100),
        _dense(rng, 100, N_CLASSES, "linear"),
    ]
    return Network("cnn", dataset, IMAGE_SHAPE, N_CLASSES, layers, {})


def rnn(dataset: str = "mnist", timesteps: int = 7, seed: int = 0) -> Network:
    """The paper's Mosaic RNN: one 301 x 400 core read ``timesteps`` times, then a 401 x 10 readout.

    Each step takes 784 / timesteps pixels plus D_hl = 301 - 784 / timesteps
    outputs of the previous step; the core has no bias (all 301 rows carry
    signals), the readout has one.
    """
    n_step = _step_inputs(timesteps)
    feedback = RNN_CORE_ROWS - n_step
    if not 0 <= feedback <= RNN_CORE_COLS:
        raise XbarError(
            f"timesteps={timesteps} gives {n_step} pixels per step, more than the core's {RNN_CORE_ROWS} rows"
        )
    rng = np.random.default_rng(seed)
    core = Mosaic(
        kernel=_uniform(rng, (RNN_CORE_ROWS, RNN_CORE_COLS), RNN_CORE_ROWS),
        bias=None,
        timesteps=timesteps,
        feedback=feedback,
    )
    layers = [Flatten(), core, _dense(rng, RNN_CORE_COLS, N_CLASSES, "linear")]
    return Network("rnn", dataset, IMAGE_SHAPE, N_CLASSES, layers, {"timesteps": timesteps})


def plain_rnn_units(timesteps: int) -> int:
    """U = 400 - 784 / ``timesteps``: the units of the plain recurrent layer whose parameter count,
    U (U + M/t + 1) + 10 U + 10, is the paper's (118,378 at t = 7, 158,656 at t = 56; NOTES.md)."""
    return RNN_CORE_COLS - _step_inputs(timesteps)


def _step_inputs(timesteps: int) -> int:
    if timesteps < 1 or N_PIXELS % timesteps:
        raise XbarError(f"timesteps must divide {N_PIXELS}, got {timesteps}")
    return N_PIXELS // timesteps


def srnn(dataset: str = "mnist", timesteps: int = 7, seed: int = 0) -> Network:
    """The other reading of the paper's RNN: a plain recurrent layer (Keras's SimpleRNN) of U = 400 - M/t units.

    Step s computes h_s = f([x_s ; h_(s-1)] W + b) (h_0 = 0, f the bounded ReLU) with the s-th slice of M/t =
    784 / ``timesteps`` pixels; a 10-way readout of h_t follows. On the chip it is a :class:`Mosaic` core of
    M/t + U rows (plus the bias) by U columns that feeds all U outputs back, read ``timesteps`` times.
    """
    n_step = _step_inputs(timesteps)
    units = plain_rnn_units(timesteps)
    if units < 1:
        raise XbarError(f"timesteps={timesteps} gives {n_step} pixels per step, leaving no units of 400")
    rng = np.random.default_rng(seed)
    rows = n_step + units
    core = Mosaic(
        kernel=_uniform(rng, (rows, units), rows),
        bias=_uniform(rng, (units,), rows),
        timesteps=timesteps,
        feedback=units,
    )
    layers = [Flatten(), core, _dense(rng, units, N_CLASSES, "linear")]
    return Network("srnn", dataset, IMAGE_SHAPE, N_CLASSES, layers, {"timesteps": timesteps, "units": units})


def build(arch: str, dataset: str = "mnist", *, hidden: int = 300, timesteps: int = 7, seed: int = 0) -> Network:
    """Build architecture ``arch`` (mlp, cnn, rnn or srnn) with fresh weights drawn from ``seed``."""
    if arch == "mlp":
        return mlp(dataset, hidden, seed)
    if arch == "cnn":
        return cnn(dataset, seed)
    if arch == "rnn":
        return rnn(dataset, timesteps, seed)
    if arch == "srnn":
        return srnn(dataset, timesteps, seed)
    raise XbarError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
