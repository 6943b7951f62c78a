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


def _ref_pads(size, kernel, stride, dilation, padding, pads):
    """(output size, pad before) of one axis: 'same' = ceil(size / stride), the odd pixel after (TF)."""
    span = (kernel - 1) * dilation + 1
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        return out, total // 2
    before, after = (0, 0) if padding == "valid" else pads
    return (size + before + after - span) // stride + 1, before


def ref_conv2d(x, kernel, bias, strides=(1, 1), padding="same", pads=(0, 0, 0, 0), dilations=(1, 1), groups=1,
               activation="linear"):
    """Grouped, strided, dilated, padded cross-correlation by loops: NHWC input, HWIO kernel
    (KH, KW, C_in / groups, C_out); output channel co reads the input channels of its group only."""
    batch, h, w, c_in = x.shape
    kh, kw, c_group, c_out = kernel.shape
    oh, top = _ref_pads(h, kh, strides[0], dilations[0], padding, pads[:2])
    ow, left = _ref_pads(w, kw, strides[1], dilations[1], padding, pads[2:])
    per_group = c_out // groups
    y = np.zeros((batch, oh, ow, c_out))
    for b in range(batch):
        for i in range(oh):
            for j in range(ow):
                for co in range(c_out):
                    g = co // per_group
                    acc = 0.0 if bias is None else float(bias[co])
                    for p in range(kh):
                        for q in range(kw):
                            ii = i * strides[0] + p * dilations[0] - top
                            jj = j * strides[1] + q * dilations[1] - left
                            if 0 <= ii < h and 0 <= jj < w:
                                for ci in range(c_group):
                                    acc += float(x[b, ii, jj, g * c_group + ci]) * float(kernel[p, q, ci, co])
                    y[b, i, j, co] = acc
    return ref_activation(y, activation)


def ref_pool(x, mode, pool_size, strides, padding="valid", pads=(0, 0, 0, 0)):
    """Max or mean ('max' / 'avg') over each window by loops; padded pixels are skipped (never counted)."""
    batch, h, w, c = x.shape
    oh, top = _ref_pads(h, pool_size[0], strides[0], 1, padding, pads[:2])
    ow, left = _ref_pads(w, pool_size[1], strides[1], 1, padding, pads[2:])
    y = np.zeros((batch, oh, ow, c))
    for b in range(batch):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    seen = [float(x[b, ii, jj, ch])
                            for ii in range(i * strides[0] - top, i * strides[0] - top + pool_size[0])
                            for jj in range(j * strides[1] - left, j * strides[1] - left + pool_size[1])
                            if 0 <= ii < h and 0 <= jj < w]
                    y[b, i, j, ch] = max(seen) if mode == "max" else sum(seen) / len(seen)
    return y


def ref_function(x, function, alpha=0.01, low=0.0, high=1.0):
    """The digital activations, one element at a time, in float64."""
    def one(v):
        if function == "relu":
            return max(v, 0.0)
        if function == "clip":
            return min(max(v, low), high)
        if function == "leakyrelu":
            return v if v >= 0 else alpha * v
        if function == "sigmoid":
            return 1.0 / (1.0 + np.exp(-v))
        if function == "tanh":
            return np.tanh(v)
        assert function == "identity"
        return v
    flat = np.asarray(x, np.float64).ravel()
    return np.array([one(float(v)) for v in flat]).reshape(np.shape(x))


