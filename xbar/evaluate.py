"""Chip instances on a test set: program, classify, count energy, and aggregate over instances.

This is where a chip instance meets the data. :func:`evaluate` classifies a
test set with the paper's input ("external") noise, on ideal float32 numpy or
on a programmed chip's forward pass; :func:`run_chip` programs chip instance
``seed`` of a hardware description, evaluates it and counts its energy;
:func:`run_chips` does that for several instances and aggregates them (mean,
standard deviation and 95% confidence interval of the accuracy, mean energy).
``xbar run`` is :func:`run_chips`; every sweep task is one :func:`run_chip`, so
a sweep row and a run with the same weights, hardware and seed give the same
accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numba
import numpy as np

from ._threads import map_blocks
from .config import Hardware, apply_overrides
from .crossbar import program
from .energy import PARTS, energy_report
from .kernels.rng import derive_key
from .nets.network import Network
from .stats import summarize

#: Purpose tags mixed into seeds so that each kind of random draw has its own stream.
PURPOSE_INPUT_NOISE = 1

SYN_MODES = ("static", "read")
"""Where the paper's synaptic noise acts: ``static`` programming error, or ``read`` noise at every read."""


def input_noise(shape: tuple[int, ...], sigma_te: float, seed: int) -> np.ndarray:
    """The paper's external noise: N(0, sigma_te) per pixel (pixel units, images in [0, 1]).

    The draw depends only on ``seed`` and ``shape``, never on batching, so a
    seed names one noisy test set.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), PURPOSE_INPUT_NOISE]))
    return (sigma_te * rng.standard_normal(shape)).astype(np.float32)


def chip_seed(seed: int, index: int) -> int:
    """Seed of chip instance ``index`` derived from the user's ``seed`` (a 63-bit hash)."""
    return int(derive_key(seed, index)) & 0x7FFFFFFFFFFFFFFF


def with_sigma_syn(hw: Hardware, sigma_syn: float | None, syn_mode: str = "static") -> Hardware:
    """The paper's synaptic noise: additive, relative to the conductance range, static (programming
    error) or drawn at every read (``syn_mode = "read"``). None leaves ``hw`` as it is."""
    if sigma_syn is None:
        return hw
    prefix = {"static": "prog", "read": "read"}[syn_mode]
    return apply_overrides(hw, {f"device.{prefix}_model": "additive", f"device.{prefix}_sigma": float(sigma_syn)})


@dataclass(frozen=True)
class ChipResult:
    """Outcome of one chip instance (or of ideal float32 inference) on a test set."""

    accuracy: float
    """Fraction of images classified correctly, in [0, 1]."""
    n_images: int
    seconds: float
    """Wall time of the forward passes (s): data loading, programming and energy counts excluded."""
    seed: int
    """Seed of the chip instance and of its input noise draw."""
    program_seconds: float = 0.0
    """Wall time of programming the chip (s); 0 for float32 inference."""
    energy: dict | None = None
    """:func:`xbar.energy.energy_report` of the run, or None for float32 inference."""

    @property
    def images_per_second(self) -> float:
        """Throughput of the forward passes (images/s)."""
        return self.n_images / self.seconds if self.seconds > 0 else float("inf")


IDEAL_BLOCKS_PER_BATCH = 4
"""Blocks of :func:`ideal_forward` in a batch of :func:`ideal_batch_size`: work for every thread of a few cores."""


def ideal_forward(network: Network, block_size: int | None = None) -> Callable[[np.ndarray, int], np.ndarray]:
    """The ideal float32 network as a forward pass ``(images, image_offset) -> logits``, threaded by blocks.

    A batch is cut into blocks of ``block_size`` images (default :meth:`Network.batch_size_for`), and the
    blocks run through the whole network side by side, one per Numba thread, each with one-threaded BLAS
    (:func:`~xbar._threads.map_blocks`), as a chip's forward pass does: the products of a convolutional
    network are small (thousands of rows by 16 to 64 columns), and blocks side by side ran an imported
    ResNet-20 1.3-1.8x faster on 2 cores than every product on both cores in turn (docs/performance.md).
    Where the blocks fall depends on the batch and ``block_size`` only, so the logits are the same bits
    whatever the number of threads.
    """
    matmuls = network.ideal_matmuls()
    block = block_size or network.batch_size_for()

    def forward(images: np.ndarray, image_offset: int = 0) -> np.ndarray:
        bounds = [(start, min(start + block, len(images))) for start in range(0, len(images), block)] or [(0, 0)]
        blocks = map_blocks(
            lambda start, stop: network.forward(images[start:stop], matmuls), bounds, numba.get_num_threads()
        )
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    return forward


