"""Accuracy of a network on a test set, with the paper's input ("external") noise.

This is where a chip instance meets the data: a seed fixes the input noise
draw, ``matmuls`` says which hardware computes the products (ideal float32 by
default), and the result is accuracy and throughput.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .nets.network import Network

#: Purpose tags mixed into seeds so that each kind of random draw has its own stream.
PURPOSE_INPUT_NOISE = 1


def input_noise(shape: tuple[int, ...], sigma_te: float, seed: int) -> np.ndarray:
    """The paper's external noise: N(0, sigma_te) per pixel (pixel units, images in [0, 1]).

    The draw depends only on ``seed`` and ``shape``, never on batching, so a
    seed names one noisy test set.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), PURPOSE_INPUT_NOISE]))
    return (sigma_te * rng.standard_normal(shape)).astype(np.float32)


@dataclass(frozen=True)
class Evaluation:
    """Outcome of running one chip instance on a test set."""

    accuracy: float
    """Fraction of images classified correctly, in [0, 1]."""
    n_images: int
    seconds: float
    """Wall time of the forward passes (s), data loading excluded."""

    @property
    def images_per_second(self) -> float:
        """Throughput of the forward passes (images/s)."""
        return self.n_images / self.seconds if self.seconds > 0 else float("inf")


def evaluate(network: Network, images: np.ndarray, labels: np.ndarray, *,
             sigma_te: float = 0.0, seed: int = 0,
             forward: Callable[[np.ndarray, int], np.ndarray] | None = None, batch_size: int | None = None,
             progress: Callable[[int], None] | None = None) -> Evaluation:
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
        Images per forward pass (default: :meth:`Network.batch_size_for`); results do not depend on it.
    progress : callable(n_done), optional
        Called after each batch with the number of images it held.
    """
    if sigma_te > 0:
        images = images + input_noise(images.shape, sigma_te, seed)
    batch_size = batch_size or network.batch_size_for()
    if forward is None:
        matmuls = network.ideal_matmuls()
        forward = lambda batch, offset: network.forward(batch, matmuls)  # noqa: E731
    correct = 0
    started = time.perf_counter()
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        predicted = forward(batch, start).argmax(axis=1)
        correct += int(np.sum(predicted == labels[start:start + batch_size]))
        if progress is not None:
            progress(len(batch))
    seconds = time.perf_counter() - started
    n = len(images)
    return Evaluation(accuracy=correct / n if n else float("nan"), n_images=n, seconds=seconds)
