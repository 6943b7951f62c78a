"""Device kernels: conductance-dependent error widths, programming error, stuck-at faults, drift.

All act on flat arrays of conductances (uS) whose index is the device's
counter in its stream, so a device's draws do not depend on how the work is
split across threads.

An error width sigma(G) is one of a few closed forms (``FORMS``), each taking
a parameter vector; the device models of :mod:`xbar.device_models` name a form
and its parameters, so a new published fit is a new registry entry, not a new
kernel.
"""

import math

import numpy as np

from ._jit import jit, pjit, prange
from .rng import normal, uniform

# The closed forms of sigma(G) (uS); ``p`` is the model's parameter vector (float64).
RANGE = 0
"""scale (g_max - g_min)."""
PROPORTIONAL = 1
"""scale |G|."""
CLAMPED_QUADRATIC = 2
"""scale max(p0 + p1 x + p2 x^2, 0) uS with x = G / p3."""
SATURATING_CURRENT = 3
"""scale p0 nA (1 - exp(-I / p1 nA)) / V_read with I = G V_read: a current noise that saturates (nA / V = 1e-3 uS)."""
SQRT = 4
"""scale sqrt(max(G, 0) (g_max - g_min)): variance proportional to the conductance (to the current, at a given
input), as shot noise; scale (g_max - g_min) at the top of a range that starts at zero."""
FORMS = {
    "range": RANGE,
    "proportional": PROPORTIONAL,
    "clamped-quadratic": CLAMPED_QUADRATIC,
    "saturating-current": SATURATING_CURRENT,
    "sqrt": SQRT,
}


@jit
def sigma_of_g(g, form, p, scale, g_min, g_max, v_read):
    """Error width (uS) of a device at conductance ``g`` (uS) under closed form ``form`` with parameters ``p``."""
    if form == RANGE:
        return scale * (g_max - g_min)
    if form == PROPORTIONAL:
        return scale * abs(g)
    if form == CLAMPED_QUADRATIC:
        x = g / p[3]
        return scale * max(p[0] + p[1] * x + p[2] * x * x, 0.0)
    if form == SATURATING_CURRENT:
        i_na = g * v_read * 1e3
        return scale * p[0] * (1.0 - math.exp(-max(i_na, 0.0) / p[1])) / v_read * 1e-3
    if form == SQRT:
        return scale * math.sqrt(max(g, 0.0) * (g_max - g_min))
    return math.nan


@pjit
def sigma_map(g, form, p, scale, g_min, g_max, v_read, out):
    """``out[k] = sigma_of_g(g[k], ...)`` over flat arrays (uS); ``out`` float32 or float64."""
    for k in prange(g.size):
        out[k] = sigma_of_g(g[k], form, p, scale, g_min, g_max, v_read)


@pjit
def add_scaled_normal(g, sigma, key):
    """``g[k] += sigma[k] z_k`` in place, z_k = normal(key, k): the static programming error of a chip instance.

    ``sigma`` is float64 (uS), so that the sum is formed in float64 and rounded once into float32 ``g``.
    """
    for k in prange(g.size):
        g[k] = g[k] + sigma[k] * normal(key, np.uint64(k))


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
