"""Monte Carlo sweeps: a TOML spec -> tasks -> an executor -> a results CSV, resumable row by row.

A spec (``xbar sweep SPEC.toml -o results.csv``)::

    weights = ["data/weights/cnn-mnist.h5", "data/weights/rnn-mnist-t7.h5"]
    hardware = "paper"          # a preset or a hardware TOML file
    seeds = 10                  # chip instances per grid point
    seed = 0                    # chip instance k has seed hash(seed, k), as in `xbar run`
    limit = 1000                # test images per task (default: all)
    data = "my-test-set.npz"    # or a user's own test set (x, y), as `xbar run --data`
    data_layout = "nchw"        # its axis order (default nhwc), and data_scale = 255 divides its pixels
    [set]                       # fixed hardware overrides
    "adc.bits" = 8
    [grid]                      # swept: any hardware key, sigma_syn, sigma_te, syn_mode
    sigma_syn = [0.0, 0.05, 0.1]
    sigma_te = [0.0, 0.025]

Every task (weights x grid point x chip instance) is a pure function of its
fields, so local processes and a Dask cluster give identical rows. Rows are
written one line per ``write`` and flushed as tasks finish; ``resume`` skips the
tasks already in the file and drops a line cut short by a kill, so a sweep
killed at any moment and resumed loses and doubles nothing. The rows name each
weights file as the spec gives it; the file beside the results
(:mod:`xbar.results`) records the spec, its hardware, the SHA-256 of the weights
and of any ``data`` file, and the xbar version, and a resume that would mix in
other results is refused.

SIGTERM and SIGINT stop a sweep within a second or two: the running tasks are
abandoned (their rows never written), the workers ended, and
:class:`Interrupted` raised. Local workers also end when their parent dies,
even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import math
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import sha256_of
from ._isolated import die_with_parent
from .errors import ConfigError, XbarError
from .results import COMPARED_SPEC_KEYS, ResultsFile, format_value, header, task_key
from .train import MAX_SEED

if TYPE_CHECKING:
    from .config import Hardware

PAPER_KNOBS = ("sigma_syn", "sigma_te", "syn_mode")
SPEC_KEYS = {*COMPARED_SPEC_KEYS, "name", "hardware", "batch_size"}
"""Every key a spec may have: those that decide its rows (:data:`xbar.results.COMPARED_SPEC_KEYS`) and three
that do not."""
DATA_KEYS = ("data_layout", "data_scale")
"""Spec keys that describe the ``data`` file, and so need it."""
TABLE_KEY = "device.table"
"""The hardware key naming a device table file: resolved like the weights, its SHA-256 in the provenance."""
MAX_TASKS = 1_000_000
"""Most tasks a sweep may have unless raised (``--max-tasks``): a resumed sweep keeps the key of every
row done in memory (about 0.3 kB each), and a million tasks of even 10 ms is hours on a few cores."""
STOP_POLL_S = 0.2
"""How often a running sweep looks for a stop signal (s)."""
STOP_GRACE_S = 2.0
"""How long stopped workers get to exit before they are killed (s)."""
CHUNK_S = 1.0
"""Work sent to a worker at once (s of task time): scheduling overhead is paid per chunk, not per task."""
MAX_CHUNK = 64
"""Most tasks in one chunk."""


@dataclass(frozen=True)
class Spec:
    """A parsed, validated sweep spec."""

    weights: tuple[str, ...]
    """The weights files, as paths to open."""
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
    labels: tuple[str, ...] = ()
    """The weights files as the rows name them, one per entry of ``weights`` (empty: ``weights`` itself).
    :func:`load_spec` gives the paths as the spec file writes them; ``weights`` are those resolved."""
    data: str | None = None
    """The user's test-set file to open (``xbar run --data``); None: a built-in test set (``dataset``)."""
    data_label: str | None = None
    """The data file as the rows' ``dataset`` column names it (None: ``data`` itself); :func:`load_spec`
    gives it as the spec file writes it, as for the weights."""
    data_layout: str | None = None
    """Axis order of a 4-D ``x`` in ``data`` (:data:`xbar.testdata.LAYOUTS`); None: as ``xbar run --data``
    takes it, the one the weights file records from ``xbar import --data``, else ``nhwc``."""
    data_scale: float | None = None
    """The pixels of ``data`` are divided by it first; None: the weights file's, else 1."""

    @property
    def columns(self) -> list[str]:
        """CSV columns: weights, arch, dataset, the swept parameters, then the results (:mod:`xbar.results`)."""
        return header(name for name, _ in self.grid)

    @property
    def weight_labels(self) -> tuple[str, ...]:
        """How the rows name each weights file (``labels``, else the paths)."""
        return self.labels or self.weights

    @property
    def data_name(self) -> str | None:
        """How the rows name the data file (``data_label``, else ``data``); None without one."""
        return None if self.data is None else (self.data_label or self.data)

    @property
    def n_points(self) -> int:
        """Grid points: the product of the numbers of values of the swept parameters."""
        return math.prod(len(values) for _, values in self.grid)

    @property
    def n_tasks(self) -> int:
        """Tasks: weights files x grid points x chip instances."""
        return len(self.weights) * self.n_points * self.seeds

    @functools.cached_property
    def job(self) -> Job:
        """What every task shares, with the hardware resolved (read from its TOML file) once."""
        from .config import resolve

        return Job(
            resolve(self.hardware, ()),
            self.overrides,
            self.seed,
            self.limit,
            self.dataset,
            self.batch_size,
            data=self.data,
            data_name=self.data_name,
            data_layout=self.data_layout,
            data_scale=self.data_scale,
        )

    def tasks(self) -> Iterator[Task]:
        """Every task, weights-major, then grid points in order, then chip instances."""
        names = [name for name, _ in self.grid]
        job = self.job
        for label, path in zip(self.weight_labels, self.weights):
            for point in itertools.product(*(values for _, values in self.grid)):
                for chip in range(self.seeds):
                    yield Task(job, label, path, tuple(zip(names, point)), chip)


