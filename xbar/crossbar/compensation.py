"""Drift compensation: a digital scale on a layer's outputs, from a calibration read at read time.

Conductances drift as G (t / t0)^-nu after programming (:mod:`.devices`), so outputs shrink over time. As
aihwkit's global drift compensation does, the chip reads known inputs right after programming (t0) and again
at read time t, and rescales every later output digitally by alpha = sum |y(t0)| / sum |y(t)|: one alpha per
layer (``global``), or one per output column (``column``). The known inputs are calibration activations of
the layer, kept at programming; the reads are noise-free products of the programmed conductances (the
chip's effective weights, errors included) with and without drift.
"""

from __future__ import annotations

import numpy as np

from ..config import DriftCompensation

REFERENCE_ROWS = 1024
"""Most input vectors per layer in the calibration read (evenly spaced over the calibration batch)."""


def reference_rows(x: np.ndarray) -> np.ndarray:
    """At most :data:`REFERENCE_ROWS` rows of ``x`` (n, n_in), evenly spaced, as float32."""
    step = max(1, -(-x.shape[0] // REFERENCE_ROWS))
    return np.ascontiguousarray(x[::step][:REFERENCE_ROWS], dtype=np.float32)


def output_scales(
    mode: DriftCompensation,
    inputs: np.ndarray,
    at_t0: tuple[np.ndarray, np.ndarray | None],
    at_t: tuple[np.ndarray, np.ndarray | None],
) -> np.ndarray | None:
    """Per-column output scale alpha (float32, (n_out,)), or None for ``none``.

    Parameters
    ----------
    mode : DriftCompensation
    inputs : ndarray (n, n_in)
        The known inputs of the calibration read, in the layer's input units.
    at_t0, at_t : (W (n_in, n_out), analog bias (n_out,) or None)
        The layer's effective weights (weight units) right after programming and at read time.

    A layer (or column) whose outputs at read time sum to zero keeps alpha = 1.
    """
    if mode == DriftCompensation.NONE:
        return None
    inputs = np.asarray(inputs, np.float64)
    magnitudes = []
    for weights, bias in (at_t0, at_t):
        y = inputs @ np.asarray(weights, np.float64)
        if bias is not None:
            y += bias
        magnitudes.append(np.abs(y).sum(axis=0))
    before, now = magnitudes
    if mode == DriftCompensation.GLOBAL:
        before, now = np.full_like(before, before.sum()), np.full_like(now, now.sum())
    alpha = np.ones_like(now)
    np.divide(before, now, out=alpha, where=now > 0)
    return alpha.astype(np.float32)
