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

A network is a graph (:class:`~xbar.nets.Network`, ``inputs``): layers of two or
more inputs (:class:`Add`, :class:`Concat`) are :class:`Merge` layers, with
``merge_shape`` and ``merge`` over the list of inputs. No layer writes into its
input, which another layer may also read.
"""

from __future__ import annotations

import dataclasses
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
    n_inputs: ClassVar[tuple[int, int]] = (1, 1)
    """Fewest and most inputs the layer takes (layers with more than one are :class:`Merge` layers)."""

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
        must therefore be plain ``str``, ``int`` or ``float`` (HDF5 scalars) or
        ``tuple[int, ...]`` (a short 1-D integer array, format version 2).
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


def int_tuple(value: Any, length: int, name: str, *, least: int = 1) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of ``length`` ints) as a tuple of ``length`` Python ints >= ``least``.

    A single int is repeated (version 1 files store ``strides`` and ``pool_size`` as one int); anything
    else, a bool, a float or a value below ``least`` is an :class:`XbarError` naming ``name``.
    """
    items = [value] * length if isinstance(value, (int, np.integer)) else list(np.ravel(np.asarray(value, object)))
    if len(items) != length or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in items):
        raise XbarError(f"{name} must be {length} integers, got {value!r}")
    out = tuple(int(v) for v in items)
    if any(v < least for v in out):
        raise XbarError(f"{name} must be integers >= {least}, got {out}")
    return out


PADDINGS = ("same", "valid", "explicit")
"""Padding modes of convolutions and pools: ``same`` (output ceil(H / stride), extra padding at the bottom and
right as in TensorFlow and ONNX's SAME_UPPER), ``valid`` (none) or ``explicit`` (the layer's ``pads``)."""