def ideal_batch_size(network: Network) -> int:
    """Images per batch of :func:`ideal_forward` in :func:`evaluate`: :data:`IDEAL_BLOCKS_PER_BATCH` blocks."""
    return network.batch_size_for() * IDEAL_BLOCKS_PER_BATCH


def evaluate(
    network: Network,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    sigma_te: float = 0.0,
    seed: int = 0,
    forward: Callable[[np.ndarray, int], np.ndarray] | None = None,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChipResult:
    """Classify ``images`` and compare with ``labels``.

    Parameters
    ----------
    network : Network
    images : ndarray, float32, shape (n, 28, 28), pixels in [0, 1]
    labels : ndarray, int, shape (n,)
    sigma_te : float
        Std of Gaussian noise added to every pixel (pixel units; 0 = none). Not clipped.
    seed : int
        Seed of the input noise draw.
    forward : callable(images, image_offset) -> logits, optional
        A programmed chip's forward pass (default: the ideal float32 network).
    batch_size : int, optional
        Images per forward pass (default: :meth:`Network.batch_size_for`, or :func:`ideal_batch_size` for the
        ideal network). Accuracy does not depend on it; logits may, in their last bits, where BLAS rounds
        products of other sizes otherwise.
    progress : callable(n_done), optional
        Called after each batch with the number of images it held.

    Returns
    -------
    ChipResult
        Accuracy and inference time; no programming time and no energy (see :func:`run_chip`).
    """
    if sigma_te > 0:
        images = images + input_noise(images.shape, sigma_te, seed)
    if forward is None:
        forward = ideal_forward(network)
        batch_size = batch_size or ideal_batch_size(network)
    batch_size = batch_size or network.batch_size_for()
    correct = 0
    started = time.perf_counter()
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        predicted = forward(batch, start).argmax(axis=1)
        correct += int(np.sum(predicted == labels[start : start + batch_size]))
        if progress is not None:
            progress(len(batch))
    seconds = time.perf_counter() - started
    n = len(images)
    return ChipResult(accuracy=correct / n if n else float("nan"), n_images=n, seconds=seconds, seed=int(seed))


def run_chip(
    network: Network,
    hw: Hardware | None,
    images: np.ndarray,
    labels: np.ndarray,
    seed: int,
    *,
    sigma_te: float = 0.0,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChipResult:
    """Program chip instance ``seed`` of ``hw`` (None: ideal float32), run ``images``, count its energy.

    The input noise of ``sigma_te`` is drawn from the same seed, so each chip
    instance sees its own noisy test set; converter ranges are calibrated on the
    first ``hw.calibration_images`` clean images.
    """
    forward, chip, program_seconds = None, None, 0.0
    if hw is not None:
        started = time.perf_counter()
        chip = program(network, hw, seed, images[: hw.calibration_images])
        program_seconds = time.perf_counter() - started
        forward = chip.forward
    result = evaluate(
        network, images, labels, sigma_te=sigma_te, seed=seed, forward=forward, batch_size=batch_size, progress=progress
    )
    energy = None if chip is None else energy_report(chip.operation_counts(), chip.hw)
    return replace(result, program_seconds=program_seconds, energy=energy)


@dataclass(frozen=True)
class RunSummary:
    """Chip instances of one network on one test set (:func:`run_chips`), and their aggregate."""

    hardware: Hardware | None
    """The chip simulated, synaptic noise included (None: ideal float32 inference)."""
    sigma_te: float
    """Input noise (pixel units)."""
    seed: int
    """The seed every chip instance's seed is derived from (:func:`chip_seed`)."""
    chips: tuple[ChipResult, ...]
    """One result per chip instance, in order of index."""
    seconds: float
    """Wall time of the whole run: programming, inference and energy counts (s)."""

    @property
    def n_images(self) -> int:
        """Test images per chip instance."""
        return self.chips[0].n_images

    @property
    def chip_seeds(self) -> list[int]:
        return [chip.seed for chip in self.chips]

    @property
    def accuracies(self) -> list[float]:
        return [chip.accuracy for chip in self.chips]

    @property
    def accuracy(self) -> float:
        """Mean accuracy over chip instances."""
        return summarize(self.accuracies)["mean"]

    @property
    def accuracy_std(self) -> float | None:
        """Sample standard deviation (ddof = 1) of the accuracy over chip instances; None for one instance."""
        return summarize(self.accuracies)["std"]

    @property
    def accuracy_ci95(self) -> list[float] | None:
        """95% confidence interval [low, high] of the mean accuracy (Student t on the logit scale,
        :func:`xbar.stats.bounded_interval`); None for one instance."""
        return summarize(self.accuracies)["ci95"]

    @property
    def _energies(self) -> list[dict]:
        return [chip.energy for chip in self.chips if chip.energy is not None]

    @property
    def energy_per_inference_j(self) -> float | None:
        """Mean over chip instances of the energy per inference (J); None for float32 inference."""
        energies = self._energies
        return float(np.mean([e["total_j"] for e in energies])) if energies else None

    @property
    def energy_breakdown(self) -> dict[str, float] | None:
        """Mean over chip instances of the energy per inference of each part of :data:`xbar.energy.PARTS` (J)."""
        energies = self._energies
        if not energies:
            return None
        return {part: float(np.mean([e["parts_j"][part] for e in energies])) for part in PARTS}

    @property
    def program_seconds(self) -> float:
        """Wall time spent programming, all chip instances together (s)."""
        return sum(chip.program_seconds for chip in self.chips)

    @property
    def images_per_second(self) -> float | None:
        """Throughput of the forward passes, all chip instances together (images/s); None if unmeasurable."""
        seconds = sum(chip.seconds for chip in self.chips)
        return self.n_images * len(self.chips) / seconds if seconds > 0 else None

    def to_dict(self, *, weights: str, dataset: str, sigma_syn: float | None, syn_mode: str) -> dict:
        """The report of ``xbar run --json``.

        The summary holds the test set as arrays and the synaptic noise inside
        ``hardware``; the caller names the weights file and the test set, and
        gives the synaptic noise as asked for (None: not asked for).
        """
        return {
            "weights": weights,
            "dataset": dataset,
            "n_images": self.n_images,
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "accuracy_ci95": self.accuracy_ci95,
            "accuracies": self.accuracies,
            "seed": self.seed,
            "chip_seeds": self.chip_seeds,
            "energy_per_inference_j": self.energy_per_inference_j,
            "energy_breakdown": self.energy_breakdown,
            "sigma_te": self.sigma_te,
            "sigma_syn": sigma_syn,
            "syn_mode": syn_mode,
            "seconds": self.seconds,
            "program_seconds": self.program_seconds,
            "images_per_second": self.images_per_second,
            "hardware": None if self.hardware is None else self.hardware.to_dict(),
        }


def run_chips(
    network: Network,
    hw: Hardware | None,
    images: np.ndarray,
    labels: np.ndarray,
    seed: int,
    n_chips: int,
    *,
    sigma_te: float = 0.0,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunSummary:
    """Run chip instances ``0 .. n_chips - 1`` of ``hw`` (None: ideal float32) on ``images``; aggregate them.

    Parameters
    ----------
    network : Network
    hw : Hardware or None
        The chip, synaptic noise included (:func:`with_sigma_syn`).
    images : ndarray, float32, shape (n, 28, 28), pixels in [0, 1]
    labels : ndarray, int, shape (n,)
    seed : int
        Chip instance ``k`` is :func:`run_chip` with seed ``chip_seed(seed, k)``.
    n_chips : int
        Number of chip instances, at least 1.
    sigma_te, batch_size
        As in :func:`run_chip`.
    progress : callable(n_done), optional
        Called after each batch of each chip instance with the number of images it held
        (``n_chips * len(images)`` in all).
    """
    if n_chips < 1:
        raise ValueError(f"n_chips must be at least 1, got {n_chips}")
    started = time.perf_counter()
    chips = tuple(
        run_chip(
            network,
            hw,
            images,
            labels,
            chip_seed(seed, index),
            sigma_te=sigma_te,
            batch_size=batch_size,
            progress=progress,
        )
        for index in range(n_chips)
    )
    return RunSummary(hardware=hw, sigma_te=sigma_te, seed=seed, chips=chips, seconds=time.perf_counter() - started)
