"""Layers of the numpy networks (float32, NHWC).

Weight layers (:class:`Dense`, :class:`Conv2D`, :class:`Mosaic`) never multiply
matrices themselves: each is handed a ``matmul`` callable that maps a
(batch, n_in) float32 array to (batch, n_out), bias included. The ideal one is
:class:`IdealMatrix`; the crossbar substitutes its analog tiles for it, so ideal
and analog execution share this code.

A layer kind is defined in one place, its class here: the dataclass fields
are its HDF5 attributes (name and type, read and written by :mod:`xbar.io`),
``output_shape`` and ``forward`` its numpy pass, ``torch_forward`` the PyTorch
mirror that :mod:`xbar.train` trains, ``neuron_activations`` and
``operand_width`` its operation counts. A new kind is one class here, listed
in :data:`LAYER_KINDS`, plus its plain-loop reference in ``tests/reference.py``.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import XbarError

Matmul = Callable[[np.ndarray], np.ndarray]
"""(batch, n_in) float32 -> (batch, n_out) float32, bias included."""

TorchAct = Callable[[Any, str], Any]
"""(pre-activation tensor, activation name) -> tensor: the activation as training applies it (noise included)."""

ACTIVATIONS = ("brelu", "linear")

_DATASET = {"hdf5": "dataset"}
"""Field metadata of an array stored as an HDF5 dataset; every other field is an HDF5 attribute."""


def bounded_relu(x: np.ndarray) -> np.ndarray:
    """The paper's bounded ReLU, min(max(0, x), 1), in place on a float array."""
    return np.clip(x, 0.0, 1.0, out=x)


def _activate(x: np.ndarray, activation: str) -> np.ndarray:
    return bounded_relu(x) if activation == "brelu" else x


class IdealMatrix:
    """The ideal float32 product ``x @ kernel + bias``: the reference every analog matrix replaces."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray | None):
        self.kernel = np.ascontiguousarray(kernel, dtype=np.float32)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.kernel
        if self.bias is not None:
            y += self.bias
        return y


@dataclass
class Layer:
    """Base class: a layer kind with its parameters; weight layers also hold ``kernel`` and ``bias``."""

    kind: ClassVar[str] = ""
    has_weights: ClassVar[bool] = False

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of ``input_shape``; raises on mismatch."""
        raise NotImplementedError

    def forward(self, x: np.ndarray, matmul: Matmul | None) -> np.ndarray:
        """Apply the layer to a batch ``x`` (batch first), using ``matmul`` for weight products."""
        raise NotImplementedError

    def torch_forward(self, torch, x, kernel, bias, act: TorchAct):
        """The PyTorch mirror of :meth:`forward`, which :mod:`xbar.train` trains.

        Parameters
        ----------
        torch : module
            The ``torch`` module, passed in so that only :mod:`xbar.train` imports it.
        x : torch.Tensor, float32, shape (batch, ...)
            A batch in the numpy layout (NHWC, batch first).
        kernel, bias : torch.Tensor or None
            This layer's trainable kernel (same shape as ``self.kernel``) and bias
            (None without one); both None for layers without weights.
        act : callable(tensor, activation name) -> tensor
            The activation with its training noise.

        Returns
        -------
        torch.Tensor, float32, shape (batch,) + output_shape
            The same numbers :meth:`forward` computes with an ideal ``matmul``
            (``tests/test_nets.py::test_forward_matches_pytorch``).
        """
        raise XbarError(f"training does not support layer kind {self.kind!r}")

    @classmethod
    def attr_types(cls) -> dict[str, type]:
        """HDF5 attributes of this kind (besides ``kind``): name -> Python type, in field order.

        They are the dataclass fields not marked as datasets, typed by their
        annotations, so declaring a field declares its attribute; :mod:`xbar.io`
        writes :meth:`attrs` and checks what it reads against these types, which
        must therefore be plain ``str``, ``int`` or ``float`` (HDF5 scalars).
        """
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in fields(cls) if f.metadata.get("hdf5") != "dataset"}

    def attrs(self) -> dict:
        """Parameters stored as HDF5 attributes of this layer (besides ``kind``): name -> value."""
        return {name: getattr(self, name) for name in self.attr_types()}

    def neuron_activations(self, output_shape: tuple[int, ...]) -> int:
        """Hidden bounded-ReLU activations of one layer per inference.

        Dense and conv: every output. Mosaic: the D_hl fed-back neurons at each of
        the t steps, as the paper counts them (189 x 7 = 1,323 at t = 7: its 66 pJ).
        The logits (linear) count none, nor do layers without an activation.

        Parameters
        ----------
        output_shape : tuple of int
            Shape of one output sample of this layer (``Network.shapes[i + 1]``).

        Returns
        -------
        int
            Activations (neuron evaluations) per inference.
        """
        return 0

    def operand_width(self, input_shape: tuple[int, ...]) -> int:
        """Float32 numbers per sample in the largest array this layer's forward pass reads.

        The input itself (prod(input_shape)) unless the layer expands it, as a
        convolution's patch matrix does; :meth:`Network.batch_size_for` sizes
        batches by it.
        """
        return math.prod(input_shape)


