"""Periphery: the DACs that drive the rows and the ADCs that convert the columns, and their ranges.

DAC: a layer's full-scale input x_max comes from its range policy
(``dac.range``: fixed, max or percentile of |input| on the calibration
images). Inputs become x / x_max; with ``dac.bits`` > 0 they are clipped and
quantized to integer codes (:mod:`xbar.kernels.convert`), split bit-serially
into ``input_slices`` digits that are shift-added after the ADC (factors d_k).

ADC: every (weight slice, row tile, ADC input) has, per column tile, a
full-scale current I_max (uA) from ``adc.range``: the largest current the tile
can produce for inputs in the DAC range (max), a percentile of the noise-free
currents seen on the calibration images (calibrated), or ``adc.i_max_ua``
(fixed). Signed converters (analog pair subtraction, or signed inputs) have
steps of I_max / 2^(bits - 1), unsigned ones I_max / (2^bits - 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import ADC, DAC, ADCRange, DACRange
from ..kernels import convert
from ..nets.layers import Matmul
from .compensation import reference_rows


@dataclass(frozen=True)
class InputRange:
    """DAC range of one layer: full-scale input (input units) and whether inputs can be negative."""

    x_max: float
    signed: bool


class InputRecorder:
    """An ideal product that records the inputs it sees: for the DAC range of its layer and the known inputs of
    its drift compensation."""

    def __init__(self, ideal: Matmul):
        self.ideal = ideal
        self.inputs: list[np.ndarray] = []
        self.negative = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # A copy: a layer may pass the same buffer again with other values (the Mosaic core, step by step).
        self.inputs.append(x.copy())
        self.negative |= bool((x < 0).any())
        return self.ideal(x)

    def reference_inputs(self) -> np.ndarray:
        """Some of the recorded inputs, evenly spaced: the known inputs of a drift compensation read."""
        return reference_rows(np.concatenate(self.inputs))

    def input_range(self, dac: DAC) -> InputRange:
        """The layer's DAC range under ``dac.range`` from what was recorded."""
        values = np.abs(np.concatenate([x.ravel() for x in self.inputs]))
        if dac.range == DACRange.FIXED:
            x_max = dac.x_max
        elif dac.range == DACRange.PERCENTILE:
            x_max = float(np.percentile(values, dac.percentile))
        else:
            x_max = float(values.max())
        return InputRange(x_max=x_max if x_max > 0 else 1.0, signed=self.negative)


def dac_inputs(x: np.ndarray, dac: DAC, input_range: InputRange) -> tuple[list[np.ndarray], list[float]]:
    """Normalized array inputs (float32) of each input slice and their recombination factors d_k.

    Inputs become x / x_max; with dac.bits > 0 they are clipped to [0, 1]
    (or [-1, 1]) and quantized to integer codes q with 2^bits - 1 steps,
    split bit-serially into ``input_slices`` digits of bits / input_slices bits.
    """
    x_scale = input_range.x_max
    if dac.bits == 0:
        return [x * np.float32(1.0 / x_scale)], [1.0]
    dac_levels = float(2**dac.bits - 1)
    if dac.input_slices == 1:
        normalized = np.empty(x.shape, np.float32)
        convert.dac_normalized(x, np.float32(1.0 / x_scale), np.float32(dac_levels), input_range.signed, normalized)
        return [normalized], [1.0]
    codes = np.empty(x.shape, np.int32)
    convert.dac_quantize(x, np.float32(1.0 / x_scale), np.float32(dac_levels), input_range.signed, codes)
    bits_per_slice = dac.bits // dac.input_slices
    digit_max = 2**bits_per_slice - 1
    magnitude, sign = np.abs(codes), np.sign(codes).astype(np.float32)
    slices, factors = [], []
    for k in range(dac.input_slices):
        digit = (magnitude >> (k * bits_per_slice)) & digit_max
        slices.append((digit * sign * np.float32(1.0 / digit_max)).astype(np.float32))
        factors.append(digit_max * 2 ** (k * bits_per_slice) / dac_levels)
    return slices, factors


def worst_case_current(g: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], signed_inputs: bool) -> float:
    """Largest |I| (uA) a tile can produce for normalized inputs |x| <= 1 (``g`` holds V_read G)."""
    block = g[rows[0] : rows[1], cols[0] : cols[1]].astype(np.float64)
    if signed_inputs:
        worst = np.abs(block).sum(axis=0)
    else:
        worst = np.maximum(np.clip(block, 0, None).sum(axis=0), np.clip(-block, 0, None).sum(axis=0))
    return float(worst.max())


def calibrated_current(recorded: list[np.ndarray], cols: tuple[int, int], percentile: float) -> float:
    """``percentile`` of |noise-free column current| (uA) over the recorded reads of one column tile."""
    if not recorded:
        return 0.0
    samples = np.concatenate([np.abs(r[:, cols[0] : cols[1]]).ravel() for r in recorded])
    return float(np.percentile(samples, percentile)) if samples.size else 0.0


def adc_full_scale(
    adc: ADC,
    rows: tuple[int, int],
    col_tiles: list[tuple[int, int]],
    n_out: int,
    signed_inputs: bool,
    operand: Callable[[], np.ndarray],
    recorded: list[np.ndarray] | None,
) -> np.ndarray:
    """I_max (uA, float64, per column) of one ADC input of one row tile under ``adc.range``.

    ``operand()`` gives the input's V_read G (for the ``max`` policy); ``recorded`` the calibration
    reads, or None. An ideal (0-bit) converter has no range: ones.
    """
    if adc.bits == 0:
        return np.ones(n_out)
    i_max = np.empty(n_out, np.float64)
    for cols in col_tiles:
        if adc.range == ADCRange.FIXED:
            value = adc.i_max_ua
        elif adc.range == ADCRange.CALIBRATED and recorded is not None:
            value = calibrated_current(recorded, cols, adc.percentile)
        else:
            value = worst_case_current(operand(), rows, cols, signed_inputs)
        i_max[cols[0] : cols[1]] = value if value > 0 else 1e-12
    return i_max


def adc_steps(i_max: np.ndarray, bits: int, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(step, 1 / step) per column (uA, float32); ones for an ideal (0-bit) converter."""
    if bits == 0:
        step = np.ones(i_max.shape)
    elif signed:
        step = i_max / 2 ** (bits - 1)
    else:
        step = i_max / (2**bits - 1)
    return step.astype(np.float32), (1.0 / step).astype(np.float32)


def adc_code_range(bits: int, signed: bool) -> tuple[float, float]:
    """Lowest and highest ADC code: two's complement when signed; (0, 0) for an ideal converter."""
    if not bits:
        return 0.0, 0.0
    if signed:
        return -float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)
