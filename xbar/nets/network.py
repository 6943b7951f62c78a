"""A feed-forward network, a chain or a directed acyclic graph of layers, with its metadata and provenance."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import XbarError
from .layers import Layer, Matmul, Merge, WeightLayer

MAX_SAMPLE_BYTES = 256 * 2**20
"""Most bytes of float32 operand one sample may need in any layer (256 MiB): its input, its output, or a
convolution's patch matrix (:meth:`Layer.operand_width`). A network needing more is refused when built, before
anything is allocated: a batch holds at least 16 samples (:meth:`Network.batch_size_for`), so 4 GiB per layer
at this limit. The paper's largest is the CNN's 3-channel patch matrix, 9 x 28 x 28 x 3 numbers (83 KiB)."""


def format_bytes(n: int) -> str:
    """``n`` bytes in binary units, for messages: ``"512 B"``, ``"2.0 GiB"``, ``"about 10^24 B"``."""
    if n < 1024:
        return f"{n} B"
    for power, unit in enumerate(("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"), start=1):
        if n < 1024 ** (power + 1):
            return f"{n / 1024**power:.1f} {unit}"
    # Declared sizes can exceed a float (HDF5 allows 32 axes of 2^64): digits, not a division.
    return f"about 10^{len(str(n)) - 1} B"


def _check_input_shape(input_shape) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints, or an :class:`XbarError` (no inf, NaN, 2.5, bool or string)."""
    try:
        dims = tuple(input_shape)
    except TypeError:
        raise XbarError(f"input shape must be a sequence of positive integers, got {input_shape!r}") from None
    if not dims or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
        raise XbarError(f"input shape must be one or more positive integers, got {input_shape!r}")
    return tuple(int(d) for d in dims)