@dataclass(frozen=True)
class Job:
    """The settings every task of a sweep shares: what a worker needs besides the task's own fields.

    Tasks carry this and not their :class:`Spec`, whose grid (and so each
    task's payload to a worker) can be large.
    """

    hardware: Hardware
    """The spec's hardware, before its overrides and the task's parameters."""
    overrides: tuple[tuple[str, Any], ...]
    seed: int
    limit: int | None
    dataset: str | None
    batch_size: int | None
    data: str | None = None
    """The user's test-set file to open, None for a built-in test set (see :class:`Spec`)."""
    data_name: str | None = None
    """The data file as the rows name it."""
    data_layout: str | None = None
    data_scale: float | None = None


@dataclass(frozen=True)
class Task:
    """One chip instance of one network at one grid point of a :class:`Spec`."""

    job: Job
    weights: str
    """The weights file as the row names it."""
    path: str
    """The weights file to open."""
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_type(path: Path, table: dict) -> None:
    """Every key of the spec table has the type it must have, else a one-line ConfigError."""
    from .testdata import LAYOUTS

    expected: dict[str, tuple[Callable[[Any], bool], str]] = {
        "name": (lambda v: isinstance(v, str), "a string"),
        "weights": (
            lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(w, str) for w in v)),
            "a weights file or a list of them",
        ),
        "hardware": (lambda v: isinstance(v, str), "a preset name or a hardware TOML file"),
        "seeds": (lambda v: _is_int(v) and 1 <= v <= MAX_TASKS, f"an integer in [1, {MAX_TASKS:,}]"),
        "seed": (lambda v: _is_int(v) and 0 <= v <= MAX_SEED, f"an integer in [0, {MAX_SEED}]"),
        "limit": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
        "batch_size": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
        "dataset": (lambda v: isinstance(v, str), "a dataset name"),
        "data": (lambda v: isinstance(v, str) and v != "", "a test-set file (.npz or .h5 with arrays x and y)"),
        "data_layout": (lambda v: v in LAYOUTS, f"one of {', '.join(map(repr, LAYOUTS))}"),
        "data_scale": (
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
            "a positive finite number",
        ),
        "set": (lambda v: isinstance(v, dict), "a table of hardware keys"),
        "grid": (lambda v: isinstance(v, dict), "a table of lists"),
    }
    for key, (check, what) in expected.items():
        if key in table and not check(table[key]):
            raise ConfigError(f"{path}: '{key}' must be {what}, got {_shown(table[key])}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "..."


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def load_spec(path: str | os.PathLike, max_tasks: int = MAX_TASKS) -> Spec:
    """Read and validate a sweep spec; every problem is a :class:`ConfigError` before any task runs.

    A spec of more than ``max_tasks`` tasks is refused with its count.
    """
    from . import io
    from .config import preset, read_toml, resolve

    path = Path(path)
    table = read_toml(path)
    unknown = set(table) - SPEC_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(SPEC_KEYS))})"
        )
    _check_type(path, table)
    if "data" in table and "dataset" in table:
        raise ConfigError(f"{path}: 'data' and 'dataset' are exclusive: give one test set")
    for key in DATA_KEYS:
        if key in table and "data" not in table:
            raise ConfigError(f"{path}: '{key}' applies to a 'data' file only, and the spec gives none")
    labels = table.get("weights")
    if isinstance(labels, str):
        labels = [labels]
    if not labels:
        raise ConfigError(f"{path}: 'weights' must be a non-empty list of weights files")
    repeated = [w for w, n in Counter(labels).items() if n > 1]
    if repeated:
        raise ConfigError(f"{path}: 'weights' lists {repeated[0]} more than once")
    weights = [_resolve_path(w, path.parent) for w in labels]
    # Missing or malformed files fail here, before any task starts.
    networks = [io.load(w) for w in weights]
    hardware = table.get("hardware", "ideal")
    if hardware.endswith(".toml"):
        hardware = _resolve_path(hardware, path.parent)
    else:
        preset(hardware)
    overrides, grid = table.get("set", {}), table.get("grid", {})
    for key, value in overrides.items():
        if not _scalar(value):
            raise ConfigError(f"{path}: [set] '{key}' must be a string, number or boolean, got {_shown(value)}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid '{key}' must be a non-empty list of values")
        if not all(_scalar(v) for v in values):
            raise ConfigError(f"{path}: grid '{key}' values must be strings, numbers or booleans, got {_shown(values)}")
        repeated = [v for v, n in Counter(format_value(v) for v in values).items() if n > 1]
        if repeated:
            raise ConfigError(f"{path}: grid '{key}' lists {repeated[0]} more than once")
    # Device tables are found as the weights are: as given, else beside the spec.
    if isinstance(overrides.get(TABLE_KEY), str) and overrides[TABLE_KEY]:
        overrides[TABLE_KEY] = _resolve_path(overrides[TABLE_KEY], path.parent)
    if TABLE_KEY in grid:
        grid[TABLE_KEY] = [_resolve_path(v, path.parent) if isinstance(v, str) and v else v for v in grid[TABLE_KEY]]
    dataset = table.get("dataset")
    if dataset is not None:
        from .data import dataset_spec

        dataset_spec(dataset)
    data_label = table.get("data")
    spec = Spec(
        tuple(weights),
        hardware,
        tuple(overrides.items()),
        tuple((k, tuple(v)) for k, v in grid.items()),
        table.get("seeds", 1),
        table.get("seed", 0),
        table.get("limit"),
        dataset,
        table.get("batch_size"),
        table.get("name", path.stem),
        tuple(labels),
        data=None if data_label is None else _resolve_path(data_label, path.parent),
        data_label=data_label,
        data_layout=table.get("data_layout"),
        data_scale=None if table.get("data_scale") is None else float(table["data_scale"]),
    )
    check_size(spec, max_tasks, where=f"{path}: ")
    # Every grid point must give a valid chip: check them all now.
    base = resolve(spec.hardware, ())
    for point in itertools.product(*(values for _, values in spec.grid)):
        try:
            task_hardware(base, spec.overrides, tuple(zip((k for k, _ in spec.grid), point)))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if spec.data is not None:
        _check_data(path, spec, networks)
    return spec


