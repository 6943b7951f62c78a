"""The golden cases: three shipped MNIST networks x hardware configurations x chip seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xbar import data, io
from xbar.config import resolve
from xbar.crossbar import program
from xbar.energy import energy_report
from xbar.evaluate import with_sigma_syn

ROOT = Path(__file__).resolve().parent.parent.parent
N_IMAGES = 200
SEEDS = (0, 1)
NETWORKS = {"mlp": "mlp-mnist.h5", "cnn": "cnn-mnist.h5", "rnn": "rnn-mnist-t7.h5"}
_READ = ["device.read_sigma=0.02", "device.read_model=proportional"]
CONFIGS = {
    "ideal": lambda: resolve("ideal"),
    "paper-syn0.05": lambda: with_sigma_syn(resolve("paper"), 0.05),
    "reram": lambda: resolve("reram"),
    "sonos": lambda: resolve("sonos"),
    "pcm": lambda: resolve("pcm"),
    "read-column": lambda: resolve("reram", [*_READ, "device.read_noise_mode=column"]),
    "read-device": lambda: resolve("reram", [*_READ, "device.read_noise_mode=device"]),
    "offset-slices": lambda: resolve("reram", [
        "mapping.scheme=offset", "mapping.bias=row", "device.levels=4", "mapping.weight_slices=2",
        "dac.input_slices=2", "dac.range=percentile", "dac.percentile=99.0", "device.stuck_on=0.01",
        "device.read_sigma=0.01", "tile.rows=128", "tile.cols=64"]),
    "digital-subtract": lambda: resolve("sonos", [
        "mapping.subtract=digital", "adc.range=max", "adc.bits=6", "dac.range=fixed", "dac.x_max=1.5",
        "mapping.clip_percentile=99.5", "device.stuck_off=0.02", "device.drift_nu_mean=0.02"]),
}


def run_case(net: str, config: str, seed: int) -> tuple[np.ndarray, dict]:
    """Logits of the first N_IMAGES MNIST test images on chip ``seed``, and its energy report."""
    images, _ = data.load("mnist", "test", limit=N_IMAGES)
    network = io.load(ROOT / "data" / "weights" / NETWORKS[net])
    hw = CONFIGS[config]()
    chip = program(network, hw, seed, images[:hw.calibration_images])
    logits = chip.forward(images, 0)
    return logits, energy_report(chip.operation_counts(), hw)
