"""Mapping: a layer's weights -> normalized device targets, and the scale factors back to weight units.

A signed weight w becomes, after division by ``w_scale`` (max |W| or a
percentile of it, larger weights clipped):

- ``differential``: two devices, G+ for max(w, 0) and G- for max(-w, 0);
- ``offset``: one device at (w + 1) / 2 of the range, the reference current
  of a weight of zero subtracted digitally (:func:`offset_reference`).

With ``device.levels`` > 0 each normalized target is rounded to a code of
``levels ** weight_slices`` steps, held as base-``levels`` digits in
``weight_slices`` device pairs and recombined digitally with factors c_s.
Targets here are normalized to [0, 1]; ``g_min + (g_max - g_min) target`` is the
conductance (uS) the device is programmed to.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..config import BiasMode, Device, Mapping, MappingScheme
from ..kernels import tables as table_kernels


def layer_rows(
    kernel: np.ndarray, bias: np.ndarray | None, mapping: Mapping, x_scale: float
) -> tuple[np.ndarray, bool, np.ndarray | None]:
    """The weight rows the arrays hold (float64, a new array), whether the bias is one of them, and the digital bias.

    A bias held as a row is driven at full input x_max (``x_scale``), so that row holds b / x_max.
    """
    weights = np.array(kernel, np.float64)
    bias_row = mapping.bias == BiasMode.ROW and bias is not None
    if bias_row:
        weights = np.vstack([weights, np.asarray(bias, np.float64)[None, :] / x_scale])
    digital_bias = None if (bias is None or bias_row) else np.asarray(bias, np.float32)
    return weights, bias_row, digital_bias


def weight_scale(weights: np.ndarray, clip_percentile: float) -> float:
    """w_scale: the ``clip_percentile`` percentile of |W| (100: max |W|); 1 for an all-zero matrix."""
    w_abs = np.abs(weights)
    scale = float(np.percentile(w_abs, clip_percentile)) if clip_percentile < 100 else float(w_abs.max())
    return scale if scale > 0 else 1.0


def slice_factors(levels: int, weight_slices: int) -> list[float]:
    """Recombination factor c_s of each weight slice: sum_s c_s digit_s = the normalized target."""
    if levels == 0:
        return [1.0]
    full = levels**weight_slices - 1
    return [(levels - 1) * levels**s / full for s in range(weight_slices)]


def slice_digits(magnitude: np.ndarray, levels: int, weight_slices: int) -> list[np.ndarray]:
    """Per weight slice, the normalized device targets in [0, 1] (float64) of magnitudes in [0, 1]."""
    if levels == 0:
        return [magnitude]
    full = levels**weight_slices - 1
    code = np.rint(np.clip(magnitude, 0.0, 1.0) * full).astype(np.int64)
    return [((code // levels**s) % levels) / (levels - 1) for s in range(weight_slices)]


def sides(w_norm: np.ndarray, scheme: MappingScheme) -> Iterator[np.ndarray]:
    """The normalized magnitude held by each device of a weight: G+ then G- (differential), or one (offset)."""
    if scheme == MappingScheme.DIFFERENTIAL:
        yield np.clip(w_norm, 0.0, 1.0)
        yield np.clip(-w_norm, 0.0, 1.0)
    else:
        yield (np.clip(w_norm, -1.0, 1.0) + 1.0) / 2.0


def target_conductances(w_norm: np.ndarray, device: Device, mapping: Mapping) -> list[list[np.ndarray]]:
    """Target conductances (uS, float32) ``[slice][side]`` of weights normalized by w_scale.

    With a device table (:attr:`Device.table`) the targets are the table's levels: with one weight slice, the
    level nearest to g_min + (g_max - g_min) |w| (the table's levels need not be evenly spaced); with several,
    digit d of each slice is the table's level d (the digital recombination assumes evenly spaced levels, so an
    uneven table shows as a weight error). One side is worked out at a time, so the float64 temporaries stay a
    few per weight.
    """
    table = device.device_table
    per_side = []
    for magnitude in sides(w_norm, mapping.scheme):
        if table is None:
            row = [
                (device.g_min_us + device.g_range_us * digit).astype(np.float32)
                for digit in slice_digits(magnitude, device.levels, mapping.weight_slices)
            ]
        elif mapping.weight_slices == 1:
            # The level nearest to g_min + dg |w|: |w| against the midpoints between levels, in the same units.
            midpoints = ((table.targets_us[1:] + table.targets_us[:-1]) / 2 - device.g_min_us) / device.g_range_us
            level = np.empty(magnitude.shape, np.int32)
            table_kernels.nearest_levels(magnitude.reshape(-1), midpoints, level.reshape(-1))
            row = [table.targets_us.astype(np.float32)[level]]
        else:
            digits = slice_digits(magnitude, table.n_levels, mapping.weight_slices)
            row = [
                table.targets_us[np.rint(d * (table.n_levels - 1)).astype(np.int64)].astype(np.float32) for d in digits
            ]
        per_side.append(row)
        del magnitude
    return [list(row) for row in zip(*per_side)]


def current_to_weight(w_scale: float, x_scale: float, device: Device, scheme: MappingScheme) -> float:
    """Weight units per uA of column current at full input: w_scale x_max / (V_read (g_max - g_min)).

    The offset scheme holds w / 2 per unit of range, hence a factor 2.
    """
    scale = w_scale * x_scale / (device.v_read_v * device.g_range_us)
    return scale * (2.0 if scheme == MappingScheme.OFFSET else 1.0)


def offset_reference(
    input_sum: np.ndarray, device: Device, factors: list[float], w_scale: float, x_scale: float
) -> np.ndarray:
    """Offset scheme: the output of a weight of zero, V (g_min sum_s c_s + dg / 2) sum_i x_i, in weight units.

    ``input_sum`` (float64, per image) is sum_k d_k sum_i x_ik over the normalized inputs of each input slice.
    """
    g_min_rel = device.g_min_us / device.g_range_us
    reference = input_sum * (g_min_rel * sum(factors) + 0.5)
    return (reference * 2.0 * w_scale * x_scale).astype(np.float32)
