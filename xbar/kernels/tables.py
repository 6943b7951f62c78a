"""Device-table kernels: programming and drift drawn per level of a measured table (:mod:`xbar.device_table`).

Like :mod:`.devices`, they act on flat conductance arrays (uS) whose index is the device's counter in its
stream, so every draw depends on (key, device index) only, whatever the threads. A device's level is the table
level nearest to its target conductance, found from the ``midpoints`` between adjacent levels (ascending).
"""

import math

import numpy as np

from ._jit import jit, pjit, prange
from .rng import normal, uniform

_LINEAR_SEARCH = 32
"""Up to this many midpoints a level is found by comparing with all of them, without branches (a binary
search mispredicts at every level boundary); beyond, by a binary search."""


@jit
def level_of(x, midpoints):
    """Index of the level nearest to ``x``: the number of ``midpoints`` below it, so a tie goes to the lower
    level (numpy's ``searchsorted(midpoints, x, side="left")``)."""
    n = midpoints.size
    if n <= _LINEAR_SEARCH:
        below = 0
        for m in range(n):
            below += midpoints[m] < x
        return below
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if midpoints[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@pjit
def nearest_levels(g, midpoints, out):
    """``out[k] = level_of(g[k], midpoints)`` over a flat array."""
    for k in prange(g.size):
        out[k] = level_of(g[k], midpoints)


@pjit
def program_levels(g, midpoints, mean, sigma, key, levels_out):
    """``g[k] = mean[l] + sigma[l] z_k``, l the level of target ``g[k]`` and z_k = normal(key, k), in float64.

    With ``mean`` the levels' targets and one ``sigma`` for all, these are the additive model's draws
    (:func:`.devices.add_scaled_normal` on the same key), bit for bit. Each device's level is written to
    ``levels_out`` when it has ``g.size`` entries (for the drift that follows), else not.
    """
    keep = levels_out.size == g.size
    for k in prange(g.size):
        lv = level_of(g[k], midpoints)
        if keep:
            levels_out[k] = lv
        g[k] = mean[lv] + sigma[lv] * normal(key, np.uint64(k))


@pjit
def program_empirical(g, midpoints, samples, offsets, key, levels_out):
    """``g[k]`` drawn from the measured samples of its level l by inverse-CDF sampling, u_k = uniform(key, k).

    ``samples`` holds every level's samples sorted ascending, level l's at ``offsets[l] .. offsets[l + 1] - 1``.
    The inverse CDF interpolates linearly between order statistics: p = u (n - 1), j = floor(p),
    G = s_j + (p - j) (s_{j+1} - s_j) (:meth:`xbar.device_table.DeviceTable.quantile`). ``levels_out`` as for
    :func:`program_levels`.
    """
    keep = levels_out.size == g.size
    for k in prange(g.size):
        lv = level_of(g[k], midpoints)
        if keep:
            levels_out[k] = lv
        start = offsets[lv]
        n = offsets[lv + 1] - start
        p = uniform(key, np.uint64(k)) * (n - 1)
        j = min(int(math.floor(p)), n - 1)
        if j + 1 < n:
            g[k] = samples[start + j] + (p - j) * (samples[start + j + 1] - samples[start + j])
        else:
            g[k] = samples[start + j]


@pjit
def drift_levels(g, level, nu_mean, nu_std, key, log_time_ratio):
    """Drift in place, per level: g_k <- g_k (t / t0)^(-nu_k), nu_k = nu_mean[l] + nu_std[l] normal(key, k).

    ``log_time_ratio`` is ln(t / t0); the draw is :func:`.devices.apply_drift`'s with the level's nu.
    """
    for k in prange(g.size):
        lv = level[k]
        nu = nu_mean[lv] + nu_std[lv] * normal(key, np.uint64(k))
        g[k] = g[k] * math.exp(-nu * log_time_ratio)
