"""Benchmark set-up: the CASES registry, a --run-slow switch, and the ratio table.

Run ``pytest bench --benchmark-enable`` for real timings; plain ``pytest bench``
runs each case once as a smoke test. Every throughput is reported relative to
ideal float32 numpy inference of the same network on the same images, timed in
the same run (DESIGN.md section 6). The table is written to
``.benchmarks/last-run.md`` (untracked: a benchmark run never rewrites a
tracked file) at the end of the session; docs/performance.md quotes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numba
import pytest

from xbar.config import resolve

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = {arch: ROOT / "data" / "weights" / name
           for arch, name in (("mlp", "mlp-mnist.h5"), ("cnn", "cnn-mnist.h5"), ("rnn", "rnn-mnist-t7.h5"))}

_STATIC = ["dac.bits=8", "adc.bits=8", "adc.range=calibrated", "tile.rows=256", "tile.cols=256",
           "device.prog_sigma=0.025"]

#: name -> (hardware or None for the float32 reference, images timed)
CASES = {
    "reference": (None, 10_000),
    "xbar-ideal": (resolve("ideal"), 10_000),
    "static-8bit-256": (resolve("paper", _STATIC + ["mapping.bias=digital"]), 10_000),
    "column-read-noise": (resolve("paper", _STATIC + ["mapping.bias=digital", "device.read_sigma=0.01",
                                                      "device.read_noise_mode=column"]), 10_000),
    "device-read-noise": (resolve("paper", _STATIC + ["mapping.bias=digital", "device.read_sigma=0.01",
                                                      "device.read_noise_mode=device"]), 500),
}

MEMORY_PRESETS = ("paper", "reram", "sonos", "pcm")
"""Presets whose programmed-chip memory per weight is measured."""

RESULTS: dict[tuple[str, str], dict] = {}


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run slow benchmarks")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    lines = [f"NUMBA_NUM_THREADS = {numba.config.NUMBA_NUM_THREADS}, OPENBLAS_CORETYPE = "
             f"{os.environ.get('OPENBLAS_CORETYPE', '-')}", "",
             "| network | configuration | images | seconds | images/s | ratio to reference | draws/s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for arch in WEIGHTS:
        ref = RESULTS.get((arch, "reference"))
        for case in CASES:
            r = RESULTS.get((arch, case))
            if r is None:
                continue
            ratio = f"{r['ips'] / ref['ips']:.3f}" if ref else "-"
            draws = f"{r['draws'] / r['seconds']:.3g}" if r.get("draws") else "-"
            lines.append(f"| {arch} | {case} | {r['images']} | {r['seconds']:.3f} | {r['ips']:,.0f} | {ratio} "
                         f"| {draws} |")
    compile_s = RESULTS.get(("all", "compile"))
    if compile_s:
        lines += ["", f"Numba compile time of all kernels (cold cache, separate process): {compile_s['seconds']:.1f} s"]
    memory = [(name, RESULTS[("memory", name)]) for name in MEMORY_PRESETS if ("memory", name) in RESULTS]
    if memory:
        lines += ["", f"Programmed-chip memory, 784-4096-4096-10 MLP ({memory[0][1]['weights']:,} weights):", "",
                  "| preset | kept (bytes/weight) | peak while programming (bytes/weight) |", "| --- | --- | --- |"]
        lines += [f"| {name} | {r['kept']:.1f} | {r['peak']:.1f} |" for name, r in memory]
    out = ROOT / ".benchmarks" / "last-run.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
