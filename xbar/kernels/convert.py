"""Converter kernels: DAC input quantization and ADC conversion with digital accumulation.

DAC: x is clipped to [0, x_max] (unsigned) or [-x_max, x_max] (signed) and
quantized to integer codes q = round(|x| / x_max (2^bits - 1)) with the sign
of x (sign-magnitude: a signed DAC has 2^bits - 1 magnitude levels and a sign);
the array is driven with q / (2^bits - 1).

ADC: a current I (uA) is converted with a step of I_max / (2^bits - 1)
(unsigned, codes 0 .. 2^bits - 1) or I_max / 2^(bits - 1) (signed, two's
complement codes -2^(bits-1) .. 2^(bits-1) - 1): code = clip(floor(I / step + 1/2)).
"""

import numpy as np

from ._jit import jit, pjit, prange
from .rng import mix, normal_fill


@jit
def dac_code(x, inv_x_max, levels, signed):
    """Integer DAC code of input ``x`` (sign included) as a float32; ``levels`` = 2^b' - 1.

    float32 throughout (``np.floor``, not ``math.floor``, which returns an
    int64 and takes the loop through float64 and integer conversions).
    """
    v = x * inv_x_max
    if signed:
        v = min(max(v, np.float32(-1.0)), np.float32(1.0))
    else:
        v = min(max(v, np.float32(0.0)), np.float32(1.0))
    return np.floor(v * levels + np.float32(0.5))


@pjit
def dac_quantize(x, inv_x_max, levels, signed, out):
    """Integer DAC codes of a (batch, n) float32 array into int32 ``out``."""
    for b in prange(x.shape[0]):
        for i in range(x.shape[1]):
            out[b, i] = dac_code(x[b, i], inv_x_max, levels, signed)


@pjit
def dac_normalized(x, inv_x_max, levels, signed, out):
    """DAC output of a (batch, n) float32 array: ``out = dac_code(x) / levels`` (float32, in [-1, 1]).

    Equivalent to ``dac_quantize`` followed by a division, in one pass.
    """
    inv_levels = np.float32(1.0) / levels
    for b in prange(x.shape[0]):
        for i in range(x.shape[1]):
            out[b, i] = dac_code(x[b, i], inv_x_max, levels, signed) * inv_levels


@jit
def adc_code(current, inv_step, code_min, code_max):
    """ADC code of one current: clip(floor(current / step + 1/2), code_min, code_max), float32."""
    c = np.floor(current * inv_step + np.float32(0.5))
    return min(max(c, code_min), code_max)


@pjit
def read_out(currents, std, keys, row_ids, inv_step, step_scale, code_min, code_max, bits, out):
    """Every partial read of a layer in one pass: column-mode read noise, ADC, shift-add into ``out``.

    A partial p is one (weight slice, row tile, input slice, ADC input) of the
    layer: ``out[b, j] += adc(currents[p, b, j] + std[p, b, j] z_pbj) x step_scale[p, j]``
    over p in order, with z_pbj = normal(mix(keys[p], row_ids[b]), j). Column
    mode is exact in distribution for independent Gaussian device noise: a
    column current's variance is V^2 sum_i x_i^2 sigma_ij^2 (DESIGN.md
    section 2). One parallel region for the whole layer, rather than one per
    partial, keeps the cores from idling between BLAS calls and kernels.

    Parameters
    ----------
    currents : float32 (P, batch, cols), uA, noise-free column currents
    std : float32 (P, batch, w), uA, w = cols, 1 (one spread per row) or 0 (no read noise)
    keys : uint64 (P,), read-noise stream of each partial
    row_ids : uint64 (batch,)
    inv_step : float32 (P, cols), 1 / ADC step (1/uA) of each column's tile
    step_scale : float32 (P, cols), output units per code: step times the scale back to weight units
    code_min, code_max : float
    bits : int, 0 = ideal ADC (out += current x inv_step x step_scale, no clipping)
    out : float32 (batch, cols), accumulated in place
    """
    n_partials, n, cols = currents.shape
    width = std.shape[2]
    code_min, code_max = np.float32(code_min), np.float32(code_max)
    n_blocks = min(n, 256)
    for block in prange(n_blocks):
        z = np.empty(cols, np.float32)
        for b in range(block * n // n_blocks, (block + 1) * n // n_blocks):
            for p in range(n_partials):
                if width > 0:
                    normal_fill(mix(keys[p], row_ids[b]), z)
                    if width == 1:
                        s = std[p, b, 0]
                        for j in range(cols):
                            z[j] = currents[p, b, j] + s * z[j]
                    else:
                        for j in range(cols):
                            z[j] = currents[p, b, j] + std[p, b, j] * z[j]
                else:
                    z[:] = currents[p, b]
                if bits == 0:
                    for j in range(cols):
                        out[b, j] += z[j] * inv_step[p, j] * step_scale[p, j]
                else:
                    for j in range(cols):
                        out[b, j] += adc_code(z[j], inv_step[p, j], code_min, code_max) * step_scale[p, j]


@pjit
def tile_square_sums(x, starts, out):
    """Per row and row tile, the sum of squared inputs: ``out[b, t] = sum_{starts[t] <= i < starts[t+1]} x[b, i]^2``.

    float32, in row order (the column-noise variance of the additive model).
    A kernel rather than ``np.einsum`` on column slices, which holds the GIL
    and so serialized the threads of :meth:`ProgrammedNetwork.forward`.
    """
    for b in prange(x.shape[0]):
        for t in range(starts.shape[0] - 1):
            acc = np.float32(0.0)
            for i in range(starts[t], starts[t + 1]):
                acc += x[b, i] * x[b, i]
            out[b, t] = acc


@jit
def column_square_sums(x, out):
    """Add to ``out[i]`` (float64) the sum over the batch of ``x[b, i]^2``, rows in order (for the cells' energy)."""
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            v = np.float64(x[b, i])
            out[i] += v * v


@pjit
def device_noise_product(x, g, sigma, v_read, key, row_ids, clip, lo, hi, out):
    """Device-mode read noise: out[b, j] = V sum_i x[b, i] (g[i, j] + sigma[i, j] z_bij).

    z_bij = normal(mix(mix(key, row_ids[b]), i), j): one draw per device per read.
    The reference that column mode is held against; cost is one draw per device.
    With ``clip`` each device's noisy conductance is clipped to [lo, hi] (float32, uS; hi may be inf) before
    the currents are summed: out[b, j] = V sum_i x[b, i] clip(g[i, j] + sigma[i, j] z_bij, lo, hi)
    (``device.read_clip``); without it the sum is formed exactly as it always was.
    """
    rows, cols = g.shape
    lo, hi = np.float32(lo), np.float32(hi)
    for b in prange(x.shape[0]):
        row_key = mix(key, row_ids[b])
        z = np.empty(cols, np.float32)
        for j in range(cols):
            out[b, j] = 0.0
        for i in range(rows):
            xi = x[b, i]
            if xi == 0.0:
                continue
            normal_fill(mix(row_key, np.uint64(i)), z)
            if clip:
                for j in range(cols):
                    v = g[i, j] + sigma[i, j] * z[j]
                    # Comparisons, not min/max: a NaN conductance stays NaN (and is caught downstream).
                    if v < lo:
                        v = lo
                    elif v > hi:
                        v = hi
                    out[b, j] += xi * v
            else:
                for j in range(cols):
                    out[b, j] += xi * (g[i, j] + sigma[i, j] * z[j])
        for j in range(cols):
            out[b, j] *= v_read
