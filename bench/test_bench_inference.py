"""Throughput of simulated inference against ideal float32 numpy inference, in one run."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numba
import pytest

from xbar import data, io
from xbar.crossbar import program

from .conftest import CASES, RESULTS, ROOT, WEIGHTS


@pytest.fixture(scope="module")
def images():
    x, _ = data.load("mnist", "test")
    return x


def _device_draws(chip):
    """Random draws made so far by device-mode read noise: one per device per read."""
    return sum(m.vectors_read * m.devices_per_vector for m in chip.matrices)


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
        for matrix in chip.matrices:
            matrix.vectors_read = 0

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


def test_compile_time():
    """Numba compile time of every kernel, from a cold cache, in a separate process."""
    code = ("import time, numpy as np; t = time.perf_counter();"
            "from xbar import io, data; from xbar.config import resolve; from xbar.crossbar import program;"
            "net = io.load(r'%s'); x, _ = data.load('mnist', 'test', limit=4);"
            "hw = resolve('sonos', ['device.stuck_on=0.01', 'device.drift_nu_mean=0.01', 'dac.input_slices=2']);"
            "program(net, hw, 0, x).forward(x);"
            "program(net, resolve('sonos', ['device.read_noise_mode=device']), 0, x).forward(x);"
            "print(time.perf_counter() - t)") % WEIGHTS["mlp"]
    env = {**os.environ, "XBAR_NUMBA_CACHE": "0"}
    cold = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True, cwd=ROOT).stdout)
    warm = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=ROOT).stdout)
    RESULTS[("all", "compile")] = {"seconds": cold - warm}
    assert cold > 0 and warm > 0