def window_geometry(
    size: int, kernel: int, stride: int, dilation: int, padding: str, pads: tuple[int, ...]
) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of one spatial axis of a convolution or pool.

    ``size`` input pixels, a window of ``kernel`` taps ``dilation`` apart, moved by ``stride``; the
    output counts whole windows only (floor, ONNX's ceil_mode=0). Raises if not one window fits.
    """
    span = (kernel - 1) * dilation + 1
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        before, after = total // 2, total - total // 2
    elif padding == "valid":
        before = after = 0
    else:
        before, after = pads
    padded = size + before + after
    if padded < span:
        raise XbarError(f"a window spanning {span} pixels does not fit {size} pixels padded by {before}+{after}")
    return (padded - span) // stride + 1, before, after


def im2col(
    x: np.ndarray,
    kernel_hw: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    pads: tuple[int, ...],
    out_hw: tuple[int, ...],
    fill: float = 0.0,
) -> np.ndarray:
    """Patches of a general 2-D window (any kernel, stride, dilation and padding) as a strided view.

    Parameters
    ----------
    x : ndarray, shape (batch, H, W, C)
    kernel_hw, strides, dilations : (h, w)
    pads : (top, bottom, left, right), pixels of ``fill`` added around each image
    out_hw : (OH, OW), from :func:`window_geometry`

    Returns
    -------
    ndarray, shape (batch, OH, OW, KH, KW, C), read-only
        A view of the padded input: element (b, i, j, p, q, c) is
        x_pad[b, i * sh + p * dh, j * sw + q * dw, c]. Reshaped to (batch * OH * OW, KH * KW * C) it is
        the patch matrix, rows in (kh, kw, c) order like an HWIO kernel reshaped to (KH * KW * C, C_out).
    """
    b, h, w, c = x.shape
    top, bottom, left, right = pads
    if top or bottom or left or right:
        padded = np.full((b, h + top + bottom, w + left + right, c), fill, x.dtype)
        padded[:, top : top + h, left : left + w] = x
    else:
        padded = np.ascontiguousarray(x)
    sb, sh, sw, sc = padded.strides
    shape = (b, *out_hw, *kernel_hw, c)
    steps = (sb, sh * strides[0], sw * strides[1], sh * dilations[0], sw * dilations[1], sc)
    return as_strided(padded, shape, steps, writeable=False)


@dataclass
class Conv2D(WeightLayer):
    """2-D convolution (cross-correlation), NHWC in and out; kernel HWIO (KH, KW, C_in / groups, C_out).

    Any kernel size, ``strides`` (h, w), ``padding`` ``same`` / ``valid`` / ``explicit`` with ``pads``
    (top, bottom, left, right), ``dilations`` (h, w) and ``groups`` (C_in / groups input channels per
    output channel; depthwise: groups = C_in). Each output pixel is one product of its KH*KW*C_in patch
    with the (KH*KW*C_in, C_out) matrix :attr:`kernel2d`, which is what the crossbar stores.

    Grouped convolutions are held as one block-diagonal matrix: column co (of group g) has the kernel's
    weights in the rows of group g's input channels and zeros elsewhere. That is exact and keeps one
    matrix (and one set of tiles) per layer, at ``groups`` times the cells of the kernel itself (a
    depthwise 3x3 over 32 channels: 288 x 32 cells for 288 weights); the zero cells are programmed and
    read like any other (their conductance is the zero weight's).

    Version 1 files hold the 3x3, stride-1, ``same`` case; it keeps its own patch code
    (:func:`im2col_3x3_same`), so its outputs are what they were, bit for bit.
    """

    kind: ClassVar[str] = "conv2d"
    kernel_ndim: ClassVar[int] = 4
    padding: str = "same"
    strides: tuple[int, ...] = (1, 1)
    pads: tuple[int, ...] = (0, 0, 0, 0)
    """(top, bottom, left, right) zero pixels, used when ``padding`` is ``explicit`` (else all 0)."""
    dilations: tuple[int, ...] = (1, 1)
    groups: int = 1

    def __post_init__(self):
        super().__post_init__()
        if self.padding not in PADDINGS:
            raise XbarError(f"conv2d: padding must be one of {', '.join(PADDINGS)}, got {self.padding!r}")
        self.strides = int_tuple(self.strides, 2, "conv2d: strides")
        self.dilations = int_tuple(self.dilations, 2, "conv2d: dilations")
        self.pads = int_tuple(self.pads, 4, "conv2d: pads", least=0)
        if self.padding != "explicit" and any(self.pads):
            raise XbarError(f"conv2d: pads {self.pads} given with padding {self.padding!r} (use 'explicit')")
        if isinstance(self.groups, bool) or not isinstance(self.groups, int) or self.groups < 1:
            raise XbarError(f"conv2d: groups must be a positive integer, got {self.groups!r}")
        if self.kernel.shape[3] % self.groups:
            raise XbarError(f"conv2d: {self.groups} groups do not divide {self.kernel.shape[3]} output channels")

    def _geometry(self, input_shape) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """(output (OH, OW), pads (top, bottom, left, right)) for one input sample of ``input_shape``."""
        kh, kw, c_group, _ = self.kernel.shape
        if len(input_shape) != 3 or input_shape[2] != c_group * self.groups:
            raise XbarError(
                f"conv2d: input shape {input_shape} does not match kernel {self.kernel.shape} "
                f"with {self.groups} group(s)"
            )
        try:
            rows = window_geometry(input_shape[0], kh, self.strides[0], self.dilations[0], self.padding, self.pads[:2])
            cols = window_geometry(input_shape[1], kw, self.strides[1], self.dilations[1], self.padding, self.pads[2:])
        except XbarError as exc:
            raise XbarError(f"conv2d: input shape {input_shape}: {exc}") from None
        return (rows[0], cols[0]), (rows[1], rows[2], cols[1], cols[2])

    def _is_3x3_same(self, input_shape) -> bool:
        """Whether the version 1 fast path applies: 3x3, stride 1, no dilation, one group, 1 pixel of padding."""
        return (
            self.kernel.shape[:2] == (3, 3)
            and self.strides == (1, 1)
            and self.dilations == (1, 1)
            and self.groups == 1
            and self._geometry(input_shape)[1] == (1, 1, 1, 1)
        )

    @property
    def kernel2d(self) -> np.ndarray:
        """The (KH*KW*C_in, C_out) matrix the crossbar stores, rows in (kh, kw, c_in) order; block-diagonal
        in the channels when ``groups`` > 1 (see the class docstring)."""
        if self.groups == 1:
            return self.kernel.reshape(-1, self.kernel.shape[-1])
        kh, kw, c_group, c_out = self.kernel.shape
        per_group = c_out // self.groups
        full = np.zeros((kh, kw, c_group * self.groups, c_out), self.kernel.dtype)
        for g in range(self.groups):
            cols = slice(g * per_group, (g + 1) * per_group)
            full[:, :, g * c_group : (g + 1) * c_group, cols] = self.kernel[:, :, :, cols]
        return full.reshape(-1, c_out)

    def output_shape(self, input_shape):
        (oh, ow), _ = self._geometry(input_shape)
        return (oh, ow, self.kernel.shape[3])

    def forward(self, x, matmul):
        b, h, w, c = x.shape
        if self._is_3x3_same((h, w, c)):
            y = matmul(im2col_3x3_same(x))
            return _activate(y, self.activation).reshape(b, h, w, -1)
        (oh, ow), pads = self._geometry((h, w, c))
        kh, kw = self.kernel.shape[:2]
        patches = im2col(x, (kh, kw), self.strides[:2], self.dilations[:2], pads, (oh, ow))
        y = matmul(patches.reshape(b * oh * ow, kh * kw * c))
        return _activate(y, self.activation).reshape(b, oh, ow, -1)

    def torch_forward(self, torch, x, kernel, bias, act):
        if self._is_3x3_same(tuple(x.shape[1:])):
            # The call training has always made (padding=1 is "same" for a 3x3 kernel): trained weights stay put.
            z = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), kernel.permute(3, 2, 0, 1), bias, padding=1)
            return act(z.permute(0, 2, 3, 1), self.activation)
        # torch convolves NCHW with OIHW kernels and pads symmetrically, so the (maybe asymmetric) pads go in F.pad.
        (_, _), (top, bottom, left, right) = self._geometry(tuple(x.shape[1:]))
        z = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom))
        z = torch.nn.functional.conv2d(
            z, kernel.permute(3, 2, 0, 1), bias, stride=self.strides, dilation=self.dilations, groups=self.groups
        )
        return act(z.permute(0, 2, 3, 1), self.activation)

    def operand_width(self, input_shape):
        """KH*KW*C_in numbers per output pixel (the patch matrix; 9x the input for 3x3 'same'), or the
        padded input if larger."""
        (oh, ow), (top, bottom, left, right) = self._geometry(input_shape)
        kh, kw = self.kernel.shape[:2]
        h, w, c = input_shape
        return max(kh * kw * c * oh * ow, (h + top + bottom) * (w + left + right) * c)


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
class _Pool2D(Layer):
    """Shared geometry of the 2-D pools: a ``pool_size`` (h, w) window moved by ``strides`` (h, w; default
    the window, i.e. non-overlapping), ``padding`` as for :class:`Conv2D`; whole windows only (floor)."""

    pool_size: tuple[int, ...] = (2, 2)
    strides: tuple[int, ...] = ()
    """(h, w) step; empty (the default) means the window size."""
    padding: str = "valid"
    pads: tuple[int, ...] = (0, 0, 0, 0)
    """(top, bottom, left, right) pixels, used when ``padding`` is ``explicit``; never counted as values."""

    def __post_init__(self):
        self.pool_size = int_tuple(self.pool_size, 2, f"{self.kind}: pool_size")
        self.strides = int_tuple(self.strides or self.pool_size, 2, f"{self.kind}: strides")
        self.pads = int_tuple(self.pads, 4, f"{self.kind}: pads", least=0)
        if self.padding not in PADDINGS:
            raise XbarError(f"{self.kind}: padding must be one of {', '.join(PADDINGS)}, got {self.padding!r}")
        if self.padding != "explicit" and any(self.pads):
            raise XbarError(f"{self.kind}: pads {self.pads} given with padding {self.padding!r} (use 'explicit')")
        kh, kw = self.pool_size
        # A window of padding alone would have no value (max of nothing, mean of nothing), as ONNX also refuses.
        if any(p >= k for p, k in zip(self.pads, (kh, kh, kw, kw))):
            raise XbarError(f"{self.kind}: pads {self.pads} must be smaller than the window {self.pool_size}")

    def _geometry(self, input_shape) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """(output (OH, OW), pads (top, bottom, left, right)) for one input sample of ``input_shape``."""
        if len(input_shape) != 3:
            raise XbarError(f"{self.kind}: input shape {input_shape} is not (H, W, C)")
        try:
            rows = window_geometry(input_shape[0], self.pool_size[0], self.strides[0], 1, self.padding, self.pads[:2])
            cols = window_geometry(input_shape[1], self.pool_size[1], self.strides[1], 1, self.padding, self.pads[2:])
        except XbarError as exc:
            raise XbarError(f"{self.kind}: input shape {input_shape}: {exc}") from None
        return (rows[0], cols[0]), (rows[1], rows[2], cols[1], cols[2])

    def output_shape(self, input_shape):
        (oh, ow), _ = self._geometry(input_shape)
        return (oh, ow, input_shape[2])

    def _windows(self, x: np.ndarray, fill: float) -> np.ndarray:
        """The (batch, OH, OW, KH, KW, C) view of every window, padding filled with ``fill``."""
        (oh, ow), pads = self._geometry(x.shape[1:])
        return im2col(x, self.pool_size[:2], self.strides[:2], (1, 1), pads, (oh, ow), fill)


@dataclass
class MaxPool2D(_Pool2D):
    """Max over each window (NHWC); padding never wins (it is -inf).

    Version 1 files hold the non-overlapping case (one int ``pool_size``, stride the window).
    """

    kind: ClassVar[str] = "maxpool2d"

    def _non_overlapping(self, input_shape) -> bool:
        p = self.pool_size
        return (
            self.strides == p
            and not any(self.pads)
            and self.padding != "same"
            and input_shape[0] % p[0] == 0
            and input_shape[1] % p[1] == 0
        )

    def forward(self, x, matmul):
        if self._non_overlapping(x.shape[1:]):
            ph, pw = self.pool_size
            # An elementwise maximum over the p^2 strided views: 3-5x faster than a two-axis reduce.
            out = x[:, ::ph, ::pw]
            for i in range(ph):
                for j in range(pw):
                    if i or j:
                        out = np.maximum(out, x[:, i::ph, j::pw])
            return np.ascontiguousarray(out)
        windows = self._windows(x, -np.inf)
        out = windows[:, :, :, 0, 0].copy()
        for i in range(self.pool_size[0]):
            for j in range(self.pool_size[1]):
                if i or j:
                    np.maximum(out, windows[:, :, :, i, j], out=out)
        return out

    def torch_forward(self, torch, x, kernel, bias, act):
        # F.max_pool2d, as training has always used, rather than forward's maximum of strided views: the
        # values are equal, but the gradient at tied maxima need not be, and trained weights would change.
        (_, _), (top, bottom, left, right) = self._geometry(tuple(x.shape[1:]))
        z = x.permute(0, 3, 1, 2)
        if top or bottom or left or right:
            z = torch.nn.functional.pad(z, (left, right, top, bottom), value=-float("inf"))
        y = torch.nn.functional.max_pool2d(z, self.pool_size, self.strides)
        return y.permute(0, 2, 3, 1)


@dataclass
class AvgPool2D(_Pool2D):
    """Mean over each window (NHWC) of the input pixels it covers: padding is not counted (ONNX's default
    count_include_pad=0, Keras's "same"), so a border window of 2 real pixels divides by 2."""

    kind: ClassVar[str] = "avgpool2d"

    def forward(self, x, matmul):
        windows = self._windows(x, 0.0)
        total = windows[:, :, :, 0, 0].copy()
        for i in range(self.pool_size[0]):
            for j in range(self.pool_size[1]):
                if i or j:
                    total += windows[:, :, :, i, j]
        # How many real pixels each window covers: the same windows over an unpadded image of ones.
        ones = np.ones((1, x.shape[1], x.shape[2], 1), np.float32)
        counts = self._windows(ones, 0.0).sum(axis=(3, 4), dtype=np.float32)
        return total / counts

    def torch_forward(self, torch, x, kernel, bias, act):
        (_, _), (top, bottom, left, right) = self._geometry(tuple(x.shape[1:]))
        z = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom))
        ones = torch.nn.functional.pad(torch.ones_like(x[:1, :, :, :1]).permute(0, 3, 1, 2), (left, right, top, bottom))
        pool = torch.nn.functional.avg_pool2d
        y = pool(z, self.pool_size, self.strides) / pool(ones, self.pool_size, self.strides)
        return y.permute(0, 2, 3, 1)


@dataclass
class GlobalAvgPool2D(Layer):
    """Mean over all pixels of each channel: (H, W, C) -> (C,)."""

    kind: ClassVar[str] = "globalavgpool2d"

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise XbarError(f"globalavgpool2d: input shape {input_shape} is not (H, W, C)")
        return (input_shape[2],)

    def forward(self, x, matmul):
        return x.mean(axis=(1, 2), dtype=np.float32)

    def torch_forward(self, torch, x, kernel, bias, act):
        return x.mean(dim=(1, 2))


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


FUNCTIONS = ("relu", "clip", "leakyrelu", "sigmoid", "tanh", "identity")


@dataclass
class Activation(Layer):
    """A digital elementwise activation (any shape): ``relu``, ``clip`` to [``low``, ``high``] (bounded ReLU
    and ReLU6), ``leakyrelu`` (x for x >= 0, ``alpha`` x below), ``sigmoid``, ``tanh`` or ``identity``.

    Weight layers keep their own ``activation`` (``brelu``/``linear``); this layer is how imported networks
    apply theirs. It never writes into its input, which another layer may also read.
    """

    kind: ClassVar[str] = "activation"
    function: str = "relu"
    alpha: float = 0.01
    """Slope below 0 of ``leakyrelu`` (ONNX's and PyTorch's default 0.01)."""
    low: float = 0.0
    high: float = 1.0
    """``clip`` bounds (``low`` <= ``high``); the default is the paper's bounded ReLU."""

    def __post_init__(self):
        if self.function not in FUNCTIONS:
            raise XbarError(f"activation: unknown function {self.function!r} (one of {', '.join(FUNCTIONS)})")
        for name in ("alpha", "low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise XbarError(f"activation: {name} must be a finite number, got {value!r}")
        if self.low > self.high:
            raise XbarError(f"activation: clip bounds low={self.low} > high={self.high}")

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, matmul):
        f = self.function
        if f == "relu":
            return np.maximum(x, np.float32(0.0))
        if f == "clip":
            return np.clip(x, np.float32(self.low), np.float32(self.high))
        if f == "leakyrelu":
            return np.where(x >= 0, x, x * np.float32(self.alpha))
        if f == "sigmoid":
            # exp(-x) overflows to inf for x < -88, and 1 / (1 + inf) is the right 0 (the network ignores the warning).
            return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))
        if f == "tanh":
            return np.tanh(x)
        return x

    def torch_forward(self, torch, x, kernel, bias, act):
        f, F = self.function, torch.nn.functional
        if f == "relu":
            return F.relu(x)
        if f == "clip":
            return x.clamp(self.low, self.high)
        if f == "leakyrelu":
            return F.leaky_relu(x, self.alpha)
        if f == "sigmoid":
            return torch.sigmoid(x)
        if f == "tanh":
            return torch.tanh(x)
        return x

    def neuron_activations(self, output_shape):
        """Every output (prod(output_shape)), except for ``identity``: each is one neuron evaluation."""
        return 0 if self.function == "identity" else math.prod(output_shape)