def _check_data(path: Path, spec: Spec, networks: list) -> None:
    """Load the spec's ``data`` file for every weights file as its tasks will, else a one-line ConfigError.

    A missing or damaged file, or one whose samples or labels do not fit a network (its input shape, its
    number of classes), fails here, naming the weights file, and not in every task of a running sweep.
    The file is read once per distinct network input (shape, classes, stored normalisation); what is read
    stays in this process's cache, where the run-time estimate (:func:`estimate`) finds it.
    """
    from ._files import check_regular_file

    assert spec.data is not None
    try:
        check_regular_file(spec.data)
    except XbarError as exc:
        raise ConfigError(f"{path}: 'data': {exc}") from None
    checked = set()
    for label, weights, network in zip(spec.weight_labels, spec.weights, networks):
        try:
            arguments = _data_arguments(network, weights, spec.job)
            if arguments not in checked:
                checked.add(arguments)
                _load_data(*arguments)
        except XbarError as exc:
            raise ConfigError(f"{path}: 'data' for weights {label}: {exc}") from None


def check_size(spec: Spec, max_tasks: int = MAX_TASKS, where: str = "") -> None:
    """Refuse a sweep of more than ``max_tasks`` tasks, with its count, before anything runs."""
    if spec.n_tasks > max_tasks:
        raise ConfigError(
            f"{where}{spec.n_tasks:,} tasks ({len(spec.weights)} weights x {spec.n_points:,} grid points x "
            f"{spec.seeds} chips), more than the limit of {max_tasks:,} (--max-tasks raises it)"
        )


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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a number >= 0 (and finite), got {value!r}")
    return with_sigma_syn(hw, knobs.get("sigma_syn"), syn_mode), float(knobs.get("sigma_te", 0.0))


