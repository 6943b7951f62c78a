"""Throughput of simulated inference against ideal float32 numpy inference, in one run."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import tracemalloc

import numba
import numpy as np
import pytest

from xbar import data, io
from xbar.config import resolve
from xbar.crossbar import program
from xbar.nets import Network
from xbar.nets.layers import Dense, Flatten

from .conftest import CASES, MEMORY_PRESETS, RESULTS, ROOT, WEIGHTS


@pytest.fixture(scope="module")
def images():
    x, _ = data.load("mnist", "test")
    return x


def _device_draws(chip):
    """Random draws made so far by device-mode read noise: one per device per read."""
    return sum(reads.vectors * m.devices_per_vector for m, reads in zip(chip.matrices, chip.reads))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("arch", list(WEIGHTS))
def test_throughput(benchmark, arch, case, images):
    network = io.load(WEIGHTS[arch])
    hw, n_images = CASES[case]
    x = images[:n_images]
    batch = 1000
    runs = [0]
    if hw is None:
        matmuls = network.ideal_matmuls()

        def run():
            for start in range(0, len(x), batch):
                network.forward(x[start:start + batch], matmuls)
    else:
        chip = program(network, hw, seed=1, calibration=images[:256])
        chip.forward(x[:2])  # compile (or load from cache) outside the timing
        chip.reset_counts()

        def run():
            runs[0] += 1
            for start in range(0, len(x), batch):
                chip.forward(x[start:start + batch], start)
    benchmark.group = f"{arch}|10k-mnist"
    benchmark.extra_info.update(case=case, images=n_images, numba_threads=numba.config.NUMBA_NUM_THREADS)
    # One warm-up round: the first pass after another case pays for its threads waking or still spinning
    # (OpenBLAS workers spin for a while after a multi-threaded call), which is not this case's cost.
    slow = case == "device-read-noise"
    benchmark.pedantic(run, rounds=1 if slow else 5, iterations=1, warmup_rounds=0 if slow else 1)
    seconds = benchmark.stats.stats.min if benchmark.stats else None
    if seconds is None:  # --benchmark-disable: time the single smoke run ourselves
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
    result = {"images": n_images, "seconds": seconds, "ips": n_images / seconds}
    if case == "device-read-noise":
        result["draws"] = _device_draws(chip) / runs[0]
    RESULTS[(arch, case)] = result


_COMPILE_PROBE = """
import time
started = time.perf_counter()
from xbar import data, io
from xbar.config import resolve
from xbar.crossbar import program
from xbar.kernels import convert, devices, rng
net = io.load(r'%s')
x, _ = data.load('mnist', 'test', limit=4)
hw = resolve('sonos', ['device.stuck_on=0.01', 'device.drift_nu_mean=0.01', 'dac.input_slices=2'])
program(net, hw, 0, x).forward(x)
program(net, resolve('sonos', ['device.read_noise_mode=device']), 0, x).forward(x)
seconds = time.perf_counter() - started
kernels = [k for module in (convert, devices, rng) for k in vars(module).values() if hasattr(k, 'stats')]
misses = sum(sum(k.stats.cache_misses.values()) for k in kernels)
hits = sum(sum(k.stats.cache_hits.values()) for k in kernels)
print(seconds, hits, misses)
"""


def _probe(env):
    out = subprocess.run([sys.executable, "-c", _COMPILE_PROBE % WEIGHTS["mlp"]], env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def test_compile_time_and_kernel_cache():
    """Numba compile time of every kernel from a cold cache, and a warm process compiling nothing."""
    cold, _, _ = _probe({**os.environ, "XBAR_NUMBA_CACHE": "0"})
    _probe(dict(os.environ))  # fills the cache if this checkout's kernels were never compiled
    warm, hits, misses = _probe(dict(os.environ))
    RESULTS[("all", "compile")] = {"seconds": cold - warm}
    assert misses == 0 and hits > 0, f"a warm process compiled {misses} kernel(s) instead of loading them"


def test_memory_per_weight():
    """Bytes a programmed chip keeps per weight (and its peak while programming) for a 784-4096-4096-10 MLP."""
    rng = np.random.default_rng(0)
    sizes = [784, 4096, 4096, 10]
    layers = [Flatten()] + [
        Dense(kernel=(rng.standard_normal((a, b), np.float32) * 0.02), bias=np.zeros(b, np.float32),
              activation="linear" if b == sizes[-1] else "brelu")
        for a, b in zip(sizes, sizes[1:])]
    network = Network("mlp", "mnist", (28, 28, 1), 10, layers)
    n_weights = sum(layer.kernel.size for layer in network.weight_layers)
    x, _ = data.load("mnist", "test", limit=64)
    for name in MEMORY_PRESETS:
        hw = resolve(name)
        program(network, hw, 0, x[:8]).forward(x[:8])  # load the kernels before measuring
        gc.collect()
        tracemalloc.start()
        chip = program(network, hw, 0, x)
        chip.forward(x)  # read noise widths are worked out on the first noisy read
        gc.collect()
        kept, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        RESULTS[("memory", name)] = {"kept": kept / n_weights, "peak": peak / n_weights, "weights": n_weights}
        del chip
        if name in ("paper", "reram"):
            assert kept / n_weights <= 16.0, (name, kept / n_weights)
