"""The linear fold: a chip with ideal converters and no read noise is one product per layer.

Every stage of :meth:`~.matrix.AnalogMatrix.read` is then linear (the DAC
scales by 1 / x_max, the ADC by its step, tiles and slices are summed, the
offset reference is a multiple of sum_i x_i), so one product with the
programmed chip's effective weights gives the same outputs to float32
rounding at the cost of the ideal layer. The programmed conductances, errors
included, are all it is made of.
"""

from __future__ import annotations

import numpy as np

from ..config import Device
from ..kernels import convert
from .array import DenseArray
from .context import LayerReads


def fold(
    array: DenseArray,
    device: Device,
    factors: list[float],
    w_scale: float,
    x_scale: float,
    differential: bool,
    bias_row: bool,
    digital_bias: np.ndarray | None,
    output_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(W_eff (n_in, n_out), b_eff or None), float32, in weight units: what the linear chip computes.

    ``output_scale`` (n_out,), the drift compensation's digital scale, multiplies the analog part (the
    weights and a bias row), not the digital bias.
    """
    scale = w_scale / (device.v_read_v * device.g_range_us) * (1.0 if differential else 2.0)
    weights = array.effective_weights(factors, scale)
    if not differential:
        weights -= (device.g_min_us / device.g_range_us * sum(factors) + 0.5) * 2.0 * w_scale
    if output_scale is not None:
        weights *= output_scale
    bias = None if digital_bias is None else digital_bias.astype(np.float64)
    if bias_row:
        # The bias row is driven at x_max.
        bias, weights = weights[-1] * x_scale, weights[:-1]
    return np.ascontiguousarray(weights, np.float32), None if bias is None else bias.astype(np.float32)


def read(
    x: np.ndarray,
    folded: tuple[np.ndarray, np.ndarray | None],
    x_scale: float,
    row_conductance: list[np.ndarray],
    bias_row: bool,
    counts: LayerReads | None,
    array: DenseArray | None = None,
) -> np.ndarray:
    """y = x W_eff + b_eff for float32 ``x`` (batch, n_in), its reads counted in ``counts`` (None: not counted);
    with resistive wires, the dissipation from ``array``'s forms."""
    weights, bias = folded
    if counts is not None:
        counts.vectors += x.shape[0]
        if array is not None and array.forms is not None:
            # Inputs x / x_max drive the rows (given as x, the scale taken out of the sum), the bias row at 1.
            driven = np.hstack([x, np.full((x.shape[0], 1), x_scale, np.float32)]) if bias_row else x
            devices, wires = array.dissipation([driven], x_scale)  # type: ignore[attr-defined]
            counts.cell_x2g_us += devices
            counts.wire_x2g_us += wires
        else:
            # Inputs x / x_max drive the rows, the bias row at 1.
            n_in = weights.shape[0]
            row_x2 = np.zeros(n_in)
            convert.column_square_sums(x, row_x2)
            row_x2 *= x_scale**-2
            x2g = 0.0
            for rc in row_conductance:
                x2g += float(row_x2 @ rc[:n_in])
                if bias_row:
                    x2g += x.shape[0] * float(rc[-1])
            counts.cell_x2g_us += x2g
    out = x @ weights
    if bias is not None:
        out += bias
    return out