# Provenance: what the results file records beside it, and checks on resume.


def provenance(spec: Spec) -> dict:
    """What makes the rows of ``spec``: its content, its hardware resolved, the SHA-256 of the weights, of the
    data file and of the device tables its [set] and grid name, the xbar version.

    The weights and the data file are named as the rows name them; their content is what is compared.
    ``data_layout`` and ``data_scale`` are null where the spec leaves them out (a data file is then read as
    the weights file records, else NHWC and unscaled; without a data file they do not apply), as files from
    before they existed read.
    """
    from . import __version__

    return {
        "xbar": __version__,
        "spec": {
            "name": spec.name,
            "weights": list(spec.weight_labels),
            "hardware": spec.hardware,
            "set": dict(spec.overrides),
            "grid": {name: list(values) for name, values in spec.grid},
            "seeds": spec.seeds,
            "seed": spec.seed,
            "limit": spec.limit,
            "dataset": spec.dataset,
            "data": spec.data_name,
            "data_layout": spec.data_layout,
            "data_scale": spec.data_scale,
            "batch_size": spec.batch_size,
        },
        "hardware": spec.job.hardware.to_dict(),
        "weights": {label: sha256_of(path) for label, path in zip(spec.weight_labels, spec.weights)},
        "data": {} if spec.data is None else {spec.data_label or spec.data: sha256_of(spec.data)},
        "device_tables": {table: sha256_of(table) for table in _device_tables(spec)},
    }


def _device_tables(spec: Spec) -> list[str]:
    """The device table files a spec's [set] and grid name (the base hardware's own is in its to_dict)."""
    named = [value for key, value in spec.overrides if key == TABLE_KEY]
    named += [value for key, values in spec.grid if key == TABLE_KEY for value in values]
    return sorted({value for value in named if isinstance(value, str) and value})


# Running one task (in a worker).


@functools.lru_cache(maxsize=8)
def _network(path: str, mtime: float):
    from . import io

    return io.load(path)


@functools.lru_cache(maxsize=4)
def _test_set(name: str, limit: int | None):
    from . import data

    return data.load(name, "test", limit=limit)


def _inputs(network, path: str, name: str, limit: int | None):
    """The test set ``name`` normalised as ``xbar run`` does: by the weights' provenance input_mean/input_std."""
    from . import testdata

    images, labels = _test_set(name, limit)
    mean, std = testdata.stored_normalization(network.provenance, path)
    return testdata.normalize(images, network.input_shape, mean, std), labels


def _data_arguments(network, path: str, job: Job) -> tuple:
    """The arguments of :func:`_load_data` for the network of weights file ``path``: hashable, a cache key."""
    from . import testdata

    assert job.data is not None
    mean, std = testdata.stored_normalization(network.provenance, path)
    stored_layout, stored_scale = testdata.stored_layout(network.provenance, path)
    return (
        job.data,
        os.path.getmtime(job.data),
        tuple(network.input_shape),
        network.n_classes,
        job.data_layout or stored_layout,
        stored_scale if job.data_scale is None else job.data_scale,
        mean,
        std,
        job.limit,
    )


