"""Training the paper's networks with PyTorch (the ``train`` extra) and exporting them.

The torch model mirrors a numpy :class:`~xbar.nets.Network` layer for layer
(same NHWC layout, HWIO kernels, flatten order), starts from its seeded
weights and writes the trained values back, so what is saved is exactly what
was trained. ``sigma_neu`` adds N(0, sigma_neu) to the pre-activation of every
hidden bounded ReLU during training only (the paper's noise-prepared
networks); the output logits get no noise.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import __version__, data
from .errors import XbarError
from .nets import build
from .nets.network import Network

MAX_LR = 10.0
"""Largest Adam learning rate accepted: far above any that trains, low enough to stay finite."""
MAX_SEED = 2**63 - 1
"""Largest seed of a training run, a chip or a sweep (chip seeds are 63-bit hashes of it)."""
MAX_HIDDEN = 65536
"""Widest MLP hidden layer (its 784 x hidden float32 kernel is then 205 MB)."""
MAX_BATCH = 60000
"""Largest batch: the whole training set."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (all recorded in the weights file)."""

    arch: str = "mlp"
    dataset: str = "mnist"
    hidden: int = 300
    """MLP hidden size."""
    timesteps: int = 7
    """RNN time steps (must divide 784)."""
    sigma_neu: float = 0.0
    """Std of the Gaussian noise added before every hidden activation in training (activation units)."""
    epochs: int = 15
    batch_size: int = 128
    lr: float = 1e-3
    """Adam learning rate at the start of the cosine schedule."""
    augment_shift_px: int = 0
    """Random translation of each training image by up to this many pixels (0 = none)."""
    seed: int = 0
    train_limit: int | None = None
    """Use only the first N training images (for quick tests)."""
    max_steps: int | None = None
    """Stop after this many optimiser steps (for quick tests)."""
    holdout: int = 0
    """Keep the last N training images out of training (a validation set for choosing hyper-parameters)."""

    def __post_init__(self):
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise XbarError(message)

        check(math.isfinite(self.lr) and 0 < self.lr <= MAX_LR, f"lr must be in (0, {MAX_LR:g}], got {self.lr}")
        check(math.isfinite(self.sigma_neu) and self.sigma_neu >= 0, f"sigma_neu must be >= 0, got {self.sigma_neu}")
        check(0 <= self.seed <= MAX_SEED, f"seed must be in [0, 2^63 - 1], got {self.seed}")
        check(1 <= self.hidden <= MAX_HIDDEN, f"hidden must be in [1, {MAX_HIDDEN}], got {self.hidden}")
        check(
            self.timesteps >= 1 and 784 % self.timesteps == 0,
            f"timesteps must divide 784 (1, 2, 4, 7, 8, 14, 16, 28, 49, 56, 98, 112, 196, 392, 784), "
            f"got {self.timesteps}",
        )
        check(1 <= self.batch_size <= MAX_BATCH, f"batch_size must be in [1, {MAX_BATCH}], got {self.batch_size}")
        check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        check(self.holdout >= 0, f"holdout must be >= 0, got {self.holdout}")


def _require_torch():
    try:
        import torch
    except ImportError:
        raise XbarError("training needs PyTorch: pip install -e '.[train]'") from None
    return torch


def _torch_module(network: Network, sigma_neu: float, generator):
    """A torch.nn.Module computing the same function as ``network`` (a chain: training builds the paper's)."""
    if not network.is_chain:
        raise XbarError("training supports chains of layers, not graphs (residual or concatenated branches)")
    torch: Any = _require_torch()
    nn = torch.nn

    class TorchNet(nn.Module):  # type: ignore[name-defined]  # torch is imported at run time, untyped here
        def __init__(self):
            super().__init__()
            self.kernels = nn.ParameterList()
            self.biases = nn.ParameterList()
            self.bias_index = []
            for layer in network.weight_layers:
                self.kernels.append(nn.Parameter(torch.from_numpy(layer.kernel.copy())))
                if layer.bias is None:
                    self.bias_index.append(None)
                else:
                    self.bias_index.append(len(self.biases))
                    self.biases.append(nn.Parameter(torch.from_numpy(layer.bias.copy())))

        def _act(self, z, activation):
            if activation != "brelu":
                return z
            if self.training and sigma_neu > 0:
                z = z + sigma_neu * torch.randn(z.shape, generator=generator)
            return z.clamp(0.0, 1.0)

        def forward(self, x):
            x = x.reshape((x.shape[0],) + network.input_shape)
            w = 0
            for layer in network.layers:
                # Each layer kind mirrors itself in torch (Layer.torch_forward); weight layers take
                # their trainable kernel and bias in the order of network.weight_layers.
                kernel = bias = None
                if layer.has_weights:
                    kernel = self.kernels[w]
                    bias = None if self.bias_index[w] is None else self.biases[self.bias_index[w]]
                    w += 1
                x = layer.torch_forward(torch, x, kernel, bias, self._act)
            return x

        def export(self):
            for i, layer in enumerate(network.weight_layers):
                layer.kernel = self.kernels[i].detach().numpy().astype(np.float32).copy()
                if self.bias_index[i] is not None:
                    layer.bias = self.biases[self.bias_index[i]].detach().numpy().astype(np.float32).copy()
            return network

    return TorchNet()


