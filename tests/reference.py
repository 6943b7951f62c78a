"""Plain float64 loop references for the numpy layers: slow, obvious, independent.

Nothing here calls xbar's layer code: each function is written from the
definition (NOTES.md, DESIGN.md) with explicit loops.
"""

from __future__ import annotations

import numpy as np


def ref_brelu(x):
    return np.minimum(np.maximum(x, 0.0), 1.0)


def ref_activation(x, activation):
    return ref_brelu(x) if activation == "brelu" else x


def ref_dense(x, kernel, bias, activation):
    """y_j = f(sum_i x_i W_ij + b_j), one output at a time."""
    batch, n_out = x.shape[0], kernel.shape[1]
    y = np.zeros((batch, n_out))
    for b in range(batch):
        for j in range(n_out):
            acc = 0.0 if bias is None else float(bias[j])
            acc += float(np.dot(x[b].astype(np.float64), kernel[:, j].astype(np.float64)))
            y[b, j] = acc
    return ref_activation(y, activation)


def ref_conv3x3_same(x, kernel, bias, activation):
    """Cross-correlation with a 3x3 HWIO kernel, zero padding 1, stride 1, NHWC."""
    batch, h, w, c_in = x.shape
    c_out = kernel.shape[3]
    y = np.zeros((batch, h, w, c_out))
    for b in range(batch):
        for i in range(h):
            for j in range(w):
                for co in range(c_out):
                    acc = float(bias[co])
                    for di in range(3):
                        for dj in range(3):
                            ii, jj = i + di - 1, j + dj - 1
                            if 0 <= ii < h and 0 <= jj < w:
                                acc += float(np.dot(x[b, ii, jj, :].astype(np.float64),
                                                    kernel[di, dj, :, co].astype(np.float64)))
                    y[b, i, j, co] = acc
    return ref_activation(y, activation)