@functools.lru_cache(maxsize=4)
def _load_data(path: str, mtime: float, input_shape, n_classes, layout, scale, mean, std, limit):
    """The user's test set, read and prepared as ``xbar run --data`` does, once per worker and network input.

    ``mtime`` is in the key so that a file rewritten between two sweeps of a long-lived (Dask) worker is read
    again; a sweep never mixes two versions of it (its SHA-256 is compared on resume).
    """
    from . import testdata

    return testdata.load_file(path, input_shape, n_classes, layout=layout, scale=scale, mean=mean, std=std, limit=limit)


def _task_inputs(network, task: Task) -> tuple[Any, Any, str]:
    """(images, labels, the rows' ``dataset``) of a task: the spec's data file, else a built-in test set."""
    job = task.job
    if job.data is not None:
        images, labels = _load_data(*_data_arguments(network, task.path, job))
        return images, labels, job.data_name or job.data
    dataset = job.dataset or network.dataset
    images, labels = _inputs(network, task.path, dataset, job.limit)
    return images, labels, dataset


@functools.lru_cache(maxsize=1)
def _tune_malloc() -> bool:
    """Give back glibc's dynamic allocation thresholds where the environment fixed them; True if changed.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``. Setting
    any threshold turns off glibc's dynamic mmap threshold, so every array over
    128 kB is mapped, page-faulted and unmapped again at each use: sweep tasks
    ran at half speed on a Dask LocalCluster (measured, docs/performance.md).
    These are the values the dynamic thresholds grow to (32 MiB, twice that).
    """
    if not sys.platform.startswith("linux"):
        return False
    if not any(name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 64 << 20))


def run_task(task: Task) -> dict:
    """Run one task and return its row (pure: the same task gives the same row anywhere)."""
    from ._threads import one_thread
    from .evaluate import chip_seed, run_chip

    _tune_malloc()
    job = task.job
    network = _network(task.path, os.path.getmtime(task.path))
    images, labels, dataset = _task_inputs(network, task)
    hw, sigma_te = task_hardware(job.hardware, job.overrides, task.params)
    seed = chip_seed(job.seed, task.chip)
    started = time.perf_counter()
    # One thread per task: a sweep's parallelism is its tasks (on Dask too, whose workers start BLAS
    # with a thread per core), and a row's energy counts, summed in blocks of images per thread
    # otherwise, then agree to the last bit wherever the task ran.
    with one_thread():
        result = run_chip(network, hw, images, labels, seed, sigma_te=sigma_te, batch_size=job.batch_size)
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


def run_tasks(tasks: list[Task]) -> list[dict]:
    """Run a chunk of tasks (:func:`run_task` each) and return their rows, in order."""
    return [run_task(task) for task in tasks]


# The plan: how many tasks, and about how long they will take.


@dataclass
class Plan:
    """What a sweep is about to do, for the user to see before it starts."""

    name: str
    n_weights: int
    n_points: int
    seeds: int
    done: int
    """Tasks already in the results file."""
    slots: int
    """Tasks that run at once (local workers, or the Dask cluster's threads)."""
    where: str
    estimate_s: float | None = None
    """Estimated wall time of the pending tasks (s), None when not estimated."""
    probed: int = 0
    """Tasks timed for the estimate."""

    @property
    def total(self) -> int:
        return self.n_weights * self.n_points * self.seeds

    @property
    def pending(self) -> int:
        return self.total - self.done

    def describe(self) -> str:
        """One line: the task count and, when estimated, the estimate of the run time."""
        from .progress import format_duration

        text = (
            f"{self.name}: {self.total:,} tasks ({self.n_weights} weights x {self.n_points:,} grid points x "
            f"{self.seeds} chips), {self.done:,} already done, {self.pending:,} to run on {self.where}"
        )
        if self.estimate_s is not None and self.pending:
            text += (
                f"; estimate: about {format_duration(self.estimate_s)} "
                f"(from timing {self.probed} task(s) on a few images, start-up not included)"
            )
        return text


