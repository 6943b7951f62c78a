"""One chip instance from end to end: program it, run the test set, count its energy.

Shared by ``xbar run`` and the sweep tasks, so that a sweep row and a run with
the same weights, hardware and seed give the same accuracy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import ErrorModel, Hardware, apply_overrides
from .crossbar import program
from .energy import energy_report
from .evaluate import evaluate
from .kernels.rng import derive_key
from .nets.network import Network

SYN_MODES = ("static", "read")


def chip_seed(seed: int, index: int) -> int:
    """Seed of chip instance ``index`` derived from the user's ``seed`` (a 63-bit hash)."""
    return int(derive_key(seed, index)) & 0x7FFFFFFFFFFFFFFF


def with_sigma_syn(hw: Hardware, sigma_syn: float | None, syn_mode: str = "static") -> Hardware:
    """The paper's synaptic noise: additive, relative to the conductance range, static (programming
    error) or drawn at every read (``syn_mode = "read"``). None leaves ``hw`` as it is."""
    if sigma_syn is None:
        return hw
    prefix = {"static": "prog", "read": "read"}[syn_mode]
    return apply_overrides(hw, {f"device.{prefix}_model": ErrorModel.ADDITIVE.value,
                                f"device.{prefix}_sigma": float(sigma_syn)})


@dataclass(frozen=True)
class ChipResult:
    """Outcome of one chip instance on a test set."""

    accuracy: float
    n_images: int
    seconds: float
    """Inference wall time (s)."""
    program_seconds: float
    energy: dict | None
    """:func:`xbar.energy.energy_report` of the run, or None for float32 inference."""


def run_chip(network: Network, hw: Hardware | None, images: np.ndarray, labels: np.ndarray, seed: int, *,
             sigma_te: float = 0.0, batch_size: int | None = None,
             progress: Callable[[int], None] | None = None) -> ChipResult:
    """Program chip instance ``seed`` of ``hw`` (None: ideal float32), run ``images``, count its energy.

    The input noise of ``sigma_te`` is drawn from the same seed, so each chip
    instance sees its own noisy test set; converter ranges are calibrated on the
    first ``hw.calibration_images`` clean images.
    """
    forward, chip, program_seconds = None, None, 0.0
    if hw is not None:
        started = time.perf_counter()
        chip = program(network, hw, seed, images[:hw.calibration_images])
        program_seconds = time.perf_counter() - started
        forward = chip.forward
    result = evaluate(network, images, labels, sigma_te=sigma_te, seed=seed, forward=forward,
                      batch_size=batch_size, progress=progress)
    energy = None if chip is None else energy_report(chip, len(images))
    return ChipResult(result.accuracy, result.n_images, result.seconds, program_seconds, energy)
