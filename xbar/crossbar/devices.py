"""Devices: a chip instance's static errors on its target conductances, and the width of its read noise.

Static errors, in this order, each drawn from its own counter-based stream
keyed by (purpose, seed, layer, weight slice, side) so that every device's draw
is the same however the work is split: programming error (the model named by
``device.prog_model``, :mod:`xbar.device_models`, or a measured device table's
level, :mod:`xbar.device_table`), clipping to [g_min, g_max], stuck-at faults,
drift G (t / t0)^-nu read at ``device.read_time_s`` (nu per level from a table's
``nu`` column).
"""

from __future__ import annotations

import math

import numpy as np

from ..config import TABLE_READ_MODEL, Device
from ..device_models import error_model
from ..kernels import devices as kernels
from ..kernels import tables as table_kernels
from ..kernels.rng import derive_key

# Purpose tags of the random streams (DESIGN.md section 2: keys are (seed, purpose, layer, ...)).
PURPOSE_PROGRAM, PURPOSE_STUCK, PURPOSE_DRIFT, PURPOSE_READ = 11, 12, 13, 14


def program_devices(
    targets: np.ndarray, device: Device, seed: int, layer: int, weight_slice: int, side: int
) -> np.ndarray:
    """The conductances (uS, float32) that devices programmed to ``targets`` hold on this chip instance.

    ``targets`` (float32, any shape) is changed in place and returned.
    """
    flat = np.ascontiguousarray(targets).reshape(-1)
    ids = (seed, layer, weight_slice, side)
    table = device.device_table
    level = None
    if table is not None:
        # Each device's level is found from its target inside the kernel; kept only where the drift needs it.
        level = np.empty(flat.size if table.nu is not None else 0, np.int32)
        midpoints = (table.targets_us[1:] + table.targets_us[:-1]) / 2
        key = derive_key(PURPOSE_PROGRAM, *ids)
        if table.samples_us is not None:
            table_kernels.program_empirical(flat, midpoints, table.samples_us, table.offsets, key, level)
        else:
            table_kernels.program_levels(flat, midpoints, table.mean_us, table.prog_sigma_us, key, level)
    elif device.prog_sigma > 0:
        sigma = error_model(device.prog_model).sigma_us(
            flat, device.prog_sigma, device.g_min_us, device.g_max_us, device.v_read_v
        )
        kernels.add_scaled_normal(flat, sigma, derive_key(PURPOSE_PROGRAM, *ids))
        del sigma
    if device.clip:
        np.clip(flat, device.g_min_us, device.g_max_us, out=flat)
    if device.stuck_on > 0 or device.stuck_off > 0:
        kernels.apply_stuck(
            flat,
            derive_key(PURPOSE_STUCK, *ids),
            device.stuck_on,
            device.stuck_off,
            np.float32(device.g_min_us),
            np.float32(device.g_max_us),
        )
    if table is not None and table.nu is not None:
        assert level is not None and table.nu_sigma is not None
        table_kernels.drift_levels(
            flat,
            level,
            table.nu,
            table.nu_sigma,
            derive_key(PURPOSE_DRIFT, *ids),
            math.log(device.read_time_s / device.drift_t0_s),
        )
    elif device.drifts:
        kernels.apply_drift(
            flat,
            derive_key(PURPOSE_DRIFT, *ids),
            device.drift_nu_mean,
            device.drift_nu_std,
            math.log(device.read_time_s / device.drift_t0_s),
        )
    return flat.reshape(targets.shape)


def has_read_noise(device: Device) -> bool:
    """Whether reads draw noise: a read-noise width above zero."""
    return device.read_sigma > 0


def read_sigmas(g: np.ndarray, device: Device) -> np.ndarray:
    """Read-noise width (uS, float32) of every device of ``g`` under ``device.read_model``.

    The ``table`` model interpolates the table's ``read_sigma_us`` linearly in G between its levels (constant
    beyond the first and last), times ``device.read_sigma``.
    """
    if device.read_model == TABLE_READ_MODEL:
        table = device.device_table
        assert table is not None and table.read_sigma_us is not None  # checked by Device
        flat = np.ascontiguousarray(g, dtype=np.float64).reshape(-1)
        width = device.read_sigma * np.interp(flat, table.targets_us, table.read_sigma_us)
        return width.astype(np.float32).reshape(g.shape)
    sigma = error_model(device.read_model).sigma_us(
        np.ascontiguousarray(g).reshape(-1),
        device.read_sigma,
        device.g_min_us,
        device.g_max_us,
        device.v_read_v,
        dtype=np.float32,
    )
    return sigma.reshape(g.shape)


def uniform_read_noise(device: Device) -> bool:
    """Whether every device has the same read-noise width (then a column's variance needs no product)."""
    return device.read_model != TABLE_READ_MODEL and error_model(device.read_model).form == "range"
