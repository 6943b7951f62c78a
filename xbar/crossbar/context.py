"""The read context: which images a forward pass reads, and where what it read is counted.

A :class:`ReadContext` is handed to every analog matrix read as an argument.
It gives the global index of each image, which keys the read-noise streams
(so outputs do not depend on how a batch is split), the index of each read of
a layer within the pass (a Mosaic core is read once per step), and collects
per layer the input vectors applied and the cells' sum of x^2 G for the energy
model. A calibrating context also records noise-free currents for the
``calibrated`` ADC range and counts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

READ_ID_BITS = 24
"""row id = image index << 24 | read index: up to 16 M array reads per image and layer."""


@dataclass
class LayerReads:
    """What one weight layer read: input vectors, and sum over reads of the devices' dissipation x^T Q_dev x (ideal
    wires: sum over cells of x_i^2 G_ij) and of the wires' x^T Q_wire x (uS, x in units of V_read)."""

    vectors: int = 0
    cell_x2g_us: float = 0.0
    wire_x2g_us: float = 0.0
    calls: int = 0
    """Reads of the layer so far in this pass."""

    def add(self, other: LayerReads) -> None:
        """Add ``other``'s vectors and cell sum to these (calls are per pass and not added)."""
        self.vectors += other.vectors
        self.cell_x2g_us += other.cell_x2g_us
        self.wire_x2g_us += other.wire_x2g_us


@dataclass
class ReadContext:
    """One forward pass over images ``image_offset .. image_offset + batch - 1``.

    Parameters
    ----------
    image_offset : int
        Global index of the first image (keys its read noise).
    batch : int
        Images in the pass.
    calibrating : bool
        Record noise-free currents (``recorded``) and count nothing.
    """

    image_offset: int = 0
    batch: int = 1
    calibrating: bool = False
    reads: dict[int, LayerReads] = field(default_factory=dict)
    """Per weight layer index, what it read in this pass."""
    recorded: dict[int, dict[tuple[int, int, int], list[np.ndarray]]] = field(default_factory=dict)
    """Per weight layer, per (weight slice, row tile, ADC input), noise-free currents (uA) while calibrating."""

    def __post_init__(self):
        if self.image_offset < 0:
            raise ValueError(f"image_offset must be >= 0, got {self.image_offset}")
        self.image_offset, self.batch = int(self.image_offset), max(int(self.batch), 1)

    def layer(self, index: int) -> LayerReads:
        """The reads of weight layer ``index`` in this pass."""
        return self.reads.setdefault(index, LayerReads())

    def next_call(self, index: int) -> int:
        """Index of this read of layer ``index`` within the pass (a Mosaic core is read once per step)."""
        reads = self.layer(index)
        reads.calls += 1
        return reads.calls - 1

    def row_ids(self, call: int, n_rows: int) -> np.ndarray:
        """Noise keys (uint64) of the ``n_rows`` input vectors of read ``call`` of a layer.

        The rows of a read are the batch's images in order, each contributing
        n_rows / batch vectors (the output pixels of a convolution).
        """
        per_image = max(n_rows // self.batch, 1)
        row = np.arange(n_rows, dtype=np.uint64)
        image = np.uint64(self.image_offset) + row // np.uint64(per_image)
        read = np.uint64(call * per_image) + row % np.uint64(per_image)
        return (image << np.uint64(READ_ID_BITS)) | read