def ref_maxpool(x, p):
    batch, h, w, c = x.shape
    y = np.zeros((batch, h // p, w // p, c))
    for b in range(batch):
        for i in range(h // p):
            for j in range(w // p):
                for ch in range(c):
                    y[b, i, j, ch] = x[b, i * p:(i + 1) * p, j * p:(j + 1) * p, ch].max()
    return y


def ref_mosaic(x, kernel, bias, timesteps, feedback, activation):
    """Step s: rows = [pixels of slice s ; first `feedback` outputs of step s-1 (0 at s=0)]."""
    batch = x.shape[0]
    n_step = x.shape[1] // timesteps
    out = np.zeros((batch, kernel.shape[1]))
    for b in range(batch):
        previous = np.zeros(kernel.shape[1])
        for s in range(timesteps):
            rows = np.concatenate([x[b, s * n_step:(s + 1) * n_step], previous[:feedback]])
            previous = ref_dense(rows[None, :], kernel, bias, activation)[0]
        out[b] = previous
    return out


def ref_forward(network, x):
    """Logits of ``network`` computed with the loops above (float64)."""
    y = np.asarray(x, dtype=np.float64).reshape((x.shape[0],) + network.input_shape)
    for layer in network.layers:
        if layer.kind == "flatten":
            y = y.reshape(y.shape[0], -1)
        elif layer.kind == "maxpool2d":
            y = ref_maxpool(y, layer.pool_size)
        elif layer.kind == "dense":
            y = ref_dense(y, layer.kernel, layer.bias, layer.activation)
        elif layer.kind == "conv2d":
            y = ref_conv3x3_same(y, layer.kernel, layer.bias, layer.activation)
        elif layer.kind == "mosaic":
            y = ref_mosaic(y, layer.kernel, layer.bias, layer.timesteps, layer.feedback, layer.activation)
        else:
            raise AssertionError(f"no reference for {layer.kind}")
    return y


# ---------------------------------------------------------------- crossbar references
def ref_dac_code(x, x_max, bits, signed):
    """Integer DAC code: clip x / x_max to [0, 1] (or [-1, 1]), times 2^bits - 1, round half up."""
    v = x / x_max
    v = min(max(v, -1.0 if signed else 0.0), 1.0)
    return int(np.floor(v * (2**bits - 1) + 0.5))


def ref_adc_code(current, i_max, bits, signed):
    """ADC code: step I_max / 2^(bits-1) (signed) or I_max / (2^bits - 1); round half up; saturate."""
    if signed:
        step, lo, hi = i_max / 2 ** (bits - 1), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        step, lo, hi = i_max / (2**bits - 1), 0, 2**bits - 1
    return min(max(int(np.floor(current / step + 0.5)), lo), hi), step


def ref_targets(w_norm, levels, slices):
    """Normalized device targets per weight slice (list), and recombination factors, by loops."""
    if levels == 0:
        return [w_norm.copy()], [1.0]
    full = levels**slices - 1
    out = [np.zeros_like(w_norm) for _ in range(slices)]
    for idx, m in np.ndenumerate(w_norm):
        code = int(np.rint(min(max(m, 0.0), 1.0) * full))
        for s in range(slices):
            out[s][idx] = (code // levels**s) % levels / (levels - 1)
    return out, [(levels - 1) * levels**s / full for s in range(slices)]


def ref_crossbar(x, kernel, bias, hw, x_max, signed_inputs):
    """Noise-free crossbar product by loops over images, tiles, slices, rows and columns.

    Supports both mapping schemes, bias as a row or digital, device levels, weight
    slices, bit-serial inputs, tiles, DAC/ADC bits, ADC ranges 'max' and 'fixed',
    and analog or digital subtraction. Returns float64 (batch, n_out).
    """
    dev, mp = hw.device, hw.mapping
    g_min, dg, v = dev.g_min_us, dev.g_max_us - dev.g_min_us, dev.v_read_v
    w = np.asarray(kernel, np.float64)
    bias_row = mp.bias.value == "row" and bias is not None
    if bias_row:
        w = np.vstack([w, np.asarray(bias, np.float64)[None] / x_max])
    n_rows, n_out = w.shape
    w_scale = np.abs(w).max()
    differential = mp.scheme.value == "differential"
    if differential:
        sides = [np.clip(w / w_scale, 0, 1), np.clip(-w / w_scale, 0, 1)]
    else:
        sides = [(np.clip(w / w_scale, -1, 1) + 1) / 2]
    per_side = [ref_targets(s, dev.levels, mp.weight_slices) for s in sides]
    c = per_side[0][1]
    g = [[(g_min + dg * per_side[side][0][s]).astype(np.float32).astype(np.float64) for side in range(len(sides))]
         for s in range(len(c))]
    analog = differential and mp.subtract.value == "analog"
    signed_adc = analog or signed_inputs
    batch = x.shape[0]
    xs = np.hstack([x, np.full((batch, 1), x_max)]) if bias_row else np.asarray(x, np.float64)
    # DAC
    dac = hw.dac
    if dac.bits == 0:
        slices, d = [xs / x_max], [1.0]
    else:
        levels = 2**dac.bits - 1
        codes = np.array([[ref_dac_code(val, x_max, dac.bits, signed_inputs) for val in row] for row in xs])
        bps = dac.bits // dac.input_slices
        dmax = 2**bps - 1
        slices = [np.sign(codes) * ((np.abs(codes) >> (k * bps)) & dmax) / dmax for k in range(dac.input_slices)]
        d = [dmax * 2 ** (k * bps) / levels for k in range(dac.input_slices)]
    rt = [(r, min(r + hw.tile.rows, n_rows)) for r in range(0, n_rows, hw.tile.rows)]
    ct = [(q, min(q + hw.tile.cols, n_out)) for q in range(0, n_out, hw.tile.cols)]
    scale = w_scale * x_max / (v * dg) * (1 if differential else 2)
    out = np.zeros((batch, n_out))
    for s in range(len(c)):
        operands = [(1.0, g[s][0] - g[s][1])] if analog else list(zip((1.0, -1.0), g[s])) if differential \
            else [(1.0, g[s][0])]
        for (r0, r1) in rt:
            for sign, gg in operands:
                i_max = np.zeros(n_out)
                for (q0, q1) in ct:
                    if hw.adc.range.value == "fixed":
                        value = hw.adc.i_max_ua
                    else:
                        worst = 0.0
                        for j in range(q0, q1):
                            col = gg[r0:r1, j]
                            cand = np.abs(col).sum() if signed_inputs else max(col[col > 0].sum(), -col[col < 0].sum())
                            worst = max(worst, v * cand)
                        value = worst
                    i_max[q0:q1] = value
                for k, xk in enumerate(slices):
                    for b in range(batch):
                        for j in range(n_out):
                            current = v * sum(xk[b, i] * gg[i, j] for i in range(r0, r1))
                            if hw.adc.bits:
                                code, step = ref_adc_code(current, i_max[j], hw.adc.bits, signed_adc)
                                current = code * step
                            out[b, j] += sign * current * c[s] * d[k] * scale
    if not differential:
        xq = sum(dk * xk for dk, xk in zip(d, slices))
        out -= (xq.sum(axis=1) * (g_min / dg * sum(c) + 0.5) * 2 * w_scale * x_max)[:, None]
    if bias is not None and not bias_row:
        out += bias
    return out
