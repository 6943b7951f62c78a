"""Device-table kernels: programming and drift drawn per level of a measured table (:mod:`xbar.device_table`).

Like :mod:`.devices`, they act on flat conductance arrays (uS) whose index is the device's counter in its
stream, so every draw depends on (key, device index) only, whatever the threads. ``level[k]`` is the table
level device k was programmed to.
"""

import math

import numpy as np

from ._jit import pjit, prange
from .rng import normal, uniform


@pjit
def program_levels(g, level, mean, sigma, key):
    """``g[k] = mean[l] + sigma[l] z_k`` with l = level[k] and z_k = normal(key, k), formed in float64.

    With ``mean`` the levels' targets and one ``sigma`` for all, these are the additive model's draws
    (:func:`.devices.add_scaled_normal` on the same key), bit for bit.
    """
    for k in prange(g.size):
        lv = level[k]
        g[k] = mean[lv] + sigma[lv] * normal(key, np.uint64(k))


@pjit
def program_empirical(g, level, samples, offsets, key):
    """``g[k]`` drawn from level l = level[k]'s measured samples by inverse-CDF sampling, u_k = uniform(key, k).

    ``samples`` holds every level's samples sorted ascending, level l's at ``offsets[l] .. offsets[l + 1] - 1``.
    The inverse CDF interpolates linearly between order statistics: p = u (n - 1), j = floor(p),
    G = s_j + (p - j) (s_{j+1} - s_j) (:meth:`xbar.device_table.DeviceTable.quantile`).
    """
    for k in prange(g.size):
        lv = level[k]
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


@pjit
def nearest_levels(g, midpoints, out):
    """``out[k]`` = the index of the level nearest to ``g[k]``: the number of ``midpoints`` (between adjacent
    levels, ascending) below it, so a tie goes to the lower level (numpy's ``searchsorted(side="left")``)."""
    for k in prange(g.size):
        x = g[k]
        lo, hi = 0, midpoints.size
        while lo < hi:
            mid = (lo + hi) // 2
            if midpoints[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        out[k] = lo