def ref_layer(layer, inputs):
    """One layer of any kind on its list of (float64) input batches, by the loops above."""
    y = inputs[0]
    kind = layer.kind
    if kind == "flatten":
        return y.reshape(y.shape[0], -1)
    if kind == "reshape":
        return y.reshape((y.shape[0],) + tuple(layer.shape))
    if kind == "identity":
        return y
    if kind == "maxpool2d":
        return ref_pool(y, "max", layer.pool_size, layer.strides, layer.padding, layer.pads)
    if kind == "avgpool2d":
        return ref_pool(y, "avg", layer.pool_size, layer.strides, layer.padding, layer.pads)
    if kind == "globalavgpool2d":
        return np.array([[y[b, :, :, ch].sum() / (y.shape[1] * y.shape[2]) for ch in range(y.shape[3])]
                         for b in range(y.shape[0])])
    if kind == "activation":
        return ref_function(y, layer.function, layer.alpha, layer.low, layer.high)
    if kind == "add":
        total = np.zeros_like(y)
        for other in inputs:
            total = total + other
        return total
    if kind == "concat":
        return np.concatenate(inputs, axis=-1)
    if kind == "dense":
        return ref_dense(y, layer.kernel, layer.bias, layer.activation)
    if kind == "conv2d":
        return ref_conv2d(y, layer.kernel, layer.bias, layer.strides, layer.padding, layer.pads, layer.dilations,
                          layer.groups, layer.activation)
    if kind == "mosaic":
        return ref_mosaic(y, layer.kernel, layer.bias, layer.timesteps, layer.feedback, layer.activation)
    raise AssertionError(f"no reference for {kind}")


def ref_forward(network, x):
    """Logits of ``network`` computed with the loops above (float64), following its graph of inputs."""
    values = {-1: np.asarray(x, dtype=np.float64).reshape((x.shape[0],) + network.input_shape)}
    for index, (layer, sources) in enumerate(zip(network.layers, network.inputs)):
        values[index] = ref_layer(layer, [values[j] for j in sources])
    return values[len(network.layers) - 1]


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
    and analog or digital subtraction. Returns float64 (batch, n_out). The mapping and the DAC are
    ref_layout's and ref_dac_slices's (below); the ADC ranges and the accumulation are its own.
    """
    layout = ref_layout(kernel, bias, hw, x_max)
    c, w_scale, scale = layout["c"], layout["w_scale"], layout["scale"]
    differential, bias_row, rt, ct = layout["differential"], layout["bias_row"], layout["rows"], layout["cols"]
    dev = hw.device
    g_min, dg, v = dev.g_min_us, dev.g_max_us - dev.g_min_us, dev.v_read_v
    n_out = np.asarray(kernel).shape[1]
    signed_adc = layout["analog"] or signed_inputs
    batch = x.shape[0]
    xs = np.hstack([x, np.full((batch, 1), x_max)]) if bias_row else np.asarray(x, np.float64)
    slices, d = ref_dac_slices(xs, hw, x_max, signed_inputs)
    out = np.zeros((batch, n_out))
    for s in range(len(c)):
        for (r0, r1) in rt:
            for sign, gg in _ref_operands(layout, s):
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


# The references below carry the chain of ref_crossbar one stage further apart, so that a test can set the
# ADC ranges itself: the noise-free current at every ADC input (per weight slice s, row tile t, input
# slice k, ADC input o), the ranges of the three ADC policies (docs/hardware.md, "ADC ranges"), and the
# conversion and digital sum with given ranges. Same rules as ref_crossbar: loops, float64, from the docs.
def ref_dac_slices(xs, hw, x_max, signed_inputs):
    """Normalized array inputs of each input slice (list of (batch, n) float64) and their factors d_k."""
    dac = hw.dac
    if dac.bits == 0:
        return [np.asarray(xs, np.float64) / x_max], [1.0]
    codes = np.array([[ref_dac_code(float(val), x_max, dac.bits, signed_inputs) for val in row] for row in xs])
    bps = dac.bits // dac.input_slices
    dmax = 2**bps - 1
    slices = [np.sign(codes) * ((np.abs(codes) >> (k * bps)) & dmax) / dmax for k in range(dac.input_slices)]
    return slices, [dmax * 2 ** (k * bps) / (2**dac.bits - 1) for k in range(dac.input_slices)]


def ref_layout(kernel, bias, hw, x_max, conductances=None):
    """The noise-free programmed layer by the mapping rules, as a dict of plain lists.

    ``conductances`` (list over weight slices of lists over sides of (n_rows, n_out) uS) replaces the
    targets, e.g. by a programmed chip's, errors included. Keys: g, c (slice factors), w_scale,
    bias_row, differential, analog, rows and cols (tile bounds), scale (output units per uA x c_s d_k).
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
    sides = [np.clip(w / w_scale, 0, 1), np.clip(-w / w_scale, 0, 1)] if differential \
        else [(np.clip(w / w_scale, -1, 1) + 1) / 2]
    per_side = [ref_targets(s, dev.levels, mp.weight_slices) for s in sides]
    c = per_side[0][1]
    if conductances is None:
        g = [[(g_min + dg * per_side[side][0][s]).astype(np.float32).astype(np.float64) for side in range(len(sides))]
             for s in range(len(c))]
    else:
        g = [[np.asarray(gs, np.float64) for gs in row] for row in conductances]
    return dict(g=g, c=c, w_scale=w_scale, bias_row=bias_row, differential=differential,
                analog=differential and mp.subtract.value == "analog",
                rows=[(r, min(r + hw.tile.rows, n_rows)) for r in range(0, n_rows, hw.tile.rows)],
                cols=[(q, min(q + hw.tile.cols, n_out)) for q in range(0, n_out, hw.tile.cols)],
                scale=w_scale * x_max / (v * dg) * (1 if differential else 2))