@dataclass
class Reshape(Layer):
    """Each sample reshaped to ``shape`` (row-major, NHWC order; one -1 is inferred), e.g. (-1,) flattens."""

    kind: ClassVar[str] = "reshape"
    shape: tuple[int, ...] = (-1,)

    def __post_init__(self):
        dims = list(np.ravel(np.asarray(self.shape, object)))
        if not 1 <= len(dims) <= 3 or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in dims):
            raise XbarError(f"reshape: shape must be 1 to 3 integers, got {self.shape!r}")
        self.shape = tuple(int(d) for d in dims)
        if any(d < -1 or d == 0 for d in self.shape) or self.shape.count(-1) > 1:
            raise XbarError(f"reshape: shape must be positive integers and at most one -1, got {self.shape}")

    def output_shape(self, input_shape):
        size, known = math.prod(input_shape), -math.prod(self.shape) if -1 in self.shape else math.prod(self.shape)
        if (-1 in self.shape and size % known) or (-1 not in self.shape and size != known):
            raise XbarError(f"reshape: input shape {input_shape} cannot be reshaped to {self.shape}")
        return tuple(size // known if d == -1 else d for d in self.shape)

    def forward(self, x, matmul):
        return x.reshape((x.shape[0],) + self.shape)

    def torch_forward(self, torch, x, kernel, bias, act):
        return x.reshape((x.shape[0],) + self.shape)


@dataclass
class Identity(Layer):
    """Passes its input on unchanged (dropout at inference, or an imported node that does nothing)."""

    kind: ClassVar[str] = "identity"

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, matmul):
        return x

    def torch_forward(self, torch, x, kernel, bias, act):
        return x


