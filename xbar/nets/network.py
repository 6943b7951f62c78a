"""A feed-forward stack of layers with its metadata and provenance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import XbarError
from .layers import Layer, Matmul, WeightLayer


@dataclass
class Network:
    """A network: layers in order, the sample shape they take, and where the weights came from.

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
    provenance : dict
        Training provenance (seed, epochs, sigma_neu, timesteps, test accuracy, ...).
    """

    arch: str
    dataset: str
    input_shape: tuple[int, ...]
    n_classes: int
    layers: list[Layer]
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        self.input_shape = tuple(int(d) for d in self.input_shape)
        self.shapes = self._propagate_shapes()
        if self.shapes[-1] != (self.n_classes,):
            raise XbarError(f"network output shape {self.shapes[-1]} is not ({self.n_classes},)")

    def _propagate_shapes(self) -> list[tuple[int, ...]]:
        shapes = [self.input_shape]
        for index, layer in enumerate(self.layers):
            try:
                shapes.append(tuple(layer.output_shape(shapes[-1])))
            except XbarError as exc:
                raise XbarError(f"layer {index}: {exc}") from None
        return shapes

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
        """
        matmuls = self.ideal_matmuls() if matmuls is None else list(matmuls)
        if len(matmuls) != len(self.weight_layers):
            raise XbarError(f"{len(matmuls)} matmuls given for {len(self.weight_layers)} weight layers")
        x = np.ascontiguousarray(x, dtype=np.float32).reshape((x.shape[0],) + self.input_shape)
        products = iter(matmuls)
        for layer in self.layers:
            x = layer.forward(x, next(products) if layer.has_weights else None)
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
        widest = max(layer.operand_width(shape) for layer, shape in zip(self.layers, self.shapes))
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
