"""Monte Carlo sweeps: a TOML spec -> tasks -> an executor -> a results CSV, resumable row by row.

A spec (``xbar sweep SPEC.toml -o results.csv``)::

    weights = ["data/weights/cnn-mnist.h5", "data/weights/rnn-mnist-t7.h5"]
    hardware = "paper"          # a preset or a hardware TOML file
    seeds = 10                  # chip instances per grid point
    seed = 0                    # chip instance k has seed hash(seed, k), as in `xbar run`
    limit = 1000                # test images per task (default: all)
    [set]                       # fixed hardware overrides
    "adc.bits" = 8
    [grid]                      # swept: any hardware key, sigma_syn, sigma_te, syn_mode
    sigma_syn = [0.0, 0.05, 0.1]
    sigma_te = [0.0, 0.025]

Every task (weights x grid point x chip instance) is a pure function of its
fields, so local processes and a Dask cluster give identical rows. Rows are
written one line per ``write`` and flushed as tasks finish; ``resume`` skips the
tasks already in the file and drops a line cut short by a kill, so a sweep
killed at any moment and resumed loses and doubles nothing.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, XbarError
from .results import ResultsFile, header, task_key

PAPER_KNOBS = ("sigma_syn", "sigma_te", "syn_mode")
SPEC_KEYS = {"name", "weights", "hardware", "seeds", "seed", "limit", "dataset", "set", "grid", "batch_size"}


@dataclass(frozen=True)
class Spec:
    """A parsed, validated sweep spec."""

    weights: tuple[str, ...]
    hardware: str
    overrides: tuple[tuple[str, Any], ...]
    grid: tuple[tuple[str, tuple], ...]
    seeds: int
    seed: int
    limit: int | None
    dataset: str | None
    batch_size: int | None = None
    """Images per forward pass (None: the network's choice, see Network.batch_size_for)."""
    name: str = "sweep"

    @property
    def columns(self) -> list[str]:
        """CSV columns: weights, arch, dataset, the swept parameters, then the results (:mod:`xbar.results`)."""
        return header(name for name, _ in self.grid)

    def tasks(self) -> Iterator[Task]:
        """Every task, weights-major, then grid points in order, then chip instances."""
        names = [name for name, _ in self.grid]
        for weights in self.weights:
            for point in itertools.product(*(values for _, values in self.grid)):
                for chip in range(self.seeds):
                    yield Task(self, weights, tuple(zip(names, point)), chip)


@dataclass(frozen=True)
class Task:
    """One chip instance of one network at one grid point of a :class:`Spec`."""

    spec: Spec
    weights: str
    params: tuple[tuple[str, Any], ...]
    """Swept parameters in grid order: (name, value)."""
    chip: int

    @property
    def key(self) -> tuple[str, ...]:
        """Identity of the task's row in the results file (strings, as the CSV holds them)."""
        return task_key(
            {"weights": self.weights, **dict(self.params), "chip": self.chip}, [name for name, _ in self.params]
        )


def _resolve_path(text: str, base: Path) -> str:
    path = Path(text)
    if not path.is_absolute() and not path.exists() and (base / path).exists():
        path = base / path
    return str(path)


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and validate a sweep spec; every problem is a :class:`ConfigError` before any task runs."""
    from . import io
    from .config import preset, read_toml, resolve

    path = Path(path)
    table = read_toml(path)
    unknown = set(table) - SPEC_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(SPEC_KEYS))})"
        )
    weights = table.get("weights")
    if isinstance(weights, str):
        weights = [weights]
    if not weights or not all(isinstance(w, str) for w in weights):
        raise ConfigError(f"{path}: 'weights' must be a non-empty list of weights files")
    weights = [_resolve_path(w, path.parent) for w in weights]
    for w in weights:
        io.load(w)  # missing or malformed files fail here, before any task starts
    hardware = table.get("hardware", "ideal")
    if not isinstance(hardware, str):
        raise ConfigError(f"{path}: 'hardware' must be a preset name or a TOML file")
    if hardware.endswith(".toml"):
        hardware = _resolve_path(hardware, path.parent)
    else:
        preset(hardware)
    overrides = table.get("set", {})
    grid = table.get("grid", {})
    if not isinstance(overrides, dict) or not isinstance(grid, dict):
        raise ConfigError(f"{path}: [set] and [grid] must be tables")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid '{key}' must be a non-empty list of values")
    seeds, seed = table.get("seeds", 1), table.get("seed", 0)
    for key, value, low in (("seeds", seeds, 1), ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{path}: '{key}' must be an integer >= {low}, got {value!r}")
    limit = table.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"{path}: 'limit' must be a positive integer")
    dataset = table.get("dataset")
    batch_size = table.get("batch_size")
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ConfigError(f"{path}: 'batch_size' must be a positive integer")
    spec = Spec(
        tuple(weights),
        hardware,
        tuple(overrides.items()),
        tuple((k, tuple(v)) for k, v in grid.items()),
        seeds,
        seed,
        limit,
        dataset,
        batch_size,
        str(table.get("name", path.stem)),
    )
    # Every grid point must give a valid chip: check them all now.
    base = resolve(spec.hardware, ())
    for point in itertools.product(*(values for _, values in spec.grid)):
        try:
            task_hardware(base, spec.overrides, tuple(zip((k for k, _ in spec.grid), point)))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if dataset is not None:
        from .data import dataset_spec

        dataset_spec(dataset)
    return spec


def task_hardware(base, overrides, params):
    """The chip of a task: ``base`` with the fixed overrides, then the swept keys, then the paper's knobs."""
    from .config import apply_overrides
    from .evaluate import SYN_MODES, with_sigma_syn

    values = dict(params)
    knobs = {k: values.pop(k) for k in PAPER_KNOBS if k in values}
    hw = apply_overrides(apply_overrides(base, dict(overrides)), values)
    syn_mode = knobs.get("syn_mode", "static")
    if syn_mode not in SYN_MODES:
        raise ConfigError(f"syn_mode must be one of {', '.join(SYN_MODES)}, got {syn_mode!r}")
    for name in ("sigma_syn", "sigma_te"):
        value = knobs.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    return with_sigma_syn(hw, knobs.get("sigma_syn"), syn_mode), float(knobs.get("sigma_te", 0.0))


@functools.lru_cache(maxsize=8)
def _network(path: str, mtime: float):
    from . import io

    return io.load(path)


@functools.lru_cache(maxsize=4)
def _test_set(name: str, limit: int | None):
    from . import data

    return data.load(name, "test", limit=limit)


def run_task(task: Task) -> dict:
    """Run one task and return its row (pure: the same task gives the same row anywhere)."""
    from ._threads import one_thread
    from .config import resolve
    from .evaluate import chip_seed, run_chip

    spec = task.spec
    network = _network(task.weights, os.path.getmtime(task.weights))
    dataset = spec.dataset or network.dataset
    images, labels = _test_set(dataset, spec.limit)
    hw, sigma_te = task_hardware(resolve(spec.hardware, ()), spec.overrides, task.params)
    seed = chip_seed(spec.seed, task.chip)
    started = time.perf_counter()
    # One thread per task: a sweep's parallelism is its tasks (on Dask too, whose workers start BLAS
    # with a thread per core), and a row's energy counts, summed in blocks of images per thread
    # otherwise, then agree to the last bit wherever the task ran.
    with one_thread():
        result = run_chip(network, hw, images, labels, seed, sigma_te=sigma_te, batch_size=spec.batch_size)
    return {
        "weights": task.weights,
        "arch": network.arch,
        "dataset": dataset,
        **dict(task.params),
        "chip": task.chip,
        "seed": seed,
        "accuracy": result.accuracy,
        "n_images": result.n_images,
        "energy_per_inference_j": None if result.energy is None else result.energy["total_j"],
        "seconds": round(time.perf_counter() - started, 3),
    }


_ONE_THREAD = {
    name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
}
"""Local workers compute with one thread each: the workers are the parallelism."""


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """``os.environ`` updated with ``values`` inside the block, as it was after it.

    Spawned workers inherit the environment at start, before spawn re-imports
    the parent's main module (for ``xbar``, the CLI, and numpy with its BLAS
    thread pool), so a worker never starts thread pools it will not use. Each
    task bounds its threads itself too (:func:`run_task`, for Dask workers);
    on top of that, these variables took Table II from 78 s to 72 s (measured).
    """
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_sweep(
    spec: Spec,
    output: str | os.PathLike,
    *,
    resume: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Run every task of ``spec`` not yet in ``output``; return the number of tasks run now.

    ``progress(done, total)`` is called after each finished task.
    """
    results = ResultsFile(output, spec.columns, resume)
    pending = [task for task in spec.tasks() if task.key not in results.done]
    total = len(pending)
    if progress is not None:
        progress(0, total)
    if not pending:
        return 0
    if scheduler is not None:
        _run_dask(pending, scheduler, results, progress)
    else:
        import multiprocessing

        workers = workers or os.cpu_count() or 1
        context = multiprocessing.get_context("spawn")
        with _environment(_ONE_THREAD), ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(run_task, task) for task in pending]
            for done, future in enumerate(as_completed(futures), start=1):
                results.write(future.result())
                if progress is not None:
                    progress(done, total)
    return total


def _run_dask(pending: list[Task], scheduler: str, results: ResultsFile, progress) -> None:
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise XbarError("--scheduler needs Dask: pip install -e '.[dist]'") from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise XbarError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    with client:
        futures = [client.submit(run_task, task, pure=False) for task in pending]
        for done, future in enumerate(dask_completed(futures), start=1):
            results.write(future.result())
            if progress is not None:
                progress(done, len(pending))
