"""The chip: a whole network programmed onto one chip instance (one seed), read batch by batch.

:func:`program` turns a :class:`~xbar.nets.Network` and a
:class:`~xbar.config.Hardware` into a :class:`ProgrammedNetwork`: it
calibrates the DAC ranges on ideal activations, programs every weight layer's
conductances (an :class:`~.matrix.AnalogMatrix` each), then, for the
``calibrated`` ADC policy, sets the ADC ranges from a noise-free read of the
programmed chip. The chip counts what it reads; :meth:`ProgrammedNetwork.operation_counts`
is what the energy model consumes.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from .._threads import block_bounds, map_blocks
from ..config import Hardware
from ..nets.network import Network
from .context import LayerReads, ReadContext
from .counts import ChipCounts, LayerCounts
from .matrix import AnalogMatrix
from .periphery import InputRecorder

_MIN_IMAGES_PER_THREAD = 16


class ProgrammedNetwork:
    """A network programmed onto one chip instance: call :meth:`forward` like the network's.

    ``reads`` holds, per weight layer, what the chip read since programming
    (or :meth:`reset_counts`), and ``images_read`` the images it read.
    """

    def __init__(self, network: Network, hw: Hardware, seed: int, matrices: list[AnalogMatrix]):
        self.network, self.hw, self.seed, self.matrices = network, hw, seed, matrices
        self.reset_counts()

    def reset_counts(self) -> None:
        """Forget what was read so far (programming does this after calibration)."""
        self.reads = [LayerReads() for _ in self.matrices]
        self.images_read = 0

    def forward(self, x: np.ndarray, image_offset: int = 0) -> np.ndarray:
        """Logits of images ``image_offset ..`` (their global indices key the read noise).

        With several Numba threads and a chip that is not one linear product
        per layer, the batch is split into one block of images per thread, and
        each thread runs the whole network on its block with one-threaded BLAS
        and kernels. Handing every GEMM and kernel of a layer to all cores in
        turn left them waiting on each other (BLAS workers spin between calls):
        this ran the 8-bit, read-noise MLP 1.5x faster on 2 cores
        (docs/performance.md). Outputs do not depend on the split; the reads of
        the blocks are counted in block order.
        """
        n = x.shape[0]
        bounds = block_bounds(n, numba.get_num_threads(), _MIN_IMAGES_PER_THREAD)
        if len(bounds) == 1 or all(m.linear is not None for m in self.matrices):
            context = ReadContext(image_offset, n)
            logits = self.read(x, context)
            self.count(context, n)
            return logits
        blocks = map_blocks(lambda start, stop: self._forward_block(x, image_offset, start, stop), bounds, len(bounds))
        # Counted here, in block order, not by the threads: the totals stay exact and reproducible.
        for (start, stop), (_, context) in zip(bounds, blocks):
            self.count(context, stop - start)
        return np.concatenate([logits for logits, _ in blocks])

    def read(self, x: np.ndarray, context: ReadContext) -> np.ndarray:
        """Logits of the batch ``x`` in this thread, its reads collected in ``context`` (not yet counted)."""
        products = [functools.partial(matrix.read, context=context) for matrix in self.matrices]
        return self.network.forward(x, products)

    def count(self, context: ReadContext, n_images: int) -> None:
        """Add the reads collected in ``context`` over ``n_images`` images to the chip's counts."""
        for index, totals in enumerate(self.reads):
            totals.add(context.layer(index))
        self.images_read += n_images

    def _forward_block(self, x: np.ndarray, image_offset: int, start: int, stop: int) -> tuple[np.ndarray, ReadContext]:
        """One thread's share of :meth:`forward`: images ``start .. stop - 1`` of ``x``."""
        context = ReadContext(image_offset + start, stop - start)
        return self.read(x[start:stop], context), context

    def operation_counts(self) -> ChipCounts:
        """Per-inference operations of every weight layer over the images read so far (the energy model's input)."""
        if self.images_read < 1:
            raise ValueError("operation counts need at least one image read by the chip")
        network, n = self.network, self.images_read
        out_shapes = {id(layer): shape for layer, shape in zip(network.layers, network.shapes[1:])}
        bits = self.hw.adc.bits or self.hw.energy.nominal_bits
        digital = network.digital_neurons()  # a graph's ReLU layers, charged to the weight layer before them
        layers = []
        for index, (layer, matrix, reads) in enumerate(zip(network.weight_layers, self.matrices, self.reads)):
            vectors = reads.vectors / n
            per_vector = matrix.counts_per_vector()
            layers.append(
                LayerCounts(
                    name=f"{index:02d}_{layer.kind}",
                    vectors=vectors,
                    array_reads=vectors * per_vector["array_reads"],
                    rows_driven=vectors * per_vector["rows_driven"],
                    conversions=vectors * per_vector["conversions"],
                    adc_bits=bits,
                    cell_x2g_us=reads.cell_x2g_us / n,
                    wire_x2g_us=reads.wire_x2g_us / n,
                    digital_adds=vectors * per_vector["digital_adds"],
                    neuron_activations=layer.neuron_activations(out_shapes[id(layer)]) + digital[index],
                )
            )
        return ChipCounts(n_images=n, layers=tuple(layers))


def program(network: Network, hw: Hardware, seed: int, calibration: np.ndarray) -> ProgrammedNetwork:
    """Program ``network`` onto chip instance ``seed`` of ``hw``, calibrating on ``calibration`` images.

    Parameters
    ----------
    network : Network
    hw : Hardware
    seed : int
        Chip instance seed: keys the static errors and the read noise.
    calibration : ndarray (n, ...) matching the network's input shape
        Images whose activations set the DAC ranges (ideal pass) and, for the
        ``calibrated`` ADC policy, the ADC ranges (noise-free pass on the programmed chip).
    """
    recorders = [InputRecorder(m) for m in network.ideal_matmuls()]
    network.forward(calibration, recorders)
    matrices = [
        AnalogMatrix(
            layer.kernel2d, layer.bias, hw, recorder.input_range(hw.dac), seed, index, recorder.reference_inputs()
        )
        for index, (layer, recorder) in enumerate(zip(network.weight_layers, recorders))
    ]
    del recorders
    chip = ProgrammedNetwork(network, hw, seed, matrices)
    if any(matrix.calibrates_adc for matrix in matrices):
        context = ReadContext(0, calibration.shape[0], calibrating=True)
        chip.read(calibration, context)
        for matrix in matrices:
            matrix.set_adc_ranges(context.recorded.get(matrix.layer))
    return chip