def _ref_operands(layout, s):
    """(sign, conductances) of each ADC input of weight slice s: the pair difference, each side, or one array."""
    g = layout["g"][s]
    if layout["analog"]:
        return [(1.0, g[0] - g[1])]
    return list(zip((1.0, -1.0), g)) if layout["differential"] else [(1.0, g[0])]


def ref_adc_input_currents(x, kernel, bias, hw, x_max, signed_inputs, conductances=None):
    """Noise-free current (uA) at every ADC input, by loops: {(s, t, k, o): (batch, n_out) float64}.

    I_j = V_read sum_{i in row tile t} x_ik G_ij, x_ik the normalized DAC output of input slice k (the
    bias row, if any, driven at x_max). Columns are kept whole; a column tile only groups them for I_max.
    """
    layout = ref_layout(kernel, bias, hw, x_max, conductances)
    v = hw.device.v_read_v
    batch = x.shape[0]
    xs = np.hstack([x, np.full((batch, 1), x_max)]) if layout["bias_row"] else np.asarray(x, np.float64)
    slices, _ = ref_dac_slices(xs, hw, x_max, signed_inputs)
    currents = {}
    for s in range(len(layout["c"])):
        for t, (r0, r1) in enumerate(layout["rows"]):
            for k, xk in enumerate(slices):
                for o, (_, gg) in enumerate(_ref_operands(layout, s)):
                    out = np.zeros((batch, gg.shape[1]))
                    for b in range(batch):
                        for j in range(gg.shape[1]):
                            out[b, j] = v * sum(xk[b, i] * gg[i, j] for i in range(r0, r1))
                    currents[(s, t, k, o)] = out
    return currents


def ref_adc_i_max(kernel, bias, hw, x_max, signed_inputs, calibration=None, conductances=None):
    """I_max (uA) of every ADC input by the ``adc.range`` policy: {(s, t, o): (n_out,)}, one value per column tile.

    fixed: adc.i_max_ua. max: the largest |current| the tile's columns can give for DAC outputs in
    [0, 1] (or [-1, 1]). calibrated: adc.percentile of |current| over the ``calibration`` inputs of this
    layer (every image and input slice, every column of the tile), the DAC as in inference, no ADC.
    """
    layout = ref_layout(kernel, bias, hw, x_max, conductances)
    policy = hw.adc.range.value
    if policy == "calibrated":
        currents = ref_adc_input_currents(calibration, kernel, bias, hw, x_max, signed_inputs, conductances)
    v = hw.device.v_read_v
    i_max = {}
    for s in range(len(layout["c"])):
        for t, (r0, r1) in enumerate(layout["rows"]):
            for o, (_, gg) in enumerate(_ref_operands(layout, s)):
                values = np.zeros(gg.shape[1])
                for (q0, q1) in layout["cols"]:
                    if policy == "fixed":
                        value = hw.adc.i_max_ua
                    elif policy == "max":
                        value = 0.0
                        for j in range(q0, q1):
                            col = gg[r0:r1, j]
                            pos, neg = col[col > 0].sum(), -col[col < 0].sum()
                            value = max(value, v * (pos + neg if signed_inputs else max(pos, neg)))
                    else:
                        seen = [abs(currents[key][b, j]) for key in currents if key[0] == s and key[1] == t
                                and key[3] == o for b in range(calibration.shape[0]) for j in range(q0, q1)]
                        value = float(np.percentile(seen, hw.adc.percentile))
                    values[q0:q1] = value
                i_max[(s, t, o)] = values
    return i_max