@dataclass
class WeightLayer(Layer):
    """A layer computing an affine map through one weight matrix."""

    kernel: np.ndarray = field(default=typing.cast(np.ndarray, None), repr=False, metadata=_DATASET)
    bias: np.ndarray | None = field(default=None, repr=False, metadata=_DATASET)
    activation: str = "brelu"
    has_weights: ClassVar[bool] = True
    kernel_ndim: ClassVar[int] = 2
    """Number of axes of ``kernel`` (2 for a matrix, 4 for a convolution's HWIO kernel)."""

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise XbarError(f"{self.kind}: unknown activation {self.activation!r}")
        self.kernel = np.asarray(self.kernel)
        # Checked here, before kernel2d or a bias check indexes an axis that a scalar or empty kernel lacks.
        if self.kernel.ndim != self.kernel_ndim or 0 in self.kernel.shape:
            raise XbarError(
                f"{self.kind}: kernel must have {self.kernel_ndim} non-empty axes, got shape {self.kernel.shape}"
            )
        if self.bias is not None:
            self.bias = np.asarray(self.bias)
            if self.bias.shape != (self.kernel.shape[-1],):
                raise XbarError(f"{self.kind}: bias shape {self.bias.shape} does not match kernel {self.kernel.shape}")

    @property
    def kernel2d(self) -> np.ndarray:
        """The kernel as the (n_in, n_out) matrix that the crossbar stores."""
        return self.kernel.reshape(-1, self.kernel.shape[-1])

    def ideal_matmul(self) -> IdealMatrix:
        """The ideal float32 product of this layer."""
        return IdealMatrix(self.kernel2d, self.bias)

    def neuron_activations(self, output_shape):
        """Every output (prod(output_shape)) if the activation is the bounded ReLU, else 0."""
        return math.prod(output_shape) if self.activation == "brelu" else 0


@dataclass
class Dense(WeightLayer):
    """Fully connected layer: y = f(x W + b), kernel (n_in, n_out)."""

    kind: ClassVar[str] = "dense"

    def output_shape(self, input_shape):
        if self.kernel.ndim != 2:
            raise XbarError(f"dense: kernel must be 2-D, got shape {self.kernel.shape}")
        if input_shape != (self.kernel.shape[0],):
            raise XbarError(f"dense: input shape {input_shape} does not match kernel {self.kernel.shape}")
        return (self.kernel.shape[1],)

    def forward(self, x, matmul):
        return _activate(matmul(x), self.activation)

    def torch_forward(self, torch, x, kernel, bias, act):
        z = x @ kernel
        return act(z if bias is None else z + bias, self.activation)


def im2col_3x3_same(x: np.ndarray) -> np.ndarray:
    """Patches of a 3x3, stride-1, zero-padded ("same") convolution.

    Parameters
    ----------
    x : ndarray, shape (batch, H, W, C)

    Returns
    -------
    ndarray, shape (batch * H * W, 9 * C)
        Row (b, i, j) holds x_pad[b, i:i+3, j:j+3, :] flattened in (kh, kw, c)
        order, matching an HWIO kernel reshaped to (9 * C, C_out).
    """
    b, h, w, c = x.shape
    padded = np.zeros((b, h + 2, w + 2, c), x.dtype)
    padded[:, 1:-1, 1:-1] = x
    # In NHWC the (kw, c) part of a patch row is 3c contiguous numbers: a (b, h, w, kh, 3c) view copied
    # once moves runs of 3c, where a (kh, kw, c) window view moves runs of c (1 to 6 in our CNNs).
    sb, sh, sw, sc = padded.strides
    view = as_strided(padded, (b, h, w, 3, 3 * c), (sb, sh, sw, sh, sc), writeable=False)
    return view.reshape(b * h * w, 9 * c)


@dataclass
class Conv2D(WeightLayer):
    """3x3 convolution, stride 1, "same" zero padding; kernel HWIO (3, 3, C_in, C_out).

    Each output pixel is one product of its 9*C_in patch with the (9*C_in, C_out) matrix.
    """

    kind: ClassVar[str] = "conv2d"
    kernel_ndim: ClassVar[int] = 4
    padding: str = "same"
    strides: int = 1

    def output_shape(self, input_shape):
        if self.kernel.ndim != 4 or self.kernel.shape[:2] != (3, 3):
            raise XbarError(f"conv2d: kernel must be (3, 3, C_in, C_out), got {self.kernel.shape}")
        if self.padding != "same" or self.strides != 1:
            raise XbarError("conv2d: only padding='same' and strides=1 are supported")
        if len(input_shape) != 3 or input_shape[2] != self.kernel.shape[2]:
            raise XbarError(f"conv2d: input shape {input_shape} does not match kernel {self.kernel.shape}")
        return input_shape[:2] + (self.kernel.shape[3],)

    def forward(self, x, matmul):
        b, h, w, _ = x.shape
        y = matmul(im2col_3x3_same(x))
        return _activate(y, self.activation).reshape(b, h, w, -1)

    def torch_forward(self, torch, x, kernel, bias, act):
        # torch convolves NCHW with OIHW kernels; padding=1 is "same" for a 3x3 kernel.
        z = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), kernel.permute(3, 2, 0, 1), bias, padding=1)
        return act(z.permute(0, 2, 3, 1), self.activation)

    def operand_width(self, input_shape):
        """9 C_in numbers per output pixel: the patch matrix of :func:`im2col_3x3_same`, 9x the input."""
        return 9 * math.prod(input_shape)


