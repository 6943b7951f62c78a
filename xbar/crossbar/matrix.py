"""The analog matrix: one weight matrix programmed onto crossbar tiles, standing in for ``x @ W + b``.

    x -> DAC codes (bit-serial slices) -> I = V_read x G per row tile (the array solver)
      -> read noise (per device or per column) -> ADC per column
      -> shift-add over tiles and slices -> y = I / (V_read (g_max - g_min)) w_scale x_scale (+ b)

It composes the parts: :mod:`.mapping` (targets and scales), :mod:`.devices`
(static errors), :mod:`.array` (the tile reads), :mod:`.periphery` (DAC and
ADC). Units: conductances in uS, V_read in V, currents in uA.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..config import ADCRange, DriftCompensation, Hardware, MappingScheme
from ..kernels import convert
from ..kernels.rng import derive_key
from . import compensation, linear, mapping, periphery
from .array import DenseArray, Partial, array_solver
from .context import ReadContext
from .counts import per_vector
from .devices import PURPOSE_READ, program_devices
from .parasitics import NodalArray
from .periphery import InputRange

_CURRENTS_BUDGET = 1 << 22
"""Float32 currents held at once per read (16 MB): the batch is split into row chunks beyond it."""


def tiles(n: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of each tile of at most ``size`` along an axis of ``n``."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]


class AnalogMatrix:
    """One weight matrix programmed on crossbar tiles; read it like the ideal product.

    Parameters
    ----------
    kernel : ndarray (n_in, n_out)
        Weights W of y = x W + b.
    bias : ndarray (n_out,) or None
    hw : Hardware
    input_range : InputRange
        DAC range (from calibration); also sets the bias row's value.
    seed : int
        Chip instance seed.
    layer : int
        Index of the weight layer (keys its random streams and its reads in a :class:`ReadContext`).
    reference_inputs : ndarray (n, n_in), optional
        Known inputs of the drift compensation's calibration read (:mod:`.compensation`); default: one
        vector of full-scale inputs (x_max on every row).
    """

    def __init__(
        self,
        kernel: np.ndarray,
        bias: np.ndarray | None,
        hw: Hardware,
        input_range: InputRange,
        seed: int,
        layer: int,
        reference_inputs: np.ndarray | None = None,
    ):
        self.hw, self.seed, self.layer = hw, int(seed), int(layer)
        self.n_in, self.n_out = kernel.shape
        self.input_range = input_range
        self.x_scale, self.signed_inputs = float(input_range.x_max), bool(input_range.signed)
        device, scheme = hw.device, hw.mapping.scheme
        weights, self.bias_row, self.digital_bias = mapping.layer_rows(kernel, bias, hw.mapping, self.x_scale)
        self.n_rows = weights.shape[0]
        self.w_scale = mapping.weight_scale(weights, hw.mapping.clip_percentile)
        self.differential = scheme == MappingScheme.DIFFERENTIAL
        self.row_tiles, self.col_tiles = tiles(self.n_rows, hw.tile.rows), tiles(self.n_out, hw.tile.cols)
        self.v_read, self.g_range = float(device.v_read_v), float(device.g_range_us)
        self.slice_factors = mapping.slice_factors(device.levels, hw.mapping.weight_slices)
        self.n_slices = len(self.slice_factors)
        weights /= self.w_scale  # in place: the float64 copies dominate the memory of programming
        targets = mapping.target_conductances(weights, device, hw.mapping)
        del weights
        compensate = hw.adc.drift_compensation != DriftCompensation.NONE and device.drifts
        # The targets are programmed in place: the compensation's reference at t0 needs its own copy.
        targets_t0 = [[g.copy() for g in row] for row in targets] if compensate else None
        self.conductances = [
            [program_devices(g, device, self.seed, self.layer, s, side) for side, g in enumerate(row)]
            for s, row in enumerate(targets)
        ]
        """Per weight slice, per side (G+, G- or the offset device), float32 (n_rows, n_out), uS."""
        # Per weight slice: sum over columns and over the devices of a weight of G_ij (uS), per row.
        self.row_conductance = [
            sum(g.sum(axis=1, dtype=np.float64) for g in row).astype(np.float32) for row in self.conductances
        ]
        self.array = self._array(self.conductances, device)
        self.read_noise = self.array.read_noise
        self.output_scale: np.ndarray | None = None
        """Drift compensation's digital scale of each output column (float32, (n_out,)), or None."""
        if targets_t0 is not None:
            self.output_scale = self._drift_scales(targets_t0, reference_inputs)
        self.code_range = periphery.adc_code_range(hw.adc.bits, self.signed_adc)
        self.set_adc_ranges(None)
        self.linear = self._fold_linear()
        """(W_eff, b_eff) float32 when the chip is one linear product, else None (see :meth:`_fold_linear`)."""

    def _array(self, conductances: list[list[np.ndarray]], device) -> DenseArray:
        """The tile solver over ``conductances``: circuits with resistive wires when ``parasitics`` has any
        resistance, else ``tile.solver`` (ideal wires)."""
        hw = self.hw
        args = (conductances, device, hw.mapping.scheme, hw.mapping.subtract, self.row_tiles, self.seed, self.layer)
        if hw.parasitics.active:
            return NodalArray(*args, parasitics=hw.parasitics, col_tiles=self.col_tiles)
        return array_solver(hw.tile.solver)(*args)

    @property
    def signed_adc(self) -> bool:
        """Whether the ADC converts signed currents (analog pair subtraction, or signed inputs)."""
        return self.array.analog_subtract or self.signed_inputs

    def _fold_linear(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """With ideal converters and no read noise the chip is linear in x: its (W_eff, b_eff), else None."""
        if self.hw.dac.bits or self.hw.adc.bits or self.read_noise or not self.array.linear:
            return None
        return self._fold(self.array, self.digital_bias, self.output_scale)

    def _fold(self, array, digital_bias, output_scale) -> tuple[np.ndarray, np.ndarray | None]:
        """(W_eff, b_eff) of the conductances of ``array`` (:func:`.linear.fold`)."""
        return linear.fold(
            array,
            self.hw.device,
            self.slice_factors,
            self.w_scale,
            self.x_scale,
            self.differential,
            self.bias_row,
            digital_bias,
            output_scale,
        )

    def _drift_scales(self, targets_t0: list, reference_inputs: np.ndarray | None) -> np.ndarray | None:
        """The drift compensation's output scales: the calibration read at t0 (the same chip read at t = t0:
        same streams, so the same programming errors, and (t / t0)^-nu = 1) against the read at read time."""
        hw = self.hw
        undrifted = dataclasses.replace(hw.device, read_time_s=hw.device.drift_t0_s)
        at_t0 = [
            [program_devices(g, undrifted, self.seed, self.layer, s, side) for side, g in enumerate(row)]
            for s, row in enumerate(targets_t0)
        ]
        array_t0 = self._array(at_t0, undrifted)
        if reference_inputs is None:
            reference_inputs = np.full((1, self.n_in), self.x_scale, np.float32)
        return compensation.output_scales(
            hw.adc.drift_compensation,
            reference_inputs,
            self._fold(array_t0, None, None),
            self._fold(self.array, None, None),
        )

    def set_adc_ranges(self, recorded: dict[tuple[int, int, int], list[np.ndarray]] | None) -> None:
        """ADC steps of every (slice, row tile, ADC input) under ``adc.range``, from calibration reads if given."""
        adc = self.hw.adc
        self._plan_cache: tuple | None = None
        self.adc_steps: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        for s in range(self.n_slices):
            for t, rows in enumerate(self.row_tiles):
                for o in range(self.array.inputs_per_tile):
                    reads = None if recorded is None else recorded.get((s, t, o), [])
                    i_max = periphery.adc_full_scale(
                        adc,
                        rows,
                        self.col_tiles,
                        self.n_out,
                        self.signed_inputs,
                        functools.partial(self.array.cached_operand, s, o),
                        reads,
                    )
                    self.adc_steps[(s, t, o)] = periphery.adc_steps(i_max, adc.bits, self.signed_adc)

    @property
    def calibrates_adc(self) -> bool:
        """Whether the ADC ranges come from a calibration read (the ``calibrated`` policy with real converters)."""
        return self.hw.adc.range == ADCRange.CALIBRATED and self.hw.adc.bits > 0

    def __call__(self, x: np.ndarray, context: ReadContext | None = None) -> np.ndarray:
        """:meth:`read`; without a context, one read of a batch of images numbered from 0."""
        return self.read(x, ReadContext(0, x.shape[0]) if context is None else context)

    def read(self, x: np.ndarray, context: ReadContext) -> np.ndarray:
        """y = x W + b through the crossbar: (batch, n_in) float32 -> (batch, n_out) float32.

        The reads are counted in ``context`` (or, when it calibrates, their noise-free currents recorded).
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        call = context.next_call(self.layer)
        counts = None if context.calibrating else context.layer(self.layer)
        if self.linear is not None:
            return linear.read(x, self.linear, self.x_scale, self.row_conductance, self.bias_row, counts, self.array)
        if self.bias_row:
            x = np.hstack([x, np.full((n, 1), self.x_scale, np.float32)])
        inputs, input_factors = periphery.dac_inputs(x, self.hw.dac, self.input_range)
        recorded = context.recorded.setdefault(self.layer, {}) if context.calibrating else None
        noise = self.read_noise and recorded is None
        row_ids = context.row_ids(call, n) if noise else np.zeros(n, np.uint64)
        out = np.zeros((n, self.n_out), np.float32)
        if counts is not None:
            counts.vectors += n
            if self.array.forms is not None:  # resistive wires: the tiles' dissipation forms
                devices, wires = self.array.dissipation(inputs)  # type: ignore[attr-defined]
                counts.cell_x2g_us += devices
                counts.wire_x2g_us += wires
            else:
                # Per row, sum over the batch of x^2 (no batch-sized temporary), then weight by the row's G.
                row_x2 = np.zeros(self.n_rows)
                for x_k in inputs:
                    convert.column_square_sums(x_k, row_x2)
                counts.cell_x2g_us += sum(float(row_x2 @ rc) for rc in self.row_conductance)
        partials, keys, inv_step, step_scale = self._plan(input_factors)
        # Rows of the batch at a time, so that the currents of all partials stay a few MB.
        chunk = max(1, _CURRENTS_BUDGET // (len(partials) * self.n_out))
        for c0 in range(0, n, chunk):
            c1 = min(n, c0 + chunk)
            currents, std = self.array.read(partials, [x_k[c0:c1] for x_k in inputs], row_ids[c0:c1], noise)
            if recorded is not None:
                for p, (s, t, _, o) in enumerate(partials):
                    recorded.setdefault((s, t, o), []).append(currents[p])
            convert.read_out(
                currents,
                std,
                keys,
                row_ids[c0:c1],
                inv_step,
                step_scale,
                *self.code_range,
                0 if recorded is not None else self.hw.adc.bits,
                out[c0:c1],
            )
        if not self.differential:
            input_sum = sum(f * x_k.sum(axis=1, dtype=np.float64) for f, x_k in zip(input_factors, inputs))
            out -= mapping.offset_reference(input_sum, self.hw.device, self.slice_factors, self.w_scale, self.x_scale)[
                :, None
            ]
        if self.output_scale is not None:
            out *= self.output_scale
        if self.digital_bias is not None:
            out += self.digital_bias
        return out

    def counts_per_vector(self) -> dict[str, int]:
        """Operations for one input vector (:func:`.counts.per_vector`)."""
        return per_vector(
            self.n_rows,
            self.n_out,
            len(self.row_tiles),
            len(self.col_tiles),
            self.n_slices,
            self.hw.dac.input_slices,
            self.array.inputs_per_tile,
            self.digital_bias is not None,
            not self.differential,
            self.output_scale is not None,
        )

    @property
    def devices_per_vector(self) -> int:
        """Devices read for one input vector: rows x columns x devices per weight x slices x input slices."""
        per_weight = 2 if self.differential else 1
        return self.n_rows * self.n_out * per_weight * self.n_slices * self.hw.dac.input_slices

    def _plan(self, input_factors: list[float]) -> tuple[list[Partial], np.ndarray, np.ndarray, np.ndarray]:
        """The partial reads of one call, in accumulation order, and their per-column constants.

        Returns (partials, keys, inv_step, step_scale): partials are (slice,
        row tile, input slice, ADC input) tuples; keys (P,) the read-noise
        stream of each; inv_step and step_scale (P, n_out) as
        :func:`~xbar.kernels.convert.read_out` takes them. Cached until the
        ADC ranges change.
        """
        if self._plan_cache is None:
            to_weights = mapping.current_to_weight(self.w_scale, self.x_scale, self.hw.device, self.hw.mapping.scheme)
            partials, keys, inv_steps, step_scales = [], [], [], []
            for s in range(self.n_slices):
                for t in range(len(self.row_tiles)):
                    for k, input_factor in enumerate(input_factors):
                        scale = self.slice_factors[s] * input_factor * to_weights
                        for o, sign in enumerate(self.array.signs()):
                            step, inv_step = self.adc_steps[(s, t, o)]
                            partials.append((s, t, k, o))
                            keys.append(derive_key(PURPOSE_READ, self.seed, self.layer, s, t, k, o))
                            inv_steps.append(inv_step)
                            step_scales.append((step * np.float32(sign * scale)).astype(np.float32))
            self._plan_cache = (partials, np.array(keys, np.uint64), np.stack(inv_steps), np.stack(step_scales))
        return self._plan_cache
