"""Throughput of a sweep on a Dask LocalCluster against the local process pool, on the same cores.

``pytest bench/test_bench_sweep.py --benchmark-enable`` runs the same sweep
(three networks, the ``sonos`` chip, 96 tasks of 1,000 images) alternately on
``--workers N`` and on ``--scheduler local:N`` (N = the cores), four rounds, each
executor going first in every other round,
and writes the throughputs and their ratios to ``.benchmarks/sweep-last-run.md``
(docs/performance.md quotes it). Two ratios of Dask to local throughput, each the
median over the rounds:

- end to end: ``run_sweep`` from call to return, each starting (and ending) its
  own workers, as ``xbar sweep`` does;
- steady: tasks per second from the first row written to the last, start-up excluded;

and, as a check that does not depend on what else this shared machine runs, the
ratio of the CPU seconds the whole sweep took (every process, end to end) on the
local pool to those on Dask: tasks per CPU second, Dask against local. The steady
and CPU medians must be at least 0.9.

Without ``--benchmark-enable`` a small sweep runs once on each, as a smoke test.
"""

from __future__ import annotations

import os
import resource
import statistics
import time

import pytest

from xbar.results import read_rows
from xbar.sweep import Spec, run_sweep

from .conftest import ROOT, WEIGHTS

ROUNDS = 4
TARGET_RATIO = 0.9


def _spec(seeds: int, limit: int) -> Spec:
    return Spec(
        weights=tuple(str(WEIGHTS[arch]) for arch in ("mlp", "rnn", "cnn")),
        hardware="sonos",
        overrides=(),
        grid=(("sigma_syn", (0.0, 0.05)),),
        seeds=seeds,
        seed=0,
        limit=limit,
        dataset=None,
        name="bench",
    )


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that have ended (the workers, once stopped)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(spec: Spec, out, **where) -> dict:
    """Run ``spec`` into ``out``: wall seconds end to end and from the first row to the last, and CPU seconds
    of every process involved (this one, with Dask's scheduler and nannies, and the workers)."""
    marks: list[float] = []
    cpu, started = _cpu_s(), time.perf_counter()
    n = run_sweep(spec, out, overwrite=True, progress=lambda done, total: marks.append(time.perf_counter()), **where)
    ended = time.perf_counter()
    # marks[0] is the start (0 done), marks[1] the first row written, marks[-1] the last.
    return {"tasks": n, "seconds": ended - started, "steady_s": marks[-1] - marks[1], "steady_rows": n - 1,
            "cpu_s": _cpu_s() - cpu}


def _rows(path):
    return sorted(tuple((k, v) for k, v in row.items() if k != "seconds") for row in read_rows(path))


def test_dask_local_cluster_against_local_pool(benchmark, tmp_path):
    pytest.importorskip("distributed")
    cores = os.cpu_count() or 1
    enabled = not benchmark.disabled
    spec = _spec(seeds=16, limit=1000) if enabled else _spec(seeds=1, limit=50)
    local_csv, dask_csv = tmp_path / "local.csv", tmp_path / "dask.csv"
    results: dict[str, list[dict]] = {"local": [], "dask": []}

    def rounds():
        for k in range(ROUNDS if enabled else 1):
            # Alternate, and in turn go first (local, Dask, Dask, local, ...): a slow spell of this shared
            # machine, or one that passes, then falls on both alike.
            order = ("local", "dask") if k % 2 == 0 else ("dask", "local")
            for name in order:
                where = {"workers": cores} if name == "local" else {"scheduler": f"local:{cores}"}
                results[name].append(_timed(spec, local_csv if name == "local" else dask_csv, **where))

    benchmark.group = "sweep|dask-vs-local"
    benchmark.pedantic(rounds, rounds=1, iterations=1, warmup_rounds=0)
    assert _rows(local_csv) == _rows(dask_csv)  # identical rows wherever the tasks ran
    if not enabled:
        return
    end_to_end = [lo["seconds"] / da["seconds"] for lo, da in zip(results["local"], results["dask"])]
    steady = [
        (da["steady_rows"] / da["steady_s"]) / (lo["steady_rows"] / lo["steady_s"])
        for lo, da in zip(results["local"], results["dask"])
    ]
    cpu = [lo["cpu_s"] / da["cpu_s"] for lo, da in zip(results["local"], results["dask"])]
    ratio, steady_ratio, cpu_ratio = statistics.median(end_to_end), statistics.median(steady), statistics.median(cpu)
    benchmark.extra_info.update(cores=cores, tasks=spec.n_tasks, end_to_end_ratio=ratio, steady_ratio=steady_ratio,
                                cpu_ratio=cpu_ratio)
    lines = [
        f"Sweep of {spec.n_tasks} tasks (mlp, rnn, cnn x sigma_syn 0, 0.05 x {spec.seeds} chips, sonos, "
        f"{spec.limit} images each) on {cores} cores, {ROUNDS} rounds (local first, then Dask first, ...):",
        "",
        "| round | local pool (s) | Dask LocalCluster (s) | ratio end to end | ratio steady | local CPU (s) "
        "| Dask CPU (s) | ratio per CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, (lo, da) in enumerate(zip(results["local"], results["dask"])):
        lines.append(f"| {k + 1} | {lo['seconds']:.2f} | {da['seconds']:.2f} | {end_to_end[k]:.3f} | {steady[k]:.3f} "
                     f"| {lo['cpu_s']:.1f} | {da['cpu_s']:.1f} | {cpu[k]:.3f} |")
    lines += ["", f"Dask / local throughput, median: end to end {ratio:.3f}, steady {steady_ratio:.3f}, "
              f"per CPU second {cpu_ratio:.3f}"]
    out = ROOT / ".benchmarks" / "sweep-last-run.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    # Throughput is the steady rate (start-up is latency, reported above); the CPU ratio says the same
    # without the noise of other tenants of this machine.
    assert steady_ratio >= TARGET_RATIO and cpu_ratio >= TARGET_RATIO, "\n".join(lines)
