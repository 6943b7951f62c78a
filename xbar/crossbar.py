"""Analog matrices: one weight matrix programmed onto crossbar tiles, and whole programmed networks.

:func:`program` turns a :class:`~xbar.nets.Network` and a
:class:`~xbar.config.Hardware` into a :class:`ProgrammedNetwork` for one chip
instance (one seed): it calibrates the DAC ranges on ideal activations,
programs every weight layer's conductances (mapping, levels, weight slices,
programming error, clipping, stuck-at faults, drift), then calibrates the ADC
ranges on the programmed chip. :class:`AnalogMatrix` then stands in for the
ideal ``x @ W + b`` of its layer (DESIGN.md section 2):

    x -> DAC codes (bit-serial slices) -> I = V_read x G per row tile
      -> read noise (per device or per column) -> ADC per column
      -> shift-add over tiles and slices -> y = I / (V_read (g_max - g_min)) w_scale x_scale (+ b)

Units: conductances in uS, V_read in V, currents in uA.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from ._threads import one_threaded_blas
from .config import (ADCRange, BiasMode, DACRange, ErrorModel, Hardware, MappingScheme,
                     ReadNoiseMode, Subtract)
from .kernels import convert, devices
from .kernels.rng import derive_key
from .nets.network import Network

# Purpose tags of the random streams (DESIGN.md section 2: keys are (seed, purpose, layer, ...)).
PURPOSE_PROGRAM, PURPOSE_STUCK, PURPOSE_DRIFT, PURPOSE_READ = 11, 12, 13, 14
_ERROR_MODEL_CODES = {model: code for code, model in enumerate(ErrorModel)}
_CURRENTS_BUDGET = 1 << 22
"""Float32 currents held at once per call (16 MB): the batch is split into row chunks beyond it."""
_READ_ID_BITS = 24
"""row id = image index << 24 | read index: up to 16 M array reads per image and layer."""


def _tiles(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


@dataclass(frozen=True)
class InputRange:
    """DAC range of one layer: full-scale input (input units) and whether inputs can be negative."""

    x_max: float
    signed: bool


class AnalogMatrix:
    """One weight matrix programmed on crossbar tiles; call it like the ideal product.

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
        Index of the weight layer (keys its random streams).
    """

    def __init__(self, kernel, bias, hw: Hardware, input_range: InputRange, seed: int, layer: int):
        self.hw, self.seed, self.layer = hw, int(seed), int(layer)
        self.n_in, self.n_out = kernel.shape
        self.x_scale = float(input_range.x_max)
        self.signed_inputs = bool(input_range.signed)
        mapping, device = hw.mapping, hw.device
        self.bias_row = mapping.bias == BiasMode.ROW and bias is not None
        self.digital_bias = None if (bias is None or self.bias_row) else np.asarray(bias, np.float32)
        weights = np.asarray(kernel, np.float64)
        if self.bias_row:
            # Driven at full input x_max, so its weight is b / x_max.
            weights = np.vstack([weights, np.asarray(bias, np.float64)[None, :] / self.x_scale])
        self.n_rows = weights.shape[0]
        w_abs = np.abs(weights)
        w_scale = float(np.percentile(w_abs, mapping.clip_percentile)) if mapping.clip_percentile < 100 \
            else float(w_abs.max())
        self.w_scale = w_scale if w_scale > 0 else 1.0
        self.differential = mapping.scheme == MappingScheme.DIFFERENTIAL
        self.analog_subtract = self.differential and mapping.subtract == Subtract.ANALOG
        self.row_tiles = _tiles(self.n_rows, hw.tile.rows)
        self._tile_starts = np.array([r0 for r0, _ in self.row_tiles] + [self.n_rows], np.int64)
        self.col_tiles = _tiles(self.n_out, hw.tile.cols)
        self.v_read = float(device.v_read_v)
        self.g_range = float(device.g_range_us)
        self._program(weights / self.w_scale)
        self.dac_levels = float(2 ** hw.dac.bits - 1)
        self._reads = threading.local()
        """Per thread: the forward pass being read (image offset, batch, calls) and deferred counts."""
        self.reset_counters()
        self._recording: dict | None = None
        self._set_adc_ranges(None)
        self.linear = self._fold_linear()

    def _fold_linear(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """With ideal converters and no read noise the chip is linear in x: its (W_eff, b_eff), else None.

        Every stage of :meth:`__call__` is then linear (the DAC scales by
        1 / x_max, the ADC by its step, tiles and slices are summed, the offset
        reference is a multiple of sum_i x_i), so one product with the
        programmed chip's effective weights gives the same outputs to float32
        rounding at the cost of the ideal layer. The programmed conductances,
        errors included, are all it is made of.
        """
        if self.hw.dac.bits or self.hw.adc.bits or self.read_noise:
            return None
        scale = self.w_scale / (self.v_read * self.g_range) * (1.0 if self.differential else 2.0)
        weights = np.zeros((self.n_rows, self.n_out), np.float64)
        for factor, operands in zip(self.slice_factors, self.operands):
            for sign, g, _, _ in operands:
                weights += (sign * factor * scale) * g.astype(np.float64)
        if not self.differential:
            weights -= (self.hw.device.g_min_us / self.g_range * sum(self.slice_factors) + 0.5) * 2.0 * self.w_scale
        bias = None if self.digital_bias is None else self.digital_bias.astype(np.float64)
        if self.bias_row:
            # The bias row is driven at x_max.
            bias, weights = weights[-1] * self.x_scale, weights[:-1]
        return (np.ascontiguousarray(weights, np.float32),
                None if bias is None else bias.astype(np.float32))

    # ----------------------------------------------------------------- programming
    def _slice_digits(self, magnitude: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        """Per weight slice, the normalized device targets in [0, 1] and the recombination factor c_s."""
        levels, k = self.hw.device.levels, self.hw.mapping.weight_slices
        if levels == 0:
            return [magnitude], [1.0]
        full = levels ** k - 1
        code = np.rint(np.clip(magnitude, 0.0, 1.0) * full).astype(np.int64)
        digits, factors = [], []
        for s in range(k):
            digits.append(((code // levels ** s) % levels) / (levels - 1))
            factors.append((levels - 1) * levels ** s / full)
        return digits, factors

    def _program(self, w_norm: np.ndarray) -> None:
        """Targets from normalized weights, then the static device errors of this chip instance."""
        device = self.hw.device
        if self.differential:
            sides = [np.clip(w_norm, 0.0, 1.0), np.clip(-w_norm, 0.0, 1.0)]
        else:
            sides = [(np.clip(w_norm, -1.0, 1.0) + 1.0) / 2.0]
        per_side = [self._slice_digits(side) for side in sides]
        self.slice_factors = per_side[0][1]
        self.n_slices = len(self.slice_factors)
        # conductances[s][side]: float32 (n_rows, n_out), uS
        self.conductances = []
        for s in range(self.n_slices):
            row = []
            for side in range(len(sides)):
                g = (device.g_min_us + self.g_range * per_side[side][0][s]).astype(np.float32)
                row.append(self._apply_static_errors(g, s, side))
            self.conductances.append(row)
        # Per weight slice: sum over columns and over the devices of a weight of G_ij (uS), per row.
        self.row_conductance = [sum(g.sum(axis=1, dtype=np.float64) for g in row).astype(np.float32)
                                for row in self.conductances]
        self._prepare_read_noise()

    def _apply_static_errors(self, g: np.ndarray, s: int, side: int) -> np.ndarray:
        device = self.hw.device
        flat = np.ascontiguousarray(g).reshape(-1)
        ids = (self.seed, self.layer, s, side)
        if device.prog_sigma > 0:
            devices.add_programming_error(flat, derive_key(PURPOSE_PROGRAM, *ids),
                                          _ERROR_MODEL_CODES[device.prog_model], device.prog_sigma,
                                          device.g_min_us, device.g_max_us, device.v_read_v)
        if device.clip:
            np.clip(flat, device.g_min_us, device.g_max_us, out=flat)
        if device.stuck_on > 0 or device.stuck_off > 0:
            devices.apply_stuck(flat, derive_key(PURPOSE_STUCK, *ids), device.stuck_on, device.stuck_off,
                                np.float32(device.g_min_us), np.float32(device.g_max_us))
        if device.drift_nu_mean > 0 or device.drift_nu_std > 0:
            devices.apply_drift(flat, derive_key(PURPOSE_DRIFT, *ids), device.drift_nu_mean,
                                device.drift_nu_std, math.log(device.read_time_s / device.drift_t0_s))
        return flat.reshape(g.shape)

    def reset_counters(self) -> None:
        """Zero the operation counters (done after calibration, so they count inference only)."""
        self.vectors_read = 0
        """Input vectors applied so far (each one array read per tile and slice)."""
        self.cell_x2g_sum = 0.0
        """Sum over reads and cells of x_i^2 G_ij (x normalized to the read voltage, G in uS)."""

    def _prepare_read_noise(self) -> None:
        """Per slice and side: sigma of every device (uS), and the operands of the fast paths."""
        device = self.hw.device
        self.read_noise = device.read_sigma > 0
        self.device_mode = device.read_noise_mode == ReadNoiseMode.DEVICE
        self.read_sigmas = []
        for row in self.conductances:
            sig = []
            for g in row:
                if not self.read_noise:
                    sig.append(None)
                    continue
                out = np.empty(g.size, np.float32)
                devices.sigma_map(g.reshape(-1), _ERROR_MODEL_CODES[device.read_model], device.read_sigma,
                                  device.g_min_us, device.g_max_us, device.v_read_v, out)
                sig.append(out.reshape(g.shape))
            self.read_sigmas.append(sig)
        # Operands per slice: (sign, V_read x conductance (uA at full input), variance, devices) of each
        # ADC input; V_read is folded in so that a product gives currents with no extra pass. The variance
        # is per device (uS^2), or one number when every device has the same sigma (the additive
        # model): then a column's variance is that number times sum_i x_i^2, with no extra product.
        uniform = device.read_model == ErrorModel.ADDITIVE
        sigma_add = device.read_sigma * self.g_range

        def variance(*sigmas):
            if not self.read_noise:
                return None
            return len(sigmas) * sigma_add ** 2 if uniform else sum(np.square(s) for s in sigmas)

        self.operands = []
        v_read = np.float32(self.v_read)
        for s, row in enumerate(self.conductances):
            sig = self.read_sigmas[s]
            if self.analog_subtract:
                self.operands.append([(1.0, (row[0] - row[1]) * v_read, variance(sig[0], sig[1]),
                                       (row[0], sig[0], row[1], sig[1]))])
            else:
                signs = (1.0, -1.0) if self.differential else (1.0,)
                self.operands.append([(sign, row[side] * v_read, variance(sig[side]), (row[side], sig[side]))
                                      for side, sign in enumerate(signs)])

    # ----------------------------------------------------------------- ranges
    @property
    def signed_adc(self) -> bool:
        """Whether the ADC converts signed currents (analog pair subtraction, or signed inputs)."""
        return self.analog_subtract or self.signed_inputs

    def _worst_case_current(self, g: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> float:
        """Largest |I| (uA) a tile can produce for normalized inputs |x| <= 1 (``g`` holds V_read G)."""
        block = g[rows[0]:rows[1], cols[0]:cols[1]].astype(np.float64)
        if self.signed_inputs:
            worst = np.abs(block).sum(axis=0)
        else:
            worst = np.maximum(np.clip(block, 0, None).sum(axis=0), np.clip(-block, 0, None).sum(axis=0))
        return float(worst.max())

    def _set_adc_ranges(self, recorded: dict | None) -> None:
        """I_max of every (slice, row tile, operand), spread over its columns: arrays (n_out,), uA."""
        adc = self.hw.adc
        self._plan_cache = None
        self.adc_steps = {}
        for s, operands in enumerate(self.operands):
            for t, rows in enumerate(self.row_tiles):
                for o, (_, g, _, _) in enumerate(operands):
                    i_max = np.empty(self.n_out, np.float64)
                    for cols in self.col_tiles:
                        if adc.range == ADCRange.FIXED:
                            value = adc.i_max_ua
                        elif adc.range == ADCRange.CALIBRATED and recorded is not None:
                            samples = np.concatenate([np.abs(r[:, cols[0]:cols[1]]).ravel()
                                                      for r in recorded[(s, t, o)]])
                            value = float(np.percentile(samples, adc.percentile)) if samples.size else 0.0
                        else:
                            value = self._worst_case_current(g, rows, cols)
                        i_max[cols[0]:cols[1]] = value if value > 0 else 1e-12
                    if adc.bits == 0:
                        step = np.ones(self.n_out)
                    elif self.signed_adc:
                        step = i_max / 2 ** (adc.bits - 1)
                    else:
                        step = i_max / (2 ** adc.bits - 1)
                    self.adc_steps[(s, t, o)] = (step.astype(np.float32), (1.0 / step).astype(np.float32))
        bits = adc.bits
        if self.signed_adc:
            self.code_range = (-float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1)) if bits else (0.0, 0.0)
        else:
            self.code_range = (0.0, float(2 ** bits - 1)) if bits else (0.0, 0.0)

    def start_recording(self) -> None:
        """Record noise-free currents of the following calls (for the ``calibrated`` ADC policy)."""
        self._recording = {}

    def finish_recording(self) -> None:
        """Set the ADC ranges from what was recorded, and stop recording."""
        recorded, self._recording = self._recording, None
        self._set_adc_ranges(recorded)

    # ----------------------------------------------------------------- reading
    def begin(self, image_offset: int, batch: int) -> None:
        """Start a forward pass (in this thread) over images ``image_offset .. image_offset + batch - 1``."""
        self._reads.image_offset, self._reads.batch, self._reads.calls = int(image_offset), max(int(batch), 1), 0

    def defer_counts(self) -> None:
        """Until :meth:`take_deferred_counts`, this thread's reads count apart from the matrix's totals."""
        self._reads.deferred = [0, 0.0]

    def take_deferred_counts(self) -> tuple[int, float]:
        """(vectors read, sum of x^2 G) deferred in this thread since :meth:`defer_counts`; stop deferring."""
        vectors, x2g = self._reads.deferred
        self._reads.deferred = None
        return vectors, x2g

    def add_counts(self, vectors: int, x2g: float) -> None:
        """Add reads to the totals behind the energy model (see :meth:`reset_counters`)."""
        deferred = getattr(self._reads, "deferred", None)
        if deferred is None:
            self.vectors_read += vectors
            self.cell_x2g_sum += x2g
        else:
            deferred[0] += vectors
            deferred[1] += x2g

    def _next_call(self) -> int:
        """Index of this call within the thread's forward pass (a Mosaic layer reads once per step)."""
        calls = getattr(self._reads, "calls", 0)
        self._reads.calls = calls + 1
        return calls

    def _row_ids(self, n_rows: int, call: int) -> np.ndarray:
        per_image = max(n_rows // getattr(self._reads, "batch", 1), 1)
        index = np.arange(n_rows, dtype=np.uint64)
        image = np.uint64(getattr(self._reads, "image_offset", 0)) + index // np.uint64(per_image)
        read = np.uint64(call * per_image) + index % np.uint64(per_image)
        return (image << np.uint64(_READ_ID_BITS)) | read

    def dac(self, x: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        """Normalized array inputs of each input slice and their recombination factors d_k.

        Inputs become x / x_max; with dac.bits > 0 they are clipped to [0, 1]
        (or [-1, 1]) and quantized to integer codes q with 2^bits - 1 steps,
        split bit-serially into ``input_slices`` digits of bits / input_slices bits.
        """
        dac = self.hw.dac
        if dac.bits == 0:
            return [x * np.float32(1.0 / self.x_scale)], [1.0]
        if dac.input_slices == 1:
            normalized = np.empty(x.shape, np.float32)
            convert.dac_normalized(x, np.float32(1.0 / self.x_scale), np.float32(self.dac_levels),
                                   self.signed_inputs, normalized)
            return [normalized], [1.0]
        codes = np.empty(x.shape, np.int32)
        convert.dac_quantize(x, np.float32(1.0 / self.x_scale), np.float32(self.dac_levels),
                             self.signed_inputs, codes)
        bits_per_slice = dac.bits // dac.input_slices
        digit_max = 2 ** bits_per_slice - 1
        magnitude, sign = np.abs(codes), np.sign(codes).astype(np.float32)
        slices, factors = [], []
        for k in range(dac.input_slices):
            digit = (magnitude >> (k * bits_per_slice)) & digit_max
            slices.append((digit * sign * np.float32(1.0 / digit_max)).astype(np.float32))
            factors.append(digit_max * 2 ** (k * bits_per_slice) / self.dac_levels)
        return slices, factors

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """y = x W + b through the crossbar: (batch, n_in) float32 -> (batch, n_out) float32."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        call = self._next_call()
        if self.linear is not None:
            return self._linear_call(x)
        if self.bias_row:
            x = np.hstack([x, np.full((n, 1), self.x_scale, np.float32)])
        inputs, input_factors = self.dac(x)
        recording = self._recording is not None
        noise = self.read_noise and not recording
        row_ids = self._row_ids(n, call) if noise else np.zeros(n, np.uint64)
        out = np.zeros((n, self.n_out), np.float32)
        if not recording:
            # Per row, sum over the batch of x^2 (no batch-sized temporary), then weight by the row's G.
            row_x2 = np.zeros(self.n_rows)
            for x_k in inputs:
                convert.column_square_sums(x_k, row_x2)
            self.add_counts(n, sum(float(row_x2 @ rc) for rc in self.row_conductance))
        partials, keys, inv_step, step_scale = self._plan(input_factors)
        # Rows of the batch at a time, so that the currents of all partials stay a few MB.
        chunk = max(1, _CURRENTS_BUDGET // (len(partials) * self.n_out))
        for c0 in range(0, n, chunk):
            c1 = min(n, c0 + chunk)
            currents, std = self._partial_currents(partials, [x_k[c0:c1] for x_k in inputs],
                                                   row_ids[c0:c1], keys, noise)
            if recording:
                for p, (s, t, _, o) in enumerate(partials):
                    self._recording.setdefault((s, t, o), []).append(currents[p])
            convert.read_out(currents, std, keys, row_ids[c0:c1], inv_step, step_scale, *self.code_range,
                             0 if recording else self.hw.adc.bits, out[c0:c1])
        if not self.differential:
            self._subtract_reference(out, inputs, input_factors)
        if self.digital_bias is not None:
            out += self.digital_bias
        return out

    def _linear_call(self, x: np.ndarray) -> np.ndarray:
        """:meth:`__call__` of a linear chip (see :meth:`_fold_linear`), counters included."""
        weights, bias = self.linear
        if self._recording is None:
            # Inputs x / x_max drive the rows, the bias row at 1.
            row_x2 = np.zeros(self.n_in)
            convert.column_square_sums(x, row_x2)
            row_x2 *= self.x_scale ** -2
            x2g = 0.0
            for rc in self.row_conductance:
                x2g += float(row_x2 @ rc[:self.n_in])
                if self.bias_row:
                    x2g += x.shape[0] * float(rc[-1])
            self.add_counts(x.shape[0], x2g)
        out = x @ weights
        if bias is not None:
            out += bias
        return out

    @property
    def operands_per_tile(self) -> int:
        """ADC conversions per column of a tile read: 2 for digital pair subtraction, else 1."""
        return len(self.operands[0])

    def counts_per_vector(self) -> dict[str, int]:
        """Operations for one input vector (DESIGN.md section 4; docs/energy.md).

        array_reads: physical arrays activated; rows_driven: rows driven over those
        arrays; conversions: ADC conversions; digital_adds: additions after the ADC
        (partial sums of tiles and slices, the digital bias, the offset reference).
        """
        passes = self.n_slices * self.hw.dac.input_slices
        n_col_tiles = len(self.col_tiles)
        partials = passes * len(self.row_tiles) * self.operands_per_tile
        adds = self.n_out * (partials - 1)
        if self.digital_bias is not None:
            adds += self.n_out
        if not self.differential:
            adds += self.n_out
        return {
            "array_reads": passes * len(self.row_tiles) * n_col_tiles,
            "rows_driven": passes * self.n_rows * n_col_tiles,
            "conversions": partials * self.n_out,
            "digital_adds": adds,
        }

    @property
    def devices_per_vector(self) -> int:
        """Devices read for one input vector: rows x columns x devices per weight x slices x input slices."""
        per_weight = 2 if self.differential else 1
        return self.n_rows * self.n_out * per_weight * self.n_slices * self.hw.dac.input_slices

    def _plan(self, input_factors: list[float]):
        """The partial reads of one call, in accumulation order, and their per-column constants.

        Returns (partials, keys, inv_step, step_scale): partials are (slice,
        row tile, input slice, ADC input) tuples; keys (P,) the read-noise
        stream of each; inv_step and step_scale (P, n_out) as
        :func:`~xbar.kernels.convert.read_out` takes them. Cached until the
        ADC ranges change.
        """
        if self._plan_cache is None:
            to_weights = self.w_scale * self.x_scale / (self.v_read * self.g_range)
            if not self.differential:
                to_weights *= 2.0
            partials, keys, inv_steps, step_scales = [], [], [], []
            for s, operands in enumerate(self.operands):
                for t in range(len(self.row_tiles)):
                    for k, input_factor in enumerate(input_factors):
                        scale = self.slice_factors[s] * input_factor * to_weights
                        for o, (sign, _, _, _) in enumerate(operands):
                            step, inv_step = self.adc_steps[(s, t, o)]
                            partials.append((s, t, k, o))
                            keys.append(derive_key(PURPOSE_READ, self.seed, self.layer, s, t, k, o))
                            inv_steps.append(inv_step)
                            step_scales.append((step * np.float32(sign * scale)).astype(np.float32))
            self._plan_cache = (partials, np.array(keys, np.uint64), np.stack(inv_steps), np.stack(step_scales))
        return self._plan_cache

    def _partial_currents(self, partials, inputs, row_ids, keys, noise):
        """Column currents (uA) of every partial read, and the spread of their column-mode read noise.

        Returns currents (P, n, n_out) float32, read noise included in device
        mode, and std (P, n, w) float32 uA for :func:`~xbar.kernels.convert.read_out`
        (w = 0 when no column noise is to be drawn).
        """
        n = inputs[0].shape[0]
        currents = np.empty((len(partials), n, self.n_out), np.float32)
        column_noise = noise and not self.device_mode
        uniform = column_noise and isinstance(self.operands[0][0][2], float)
        std = np.empty((len(partials), n, (1 if uniform else self.n_out) if column_noise else 0), np.float32)
        single_tile = len(self.row_tiles) == 1
        squares = {}
        v_read = np.float32(self.v_read)
        for p, (s, t, k, o) in enumerate(partials):
            r0, r1 = self.row_tiles[t]
            # A column slice is a valid BLAS operand (leading dimension n_in): no copy.
            x_tile = inputs[k] if single_tile else inputs[k][:, r0:r1]
            _, g, var, parts = self.operands[s][o]
            if noise and self.device_mode:
                # Reference path: one draw per device per read, each device of a pair on its own stream.
                x_tile = np.ascontiguousarray(x_tile)
                convert.device_noise_product(x_tile, parts[0][r0:r1], parts[1][r0:r1], self.v_read,
                                             derive_key(PURPOSE_READ, self.seed, self.layer, s, t, k, o, 0),
                                             row_ids, currents[p])
                if len(parts) == 4:
                    other = np.empty((n, self.n_out), np.float32)
                    convert.device_noise_product(x_tile, parts[2][r0:r1], parts[3][r0:r1], self.v_read,
                                                 derive_key(PURPOSE_READ, self.seed, self.layer, s, t, k, o, 1),
                                                 row_ids, other)
                    currents[p] -= other
                continue
            np.matmul(x_tile, g[r0:r1], out=currents[p])
            if not column_noise:
                continue
            # Var(I_j) = V^2 sum_i x_i^2 sigma_ij^2: one number per row for the additive model.
            if uniform:
                if k not in squares:
                    squares[k] = np.empty((n, len(self.row_tiles)), np.float32)
                    convert.tile_square_sums(inputs[k], self._tile_starts, squares[k])
                variance = squares[k][:, t:t + 1] * np.float32(var)
            else:
                if (t, k) not in squares:
                    squares[(t, k)] = np.square(x_tile)
                variance = squares[(t, k)] @ var[r0:r1]
            np.sqrt(variance, out=std[p])
            std[p] *= v_read
        return currents, std

    def _subtract_reference(self, out, inputs, input_factors) -> None:
        """Offset scheme: remove the digitally known reference V (g_min sum_s c_s + dg/2) sum_i x_i."""
        g_min_rel = self.hw.device.g_min_us / self.g_range
        x_sum = sum(f * x_k.sum(axis=1, dtype=np.float64) for f, x_k in zip(input_factors, inputs))
        reference = x_sum * (g_min_rel * sum(self.slice_factors) + 0.5)
        out -= (reference * 2.0 * self.w_scale * self.x_scale).astype(np.float32)[:, None]


class ProgrammedNetwork:
    """A network programmed onto one chip instance: call :meth:`forward` like the network's."""

    def __init__(self, network: Network, hw: Hardware, seed: int, matrices: list[AnalogMatrix]):
        self.network, self.hw, self.seed, self.matrices = network, hw, seed, matrices

    def forward(self, x: np.ndarray, image_offset: int = 0) -> np.ndarray:
        """Logits of images ``image_offset ..`` (their global indices key the read noise).

        With several Numba threads and a chip that is not one linear product
        per layer, the batch is split into one block of images per thread, and
        each thread runs the whole network on its block with one-threaded BLAS
        and kernels. Handing every GEMM and kernel of a layer to all cores in
        turn left them waiting on each other (BLAS workers spin between calls):
        this ran the 8-bit, read-noise MLP 1.5x faster on 2 cores
        (docs/performance.md). Outputs do not depend on the split; energy
        counts are merged in block order.
        """
        threads = numba.get_num_threads()
        n = x.shape[0]
        if (threads == 1 or n < 2 * _MIN_IMAGES_PER_THREAD or all(m.linear is not None for m in self.matrices)
                or any(m._recording is not None for m in self.matrices)):
            for matrix in self.matrices:
                matrix.begin(image_offset, n)
            return self.network.forward(x, self.matrices)
        threads = min(threads, n // _MIN_IMAGES_PER_THREAD)
        bounds = [(n * i // threads, n * (i + 1) // threads) for i in range(threads)]
        with one_threaded_blas():
            blocks = list(_block_pool(threads).map(lambda b: self._forward_block(x, image_offset, *b), bounds))
        for _, counts in blocks:
            for matrix, (vectors, x2g) in zip(self.matrices, counts):
                matrix.add_counts(vectors, x2g)
        return np.concatenate([logits for logits, _ in blocks])

    def _forward_block(self, x, image_offset, start, stop):
        """One thread's share of :meth:`forward`: images ``start .. stop - 1`` of ``x``, one thread deep."""
        numba.set_num_threads(1)  # thread-local in Numba: this pool thread's kernels stay serial
        for matrix in self.matrices:
            matrix.begin(image_offset + start, stop - start)
            matrix.defer_counts()
        try:
            logits = self.network.forward(x[start:stop], self.matrices)
        finally:
            counts = [matrix.take_deferred_counts() for matrix in self.matrices]
        return logits, counts


_MIN_IMAGES_PER_THREAD = 16
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _block_pool(threads: int) -> ThreadPoolExecutor:
    """A persistent pool of ``threads`` threads for :meth:`ProgrammedNetwork.forward`."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="xbar-block")
    return _POOLS[threads]


class _RangeRecorder:
    """An ideal product that records the |inputs| it sees (for DAC calibration)."""

    def __init__(self, ideal):
        self.ideal, self.abs_values, self.negative = ideal, [], False

    def __call__(self, x):
        self.abs_values.append(np.abs(x).ravel())
        self.negative |= bool((x < 0).any())
        return self.ideal(x)

    def input_range(self, hw: Hardware) -> InputRange:
        values = np.concatenate(self.abs_values)
        if hw.dac.range == DACRange.FIXED:
            x_max = hw.dac.x_max
        elif hw.dac.range == DACRange.PERCENTILE:
            x_max = float(np.percentile(values, hw.dac.percentile))
        else:
            x_max = float(values.max())
        return InputRange(x_max=x_max if x_max > 0 else 1.0, signed=self.negative)


def program(network: Network, hw: Hardware, seed: int, calibration: np.ndarray) -> ProgrammedNetwork:
    """Program ``network`` onto chip instance ``seed`` of ``hw``, calibrating on ``calibration`` images.

    Parameters
    ----------
    network : Network
    hw : Hardware
    seed : int
        Chip instance seed: keys the static errors and the read noise.
    calibration : ndarray (n, 28, 28)
        Images whose activations set the DAC ranges (ideal pass) and, for the
        ``calibrated`` ADC policy, the ADC ranges (noise-free pass on the programmed chip).
    """
    recorders = [_RangeRecorder(m) for m in network.ideal_matmuls()]
    network.forward(calibration, recorders)
    matrices = [
        AnalogMatrix(layer.kernel2d, layer.bias, hw, recorder.input_range(hw), seed, index)
        for index, (layer, recorder) in enumerate(zip(network.weight_layers, recorders))
    ]
    chip = ProgrammedNetwork(network, hw, seed, matrices)
    if hw.adc.range == ADCRange.CALIBRATED and hw.adc.bits > 0:
        for matrix in matrices:
            matrix.start_recording()
        chip.forward(calibration)
        for matrix in matrices:
            matrix.finish_recording()
    for matrix in matrices:
        matrix.reset_counters()
    return chip