def ref_crossbar_ranges(x, kernel, bias, hw, x_max, signed_inputs, i_max, conductances=None):
    """The noise-free chain of ref_crossbar with the ADC ranges ``i_max`` ({(s, t, o): (n_out,)}) given.

    Returns (out, one_code, saturated): out (batch, n_out) float64; one_code (n_out,), what one code
    step in every conversion of an output adds up to in output units (the tolerance of float32 decision
    levels); saturated, the number of conversions clipped at the lowest or highest code. A zero range
    (a calibrated ADC whose tile saw no current, e.g. a weight slice of zero digits) converts to 0.
    """
    layout = ref_layout(kernel, bias, hw, x_max, conductances)
    currents = ref_adc_input_currents(x, kernel, bias, hw, x_max, signed_inputs, conductances)
    bits = hw.adc.bits
    signed_adc = layout["analog"] or signed_inputs
    xs = np.hstack([x, np.full((x.shape[0], 1), x_max)]) if layout["bias_row"] else np.asarray(x, np.float64)
    slices, d = ref_dac_slices(xs, hw, x_max, signed_inputs)
    batch, n_out = x.shape[0], np.asarray(kernel).shape[1]
    out, one_code, saturated = np.zeros((batch, n_out)), np.zeros(n_out), 0
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed_adc else (0, 2**bits - 1)
    for (s, t, k, o), current in currents.items():
        sign = _ref_operands(layout, s)[o][0]
        factor = layout["c"][s] * d[k] * layout["scale"]
        for j in range(n_out):
            if bits and i_max[(s, t, o)][j] == 0:
                continue
            if bits:
                step = ref_adc_code(0.0, i_max[(s, t, o)][j], bits, signed_adc)[1]
                one_code[j] += step * factor
            for b in range(batch):
                value = current[b, j]
                if bits:
                    code, step = ref_adc_code(value, i_max[(s, t, o)][j], bits, signed_adc)
                    saturated += code in (lo, hi) and abs(value / step) > abs(code) + 0.5
                    value = code * step
                out[b, j] += sign * value * factor
    if not layout["differential"]:
        dev = hw.device
        xq = sum(dk * xk for dk, xk in zip(d, slices))
        out -= (xq.sum(axis=1) * (dev.g_min_us / (dev.g_max_us - dev.g_min_us) * sum(layout["c"]) + 0.5)
                * 2 * layout["w_scale"] * x_max)[:, None]
    if bias is not None and not layout["bias_row"]:
        out += bias
    return out, one_code, saturated


def ref_sigma_us(g, model, scale, v_read_v):
    """Published width sigma(G) (uS) of a conductance error at G = ``g`` (uS), times ``scale``.

    reram-program: 4.782 uS - 0.009107 G (Milo et al., IRPS 2021). sonos-program and sonos-read give
    sigma of the read current I = G V_read in nA: 19.89 (1 - exp(-I / 176.3)) and
    12.58 (1 - exp(-I / 215.4)) (Agrawal et al., IEDM 2022), so sigma_G = sigma_I / V_read, with
    1 nA / V = 1e-3 uS. pcm-program: 0.26348 + 1.9650 x - 1.1731 x^2 uS, x = G / 25 uS (Joshi et al.,
    Nature Comm. 2020, IBM aihwkit's fit). Valid inside each technology's range, where all are positive.
    """
    g = np.asarray(g, np.float64)
    if model == "reram-program":
        sigma = 4.782 - 0.009107 * g
    elif model in ("sonos-program", "sonos-read"):
        amplitude_na, knee_na = (19.89, 176.3) if model == "sonos-program" else (12.58, 215.4)
        current_na = g * v_read_v * 1e3  # uS x V = uA
        sigma = amplitude_na * (1.0 - np.exp(-current_na / knee_na)) * 1e-3 / v_read_v
    elif model == "pcm-program":
        x = g / 25.0
        sigma = 0.26348 + 1.9650 * x - 1.1731 * x**2
    else:
        raise AssertionError(f"no reference for error model {model}")
    return scale * sigma