def torch_forward(network: Network, x: np.ndarray) -> np.ndarray:
    """Logits of ``network`` computed by its torch mirror (for cross-checking the numpy layers)."""
    torch = _require_torch()
    module = _torch_module(network, 0.0, None).eval()
    with torch.no_grad():
        return module(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def _shift(torch, images, max_shift, generator):
    """Translate each image by independent integer offsets in [-max_shift, max_shift], zero fill."""
    n, h, w = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n, 1, 1), generator=generator)
    rows = dy + torch.arange(h).view(1, h, 1)
    cols = dx + torch.arange(w).view(1, 1, w)
    return padded[torch.arange(n).view(n, 1, 1), rows, cols]


def accuracy(network: Network, images: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``images`` that ``network`` (ideal float32) classifies correctly."""
    return float(np.mean(network.predict(images) == labels))


def train(
    config: TrainConfig, progress: Callable[[int, int, float], None] | None = None
) -> tuple[Network, list[float]]:
    """Train a network as ``config`` says.

    Parameters
    ----------
    config : TrainConfig
    progress : callable(step, total_steps, loss), optional
        Called after every optimiser step.

    Returns
    -------
    network : Network
        Trained weights, provenance filled in (including ideal test accuracy).
    losses : list of float
        Training loss (cross-entropy, nats) of every step.
    """
    torch = _require_torch()
    network = build(config.arch, config.dataset, hidden=config.hidden, timesteps=config.timesteps, seed=config.seed)
    train_x, train_y = data.load(config.dataset, "train", limit=config.train_limit)
    if config.holdout:
        if config.holdout >= len(train_x):
            raise XbarError(f"holdout {config.holdout} leaves no training images of {len(train_x)}")
        train_x, train_y = train_x[: -config.holdout], train_y[: -config.holdout]
    test_x, test_y = data.load(config.dataset, "test")

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = _torch_module(network, config.sigma_neu, generator)
    images = torch.from_numpy(train_x)
    labels = torch.from_numpy(train_y)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    step = 0
    while step < total:
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), config.batch_size):
            batch = order[start : start + config.batch_size]
            x = images[batch]
            if config.augment_shift_px:
                x = _shift(torch, x, config.augment_shift_px, generator)
            loss = torch.nn.functional.cross_entropy(model(x), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                raise XbarError(
                    f"training diverged at step {step + 1} (loss {losses[-1]}); try a smaller learning rate than "
                    f"{config.lr:g}"
                )
            step += 1
            if progress is not None:
                progress(step, total, losses[-1])
            if step >= total:
                break
    seconds = time.perf_counter() - started
    network = model.export()
    epochs_done = step / steps_per_epoch
    network.provenance = {
        **network.provenance,
        **{k: v for k, v in asdict(config).items() if v is not None},
        "epochs": int(round(epochs_done)) if epochs_done >= 1 else 0,
        "epochs_fraction": epochs_done,
        "steps": step,
        "optimizer": "Adam, cosine decay to 0, cross-entropy loss",
        "n_train": len(images),
        "train_seconds": round(seconds, 1),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "xbar_version": __version__,
        "python": platform.python_version(),
        "timesteps": config.timesteps if config.arch in ("rnn", "srnn") else -1,
        "test_accuracy": accuracy(network, test_x, test_y),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return network, losses