@dataclass
class Mosaic(WeightLayer):
    """The paper's weight-reusing recurrent core ("Mosaic").

    One core of ``n_rows = n_step + feedback`` rows and ``n_out`` columns is
    read ``timesteps`` times. Step s sees the s-th slice of n_step = n_in /
    timesteps inputs followed by the first ``feedback`` outputs of step s-1
    (zeros at the first step); every step applies the activation. The layer's
    output is the last step's n_out activations.
    """

    kind: ClassVar[str] = "mosaic"
    timesteps: int = 7
    feedback: int = 189
    """Number of outputs fed back to the next step (the paper's D_hl)."""

    @property
    def n_step(self) -> int:
        """Number of new inputs per step (the paper's M / t)."""
        return self.kernel.shape[0] - self.feedback

    def output_shape(self, input_shape):
        if self.kernel.ndim != 2:
            raise XbarError(f"mosaic: kernel must be 2-D, got shape {self.kernel.shape}")
        rows, cols = self.kernel.shape
        if self.timesteps < 1 or not 0 <= self.feedback <= min(rows - 1, cols):
            raise XbarError(
                f"mosaic: need timesteps >= 1 and 0 <= feedback < {rows} rows and <= {cols} columns, "
                f"got timesteps={self.timesteps}, feedback={self.feedback}"
            )
        if input_shape != (self.n_step * self.timesteps,):
            raise XbarError(
                f"mosaic: input shape {input_shape} is not {self.timesteps} steps of "
                f"{self.n_step} inputs (kernel {self.kernel.shape}, feedback {self.feedback})"
            )
        return (cols,)

    def forward(self, x, matmul):
        batch = x.shape[0]
        n_step, feedback = self.n_step, self.feedback
        rows = np.zeros((batch, n_step + feedback), dtype=np.float32)
        out = None
        for step in range(self.timesteps):
            rows[:, :n_step] = x[:, step * n_step : (step + 1) * n_step]
            if out is not None:
                rows[:, n_step:] = out[:, :feedback]
            out = _activate(matmul(rows), self.activation)
        return out

    def torch_forward(self, torch, x, kernel, bias, act):
        n_step, feedback = self.n_step, self.feedback
        out = x.new_zeros((x.shape[0], kernel.shape[1]))
        for step in range(self.timesteps):
            # A fresh concatenation per step rather than numpy's reused buffer: autograd needs every step's rows.
            rows = torch.cat([x[:, step * n_step : (step + 1) * n_step], out[:, :feedback]], dim=1)
            z = rows @ kernel
            out = act(z if bias is None else z + bias, self.activation)
        return out

    def neuron_activations(self, output_shape):
        """The D_hl = ``feedback`` fed-back neurons at each of the ``timesteps`` steps (0 if linear).

        As the paper counts them, rather than all n_out columns at every step.
        """
        return self.feedback * self.timesteps if self.activation == "brelu" else 0


@dataclass
class MaxPool2D(Layer):
    """Non-overlapping max-pool over pool_size x pool_size windows (NHWC)."""

    kind: ClassVar[str] = "maxpool2d"
    pool_size: int = 2

    def output_shape(self, input_shape):
        p = self.pool_size
        if len(input_shape) != 3 or p < 1 or input_shape[0] % p or input_shape[1] % p:
            raise XbarError(f"maxpool2d: pool size {p} does not divide input shape {input_shape}")
        return (input_shape[0] // p, input_shape[1] // p, input_shape[2])

    def forward(self, x, matmul):
        p = self.pool_size
        # An elementwise maximum over the p^2 strided views: 3-5x faster than a two-axis reduce.
        out = x[:, ::p, ::p]
        for i in range(p):
            for j in range(p):
                if i or j:
                    out = np.maximum(out, x[:, i::p, j::p])
        return np.ascontiguousarray(out)

    def torch_forward(self, torch, x, kernel, bias, act):
        # F.max_pool2d, as training has always used, rather than forward's maximum of strided views: the
        # values are equal, but the gradient at tied maxima need not be, and trained weights would change.
        y = torch.nn.functional.max_pool2d(x.permute(0, 3, 1, 2), self.pool_size)
        return y.permute(0, 2, 3, 1)


@dataclass
class Flatten(Layer):
    """Flatten each sample in C (row-major, NHWC) order."""

    kind: ClassVar[str] = "flatten"

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, matmul):
        return x.reshape(x.shape[0], -1)

    def torch_forward(self, torch, x, kernel, bias, act):
        return x.reshape(x.shape[0], -1)


LAYER_KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in (Dense, Conv2D, Mosaic, MaxPool2D, Flatten)}