@dataclass
class Merge(Layer):
    """A layer of two or more inputs: :meth:`merge_shape` and :meth:`merge` take the list of them."""

    n_inputs: ClassVar[tuple[int, int]] = (2, 64)

    def merge_shape(self, input_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        """Shape of one output sample for input samples of ``input_shapes``; raises on mismatch."""
        raise NotImplementedError

    def merge(self, xs: list[np.ndarray]) -> np.ndarray:
        """The output batch for the input batches ``xs`` (batch first, in the layer's ``inputs`` order)."""
        raise NotImplementedError

    def merge_width(self, input_shapes: list[tuple[int, ...]]) -> int:
        """Float32 numbers per sample the layer reads: all its inputs."""
        return sum(math.prod(shape) for shape in input_shapes)

    def output_shape(self, input_shape):
        return self.merge_shape([input_shape])

    def forward(self, x, matmul):
        return self.merge([x])


@dataclass
class Add(Merge):
    """Elementwise sum of inputs of one shape (a residual connection), added in input order."""

    kind: ClassVar[str] = "add"

    def merge_shape(self, input_shapes):
        if len(set(input_shapes)) != 1:
            raise XbarError(f"add: inputs of different shapes {input_shapes}")
        return input_shapes[0]

    def merge(self, xs):
        out = xs[0] + xs[1]
        for x in xs[2:]:
            out += x
        return out


@dataclass
class Concat(Merge):
    """Inputs joined along the last (channel, NHWC) axis, in input order; the other axes must agree."""

    kind: ClassVar[str] = "concat"

    def merge_shape(self, input_shapes):
        if len({shape[:-1] for shape in input_shapes}) != 1:
            raise XbarError(f"concat: inputs {input_shapes} differ in more than the last (channel) axis")
        return input_shapes[0][:-1] + (sum(shape[-1] for shape in input_shapes),)

    def merge(self, xs):
        return np.concatenate(xs, axis=-1)


def fold_batchnorm(
    layer: WeightLayer,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float = 1e-5,
) -> WeightLayer:
    """The layer with batch normalization (inference) folded in: BN(layer(x)) as one weight layer.

    BN(z) = gamma (z - mean) / sqrt(var + eps) + beta, per output channel (the kernel's last axis), so
    with s = gamma / sqrt(var + eps) the folded kernel is kernel * s (each output column scaled) and
    the bias (bias - mean) s + beta (bias 0 if the layer had none). The crossbar then holds the folded
    weights. Computed in float64, stored float32. ``layer`` must be ``linear`` (the normalization acts
    on the pre-activation); the result is ``linear`` too: an activation after BN is its own layer.
    """
    if layer.activation != "linear":
        raise XbarError(f"{layer.kind}: batch normalization folds into a linear layer, not {layer.activation!r}")
    n_out = layer.kernel.shape[-1]
    params = [np.asarray(p, np.float64) for p in (gamma, beta, mean, var)]
    if any(p.shape != (n_out,) for p in params):
        raise XbarError(f"batch normalization parameters must have shape ({n_out},), got {[p.shape for p in params]}")
    gamma64, beta64, mean64, var64 = params
    if np.any(var64 + eps <= 0):
        raise XbarError("batch normalization: var + eps must be positive")
    scale = gamma64 / np.sqrt(var64 + eps)
    bias = np.zeros(n_out) if layer.bias is None else np.asarray(layer.bias, np.float64)
    kernel = (np.asarray(layer.kernel, np.float64) * scale).astype(np.float32)
    folded_bias = ((bias - mean64) * scale + beta64).astype(np.float32)
    return dataclasses.replace(layer, kernel=kernel, bias=folded_bias)


LAYER_KINDS: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (
        Dense,
        Conv2D,
        Mosaic,
        MaxPool2D,
        Flatten,
        AvgPool2D,
        GlobalAvgPool2D,
        Activation,
        Reshape,
        Identity,
        Add,
        Concat,
    )
}