@dataclass
class Network:
    """A network: layers in a topological order, the sample shape they take, and where the weights came from.

    Parameters
    ----------
    arch : str
        Architecture name (``mlp``, ``cnn``, ``rnn`` or another label).
    dataset : str
        Dataset the network was trained for.
    input_shape : tuple of int
        Shape of one input sample (NHWC without the batch axis), e.g. (28, 28, 1).
    n_classes : int
        Number of outputs (logits) of the last layer.
    layers : list of Layer
        In an order where every layer comes after the layers it reads; the last one gives the logits.
    provenance : dict
        Training provenance (seed, epochs, sigma_neu, timesteps, test accuracy, ...).
    inputs : list of tuple of int, optional
        For each layer, the indices of the earlier layers whose outputs it reads, in order (-1: the
        network's input); a :class:`~.layers.Merge` layer reads two or more, every other layer one.
        Default None: a chain, each layer reading the one before. Stored normalised (a chain too), and
        every layer but the last must be read by some later one.
    """

    arch: str
    dataset: str
    input_shape: tuple[int, ...]
    n_classes: int
    layers: list[Layer]
    provenance: dict = field(default_factory=dict)
    inputs: list[tuple[int, ...]] | None = None

    def __post_init__(self):
        self.input_shape = _check_input_shape(self.input_shape)
        self.inputs = self._check_inputs()
        self._last_use = {source: i for i, sources in enumerate(self.inputs) for source in sources}
        self.shapes = self._propagate_shapes()
        if self.shapes[-1] != (self.n_classes,):
            raise XbarError(f"network output shape {self.shapes[-1]} is not ({self.n_classes},)")

    def _check_inputs(self) -> list[tuple[int, ...]]:
        """``inputs`` as a list of tuples of ints (a chain when None), checked: one entry per layer, each
        index earlier than its layer (so the graph is acyclic), as many as the layer kind takes, every
        layer but the last read by a later one."""
        n = len(self.layers)
        if self.inputs is None:
            return [(i - 1,) for i in range(n)]
        if len(self.inputs) != n:
            raise XbarError(f"{len(self.inputs)} entries of inputs for {n} layers")
        checked = []
        for index, (layer, sources) in enumerate(zip(self.layers, self.inputs)):
            try:
                items = tuple(sources)
            except TypeError:
                raise XbarError(f"layer {index}: inputs must be a sequence of layer indices, got {sources!r}") from None
            if any(isinstance(j, bool) or not isinstance(j, numbers.Integral) or not -1 <= j < index for j in items):
                raise XbarError(
                    f"layer {index}: inputs {items!r} must be indices of earlier layers (-1 to {index - 1}; -1 is "
                    "the network input)"
                )
            least, most = layer.n_inputs
            if not least <= len(items) <= most:
                wanted = f"{least}" if least == most else f"{least} to {most}"
                raise XbarError(f"layer {index}: {layer.kind} takes {wanted} input(s), got {len(items)}")
            checked.append(tuple(int(j) for j in items))
        used = {j for sources in checked for j in sources}
        unused = [i for i in range(n - 1) if i not in used]
        if unused:
            raise XbarError(f"layer {unused[0]}: its output is never read (only the last layer's may go unread)")
        return checked

    @property
    def is_chain(self) -> bool:
        """Whether each layer reads the one before (all version 1 files, and the paper's networks)."""
        return self.inputs == [(i - 1,) for i in range(len(self.layers))]

    def layer_input_shapes(self, index: int) -> list[tuple[int, ...]]:
        """Sample shapes of the inputs of layer ``index``, in its ``inputs`` order."""
        assert self.inputs is not None  # normalised in __post_init__
        return [self.shapes[j + 1] for j in self.inputs[index]]

    def _operand_width(self, index: int) -> int:
        """Float32 numbers per sample the widest array of layer ``index`` holds (:meth:`Layer.operand_width`)."""
        layer, shapes = self.layers[index], self.layer_input_shapes(index)
        return layer.merge_width(shapes) if isinstance(layer, Merge) else layer.operand_width(shapes[0])

    def _propagate_shapes(self) -> list[tuple[int, ...]]:
        """The input shape then each layer's output shape; refuses layers whose shapes do not fit their inputs
        or exceed :data:`MAX_SAMPLE_BYTES` (checked on shapes alone, before any activation exists)."""
        assert self.inputs is not None  # normalised in __post_init__
        self.shapes = [self.input_shape]
        if 4 * math.prod(self.input_shape) > MAX_SAMPLE_BYTES:
            raise XbarError(
                f"input shape {self.input_shape} is {format_bytes(4 * math.prod(self.input_shape))} of float32 "
                f"per sample, more than the {format_bytes(MAX_SAMPLE_BYTES)} limit"
            )
        for index, layer in enumerate(self.layers):
            shapes = self.layer_input_shapes(index)
            try:
                out = layer.merge_shape(shapes) if isinstance(layer, Merge) else layer.output_shape(shapes[0])
            except XbarError as exc:
                raise XbarError(f"layer {index}: {exc}") from None
            self.shapes.append(tuple(out))
            need = 4 * max(self._operand_width(index), math.prod(self.shapes[-1]))
            if need > MAX_SAMPLE_BYTES:
                raise XbarError(
                    f"layer {index}: {layer.kind} needs {format_bytes(need)} of float32 per sample, more than the "
                    f"{format_bytes(MAX_SAMPLE_BYTES)} limit"
                )
        return self.shapes

    def digital_neurons(self) -> list[int]:
        """Per weight layer (in :attr:`weight_layers` order), the neuron activations of the digital layers it feeds.

        A digital :class:`~.layers.Activation` (an imported ReLU, tanh, ...) is charged to the weight layer it
        follows, found by walking back along first inputs through layers without weights (pools, reshapes, an
        addition's first branch); one with no weight layer before it is charged to none. Always 0 for the
        paper's networks, whose weight layers apply their own activation.
        """
        assert self.inputs is not None  # normalised in __post_init__
        owner_of = {id(layer): n for n, layer in enumerate(self.weight_layers)}
        totals = [0] * len(owner_of)
        for index, (layer, shape) in enumerate(zip(self.layers, self.shapes[1:])):
            if layer.has_weights or not layer.neuron_activations(shape):
                continue
            source = self.inputs[index][0]
            while source >= 0 and not self.layers[source].has_weights:
                source = self.inputs[source][0]
            if source >= 0:
                totals[owner_of[id(self.layers[source])]] += layer.neuron_activations(shape)
        return totals

    @property
    def weight_layers(self) -> list[WeightLayer]:
        """The layers holding a weight matrix, in order: one crossbar matrix each."""
        return [layer for layer in self.layers if isinstance(layer, WeightLayer)]

    @property
    def n_params(self) -> int:
        """Number of trainable parameters (kernels and biases)."""
        return sum(layer.kernel.size + (0 if layer.bias is None else layer.bias.size) for layer in self.weight_layers)

    def ideal_matmuls(self) -> list[Matmul]:
        """The ideal float32 product of each weight layer, in order."""
        return [layer.ideal_matmul() for layer in self.weight_layers]

    def forward(self, x: np.ndarray, matmuls: Sequence[Matmul] | None = None) -> np.ndarray:
        """Logits for a batch of samples.

        Parameters
        ----------
        x : ndarray, shape (batch, ...) with prod(...) == prod(input_shape)
            Inputs, pixels in [0, 1].
        matmuls : sequence of Matmul, optional
            One product per weight layer (default: the ideal float32 ones).

        Returns
        -------
        ndarray, float32, shape (batch, n_classes)
            Finite: samples that do not fit ``input_shape``, and logits that overflow float32, are an
            :class:`XbarError`.
        """
        matmuls = self.ideal_matmuls() if matmuls is None else list(matmuls)
        if len(matmuls) != len(self.weight_layers):
            raise XbarError(f"{len(matmuls)} matmuls given for {len(self.weight_layers)} weight layers")
        if x.ndim < 1 or math.prod(x.shape[1:]) != math.prod(self.input_shape):
            # A file's input_shape is only checked against its own layers; the test set is met here.
            raise XbarError(
                f"the network takes samples of shape {self.input_shape}, got samples of shape {tuple(x.shape[1:])}"
            )
        x = np.ascontiguousarray(x, dtype=np.float32).reshape((x.shape[0],) + self.input_shape)
        products = iter(matmuls)
        assert self.inputs is not None  # normalised in __post_init__
        # Outputs still to be read, by layer index (-1: the input); each is dropped after its last reader, so a
        # chain holds one activation at a time, as before. Layers never write into their inputs.
        values = {-1: x}
        # Finite but huge weights can overflow float32: reported once below as an error, not as numpy warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            for index, (layer, sources) in enumerate(zip(self.layers, self.inputs)):
                args = [values[j] for j in sources]
                for j in set(sources):
                    if self._last_use[j] == index:
                        del values[j]
                product = next(products) if layer.has_weights else None
                values[index] = layer.merge(args) if isinstance(layer, Merge) else layer.forward(args[0], product)
                del args
        x = values[len(self.layers) - 1]
        if not np.all(np.isfinite(x)):
            raise XbarError("the network's outputs overflow float32 (inf or NaN logits): weights or inputs too large")
        return x

    def batch_size_for(self, budget_bytes: int = 8 << 20, most: int = 1000) -> int:
        """Samples per forward pass that keep the largest float32 operand of a layer near ``budget_bytes``.

        Each layer says how wide its operand is (:meth:`Layer.operand_width`,
        float32 numbers per sample): its input, or a convolution's patch matrix
        (9 C_in numbers per output pixel). Batches that fit the cores' caches
        run 1.4-1.6x faster on the CNNs than batches of 1,000
        (docs/performance.md); results never depend on the batch size. Between
        16 and ``most``.
        """
        widest = max(self._operand_width(index) for index in range(len(self.layers)))
        return int(min(most, max(16, budget_bytes // (4 * widest))))

    def predict(self, x: np.ndarray, matmuls: Sequence[Matmul] | None = None, batch_size: int = 1000) -> np.ndarray:
        """Predicted class of each sample, computed in batches of ``batch_size``."""
        return (
            np.concatenate(
                [
                    self.forward(x[start : start + batch_size], matmuls).argmax(axis=1)
                    for start in range(0, len(x), batch_size)
                ]
            )
            if len(x)
            else np.zeros(0, dtype=np.int64)
        )

    def summary(self) -> list[tuple[str, tuple[int, ...], tuple[int, ...] | None, int]]:
        """(kind, output shape, kernel shape or None, parameter count) for each layer."""
        rows: list[tuple[str, tuple[int, ...], tuple[int, ...] | None, int]] = []
        for layer, shape in zip(self.layers, self.shapes[1:]):
            if isinstance(layer, WeightLayer):
                n = layer.kernel.size + (0 if layer.bias is None else layer.bias.size)
                rows.append((layer.kind, shape, tuple(layer.kernel.shape), n))
            else:
                rows.append((layer.kind, shape, None, 0))
        return rows
