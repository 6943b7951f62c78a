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
    batch, (n_in, n_out) = x.shape[0], kernel.shape
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
