"""Drift compensation: a digital scale on a layer's outputs, from a calibration read at read time.

Conductances drift as G (t / t0)^-nu after programming (:mod:`.devices`), so outputs shrink over time. The chip
reads known inputs right after programming (t0) and again at read time t, and rescales every later output
digitally by alpha:

- ``global``: one alpha per layer, sum |y(t0)| / sum |y(t)| over all its outputs, as aihwkit's global drift
  compensation;
- ``column``: one alpha per output column j, the least-squares fit of y_j(t0) by alpha y_j(t),
  sum_b y_bj(t0) y_bj(t) / sum_b y_bj(t)^2. The ratio of magnitudes would be unstable here: where a column's
  positive and negative parts nearly cancel, its sum |y(t)| can come close to zero as G+ and G- drift apart
  (an alpha of 15 was seen on the shipped CNN); the fit then shrinks alpha instead, since y(t) no longer
  resembles y(t0).

The known inputs are calibration activations of the layer, kept at programming; the reads are noise-free
products of the programmed conductances (the chip's effective weights, errors included) at t0 and at t.
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

    A layer (or column) whose outputs at read time are all zero keeps alpha = 1.
    """
    if mode == DriftCompensation.NONE:
        return None
    inputs = np.asarray(inputs, np.float64)
    outputs = []
    for weights, bias in (at_t0, at_t):
        y = inputs @ np.asarray(weights, np.float64)
        if bias is not None:
            y += bias
        outputs.append(y)
    before, now = outputs
    if mode == DriftCompensation.GLOBAL:
        numerator = np.full(now.shape[1], np.abs(before).sum())
        denominator = np.full(now.shape[1], np.abs(now).sum())
    else:
        numerator, denominator = (before * now).sum(axis=0), (now * now).sum(axis=0)
    alpha = np.ones(now.shape[1])
    np.divide(numerator, denominator, out=alpha, where=denominator > 0)
    return alpha.astype(np.float32)
