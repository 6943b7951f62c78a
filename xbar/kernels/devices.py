"""Device kernels: conductance-dependent error widths, programming error, stuck-at faults, drift.

All act in place on a flat float32 array of conductances (uS) whose index is
the device's counter in its stream, so a device's draws do not depend on how
the work is split across threads.
"""

import math

import numpy as np

from ._jit import jit, pjit, prange
from .rng import normal, uniform

# Error model codes (xbar.config.ErrorModel, in order).
ADDITIVE, PROPORTIONAL, RERAM_PROGRAM, SONOS_PROGRAM, SONOS_READ, PCM_PROGRAM = range(6)


@jit
def sigma_of_g(g, model, scale, g_min, g_max, v_read):
    """Error width (uS) of a device at conductance ``g`` (uS) under error model ``model``.

    Notes
    -----
    additive: scale (g_max - g_min); proportional: scale g;
    reram-program: scale (4.782 - 0.009107 g) (Milo et al. 2021);
    sonos-program: scale 19.89 nA (1 - exp(-I / 176.3 nA)) / V_read with I = g V_read
    (Agrawal et al. 2022); sonos-read: the same with 12.58 nA and 215.4 nA;
    pcm-program: scale (0.26348 + 1.9650 x - 1.1731 x^2), x = g / 25 uS (Joshi et al. 2020).
    nA / V = 1e-3 uS.
    """
    if model == ADDITIVE:
        return scale * (g_max - g_min)
    if model == PROPORTIONAL:
        return scale * abs(g)
    if model == RERAM_PROGRAM:
        return scale * max(4.782 - 0.009107 * g, 0.0)
    if model == SONOS_PROGRAM or model == SONOS_READ:
        i_na = g * v_read * 1e3
        amp, knee = (19.89, 176.3) if model == SONOS_PROGRAM else (12.58, 215.4)
        return scale * amp * (1.0 - math.exp(-max(i_na, 0.0) / knee)) / v_read * 1e-3
    if model == PCM_PROGRAM:
        x = g / 25.0
        return scale * max(0.26348 + 1.9650 * x - 1.1731 * x * x, 0.0)
    return math.nan


@pjit
def sigma_map(g, model, scale, g_min, g_max, v_read, out):
    """``out[k] = sigma_of_g(g[k], ...)`` over flat arrays (uS)."""
    for k in prange(g.size):
        out[k] = sigma_of_g(g[k], model, scale, g_min, g_max, v_read)


@pjit
def add_programming_error(g, key, model, scale, g_min, g_max, v_read):
    """``g[k] += sigma_of_g(g[k]) z_k`` in place, z_k = normal(key, k): static error of a chip instance."""
    for k in prange(g.size):
        s = sigma_of_g(g[k], model, scale, g_min, g_max, v_read)
        g[k] = g[k] + s * normal(key, np.uint64(k))


@pjit
def apply_stuck(g, key, stuck_on, stuck_off, g_min, g_max):
    """Stuck-at faults in place: with u_k = uniform(key, k), u_k < stuck_on -> g_max;
    stuck_on <= u_k < stuck_on + stuck_off -> g_min."""
    for k in prange(g.size):
        u = uniform(key, np.uint64(k))
        if u < stuck_on:
            g[k] = g_max
        elif u < stuck_on + stuck_off:
            g[k] = g_min


@pjit
def apply_drift(g, key, nu_mean, nu_std, log_time_ratio):
    """Drift in place: g_k <- g_k (t / t0)^(-nu_k), nu_k = nu_mean + nu_std normal(key, k).

    ``log_time_ratio`` is ln(t / t0).
    """
    for k in prange(g.size):
        nu = nu_mean + nu_std * normal(key, np.uint64(k))
        g[k] = g[k] * math.exp(-nu * log_time_ratio)