def _task_seconds(task: Task) -> float:
    """Estimated seconds of ``task``: it is run on 8 and on 40 images (after a warm-up) and extrapolated.

    A run of k images is a fixed cost (programming) and k + min(k, calibration images) forward passes of an
    image: the converters are calibrated on the first images before the test set runs.
    """
    from ._threads import one_thread
    from .evaluate import chip_seed, run_chip

    job = task.job
    network = _network(task.path, os.path.getmtime(task.path))
    images, labels, _ = _task_inputs(network, task)
    hw, sigma_te = task_hardware(job.hardware, job.overrides, task.params)
    seed = chip_seed(job.seed, task.chip)

    def seconds(k: int) -> float:
        started = time.perf_counter()
        run_chip(network, hw, images[:k], labels[:k], seed, sigma_te=sigma_te, batch_size=job.batch_size)
        return time.perf_counter() - started

    def passes(k: int) -> int:
        return k + min(k, hw.calibration_images)

    n = len(images)
    small, large = min(8, n), min(40, n)
    with one_thread():
        seconds(small)  # loads (or compiles) the kernels, which a worker pays once, not per task
        t_small, t_large = seconds(small), seconds(large)
    if large > small:
        per_pass = max(t_large - t_small, 0.0) / (passes(large) - passes(small))
    else:
        per_pass = t_small / passes(small)
    return max(t_small - passes(small) * per_pass, 0.0) + per_pass * passes(n)


def estimate(spec: Spec, done: Iterable[tuple[str, ...]], slots: int, budget_s: float = 5.0) -> tuple[float, int]:
    """(estimated wall seconds of the pending tasks on ``slots`` parallel workers, tasks timed).

    Times the first and the last grid point of each weights file with pending
    tasks (at most ``budget_s`` of timing; later files take the mean so far),
    here in this process, on a few images each.
    """
    pending = Counter({label: spec.n_points * spec.seeds for label in spec.weight_labels})
    pending.subtract(Counter(key[0] for key in done))
    names = [name for name, _ in spec.grid]
    points = list(dict.fromkeys([tuple(v[0] for _, v in spec.grid), tuple(v[-1] for _, v in spec.grid)]))
    started, total = time.perf_counter(), 0.0
    costs: list[float] = []
    for label, path in zip(spec.weight_labels, spec.weights):
        if pending[label] <= 0:
            continue
        if costs and time.perf_counter() - started > budget_s:
            cost = sum(costs) / len(costs)
        else:
            mine = [_task_seconds(Task(spec.job, label, path, tuple(zip(names, p)), 0)) for p in points]
            costs += mine
            cost = sum(mine) / len(mine)
        total += cost * pending[label]
    return total / max(slots, 1), len(costs)


# Stopping: signals, and workers that end with their parent.


class Interrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT or SIGTERM; the rows written so far are complete, ``--resume`` continues.

    A :class:`KeyboardInterrupt`, so that code which lets Ctrl-C through lets this through too.
    """

    def __init__(self, signum: int, written: int, output: str | os.PathLike):
        self.signum, self.written, self.output = signum, written, output
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name}: {written} row(s) written to {output} in this run; --resume continues it"
        )

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class _StopSignals:
    """Within the block SIGINT and SIGTERM set ``signum`` instead of acting; the loops poll it.

    A flag and not an exception from the handler, so that a signal never lands
    in the middle of writing a row or of the executor's bookkeeping. Handlers can
    only be set in the main thread; elsewhere the block does nothing.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._saved: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(parent: int) -> None:
    """Initializer of local workers: end with the parent, leave Ctrl-C to it.

    On Linux the kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG);
    elsewhere, and for a parent that died before that was set, a thread polls
    the parent's pid every 0.5 s.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the sweep, and these workers with it
    die_with_parent(parent)
    threading.Thread(target=_watch_parent, args=(parent,), name="xbar-watch-parent", daemon=True).start()


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


# The sweep.


class _Run:
    """One sweep's moving parts: the pending tasks in chunks, the results file, the callbacks and the stop flag.

    Tasks go to workers in chunks of about :data:`CHUNK_S` of work (at most
    :data:`MAX_CHUNK` tasks, all of one weights file), sized from the tasks of
    that file done so far (one at a time until the first is back): a task of
    tens of milliseconds costs Dask's scheduler, the client and the worker's
    bookkeeping about as much as its work, on the same cores.
    """

    def __init__(self, spec, results, stop, progress, on_plan, want_estimate, output):
        self.spec, self.results, self.stop = spec, results, stop
        self.progress, self.on_plan, self.want_estimate, self.output = progress, on_plan, want_estimate, output
        self.pending = (task for task in spec.tasks() if task.key not in results.done)
        self.total = spec.n_tasks - len(results.done)
        self.written = 0
        self.task_seconds: dict[str, float] = {}
        """Recent seconds per task of each weights file (moving average of the rows' ``seconds``)."""
        self._next: Task | None = next(self.pending, None)

    def announce(self, slots: int, where: str) -> None:
        """Tell the plan (and estimate) to ``on_plan``, then start the progress at 0."""
        if self.on_plan is not None:
            spec = self.spec
            plan = Plan(spec.name, len(spec.weights), spec.n_points, spec.seeds, len(self.results.done), slots, where)
            if self.want_estimate and self.total:
                plan.estimate_s, plan.probed = estimate(self.spec, self.results.done, slots)
            self.on_plan(plan)
        self.check_stop()
        if self.progress is not None:
            self.progress(0, self.total)

    def next_chunks(self, n: int) -> list[list[Task]]:
        """Up to ``n`` chunks of the pending tasks (fewer at the end)."""
        chunks: list[list[Task]] = []
        while len(chunks) < n and self._next is not None:
            label = self._next.weights
            seconds = self.task_seconds.get(label)
            size = 1 if seconds is None else max(1, min(MAX_CHUNK, int(CHUNK_S / max(seconds, 1e-3))))
            chunk: list[Task] = []
            while self._next is not None and self._next.weights == label and len(chunk) < size:
                chunk.append(self._next)
                self._next = next(self.pending, None)
            chunks.append(chunk)
        return chunks

    def record(self, rows: list[dict]) -> None:
        """Write the rows of a finished chunk, and learn from their run times."""
        for row in rows:
            self.results.write(row)
            self.written += 1
            before = self.task_seconds.get(row["weights"], row["seconds"])
            self.task_seconds[row["weights"]] = 0.5 * before + 0.5 * row["seconds"]
            if self.progress is not None:
                self.progress(self.written, self.total)

    def check_stop(self) -> None:
        if self.stop.signum is not None:
            raise Interrupted(self.stop.signum, self.written, self.output)


def run_sweep(
    spec: Spec,
    output: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    estimate: bool = False,
    max_tasks: int = MAX_TASKS,
) -> int:
    """Run every task of ``spec`` not yet in ``output``; return the number of tasks run now.

    ``progress(done, total)`` is called with 0 before the first task and after
    each finished one. ``on_plan(plan)`` gets the :class:`Plan` before any task
    starts, with an estimate of the run time if ``estimate``. ``scheduler`` is
    a Dask scheduler address, or ``local`` / ``local:N`` for a LocalCluster of
    ``N`` (default ``workers``, else every core) one-thread worker processes.
    ``overwrite`` starts ``output`` afresh. SIGINT and SIGTERM (in the main
    thread) stop the sweep and raise :class:`Interrupted`. A sweep of more than
    ``max_tasks`` tasks is refused.
    """
    check_size(spec, max_tasks)
    with ResultsFile(output, spec.columns, resume, provenance(spec), overwrite, _task_key_check(spec)) as results:
        with _StopSignals() as stop:
            run = _Run(spec, results, stop, progress, on_plan, estimate, output)
            if scheduler is not None:
                _run_dask(run, scheduler, workers)
            else:
                _run_local(run, workers or os.cpu_count() or 1)
        return run.written


def _task_key_check(spec: Spec) -> Callable[[tuple[str, ...]], bool]:
    """A test of whether a row's key is the key of one of the tasks of ``spec``."""
    labels = set(spec.weight_labels)
    values = [{format_value(v) for v in vs} for _, vs in spec.grid]

    def check(key: tuple[str, ...]) -> bool:
        weights, *point, chip = key
        return (
            weights in labels
            and len(point) == len(values)
            and all(text in choices for text, choices in zip(point, values))
            and chip.isdigit()
            and int(chip) < spec.seeds
        )

    return check


def _run_local(run: _Run, workers: int) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    run.announce(workers, f"{workers} local worker process(es)")
    if not run.total:
        return
    context = multiprocessing.get_context("spawn")
    with _environment(_ONE_THREAD):
        pool = ProcessPoolExecutor(workers, context, initializer=_worker_init, initargs=(os.getpid(),))
        try:
            # Two chunks per worker in flight, not every task: memory stays flat whatever the sweep's size.
            in_flight = {pool.submit(run_tasks, chunk) for chunk in run.next_chunks(2 * workers)}
            while in_flight:
                finished, in_flight = wait(in_flight, timeout=STOP_POLL_S, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        rows = future.result()
                    except BrokenProcessPool:
                        raise XbarError(
                            f"a worker process died (killed, out of memory, or failed to start); {run.written} "
                            f"row(s) written to {run.output} in this run; --resume continues it"
                        ) from None
                    run.record(rows)
                run.check_stop()
                in_flight |= {pool.submit(run_tasks, chunk) for chunk in run.next_chunks(len(finished))}
        except BaseException:
            _stop_pool(pool)
            raise
        pool.shutdown()


def _stop_pool(pool) -> None:
    """End a process pool now: its queued tasks cancelled, its workers terminated (killed if they linger)."""
    # ProcessPoolExecutor has no public way to end running workers before Python 3.14.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
        if process.is_alive():
            process.kill()
            process.join(1.0)


_QUIET_DASK = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
}
"""Dask settings of the LocalCluster that ``--scheduler local`` starts. Its scheduler and nannies share the
workers' cores, and by default every process wakes many times a second: the statistical profiler samples
each worker thread every 10 ms (holding the GIL), each event loop ticks every 20 ms, system and memory
monitors poll every 0.5 and 0.1 s, work stealing rebalances every 0.1 s (our chunks are already even).
Quieted, a sweep on 2 cores went from 0.75 to 0.86-1.29 of the local pool's throughput, end to end
(bench/test_bench_sweep.py, docs/performance.md)."""


def _dask_client(scheduler: str, workers: int | None):
    """A Dask client for ``scheduler``, and the LocalCluster started for it (None for an address)."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise XbarError("--scheduler needs Dask: pip install -e '.[dist]'") from None
    if scheduler == "local" or scheduler.startswith("local:"):
        count = scheduler.partition(":")[2]
        if count and not (count.isdigit() and int(count) >= 1):
            raise XbarError(f"--scheduler {scheduler}: expected local or local:N with N a positive integer")
        n = int(count) if count else (workers or os.cpu_count() or 1)
        # One thread per worker process: tasks hold the GIL between kernels, and each computes one-threaded.
        # The workers are spawned, with this configuration, before the block ends. They get the local
        # workers' one-thread environment, and glibc's dynamic malloc thresholds (no MALLOC_TRIM_THRESHOLD_).
        environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **_ONE_THREAD}
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        with dask.config.set({**_QUIET_DASK, "distributed.nanny.pre-spawn-environ": environ}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="10s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise XbarError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None


def _run_dask(run: _Run, scheduler: str, workers: int | None) -> None:
    from dask.distributed import as_completed

    client, cluster = _dask_client(scheduler, workers)
    queue = None
    try:
        slots = sum(client.nthreads().values())
        run.announce(slots, f"Dask {'LocalCluster' if cluster else scheduler} ({slots} thread(s))")
        if not run.total:
            return
        # Enough in flight to keep every thread busy (and a cluster that grows), not all of a huge sweep.
        window = max(2 * slots, 32)
        queue = as_completed(client.submit(run_tasks, chunk, pure=False) for chunk in run.next_chunks(window))
        while not queue.is_empty():
            finished = queue.next_batch(block=False)
            if not finished:
                run.check_stop()
                time.sleep(0.02)
                continue
            for future in finished:
                run.record(future.result())
            run.check_stop()
            for chunk in run.next_chunks(len(finished)):
                queue.add(client.submit(run_tasks, chunk, pure=False))
    except BaseException:
        # Queued tasks are cancelled; a task already running on a remote worker finishes there, unrecorded.
        # Cleaning up on the way out of an error must not replace that error.
        if queue is not None:
            with contextlib.suppress(Exception):
                client.cancel(list(queue.futures), force=True)
        raise
    finally:
        client.close(timeout=STOP_GRACE_S)
        if cluster is not None:
            cluster.close(timeout=STOP_GRACE_S)
