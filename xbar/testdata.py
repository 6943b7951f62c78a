"""The user's own test sets: ``xbar run --data FILE.npz|FILE.h5`` with arrays ``x`` and ``y`` (docs/data.md).

Read with the same care as weights files: only regular files, declared sizes
checked before any array is read, HDF5 read in a child process with a deadline
(:mod:`xbar._isolated`); then laid out as NHWC float32 to fit the network's
input and normalised (scale, per-channel mean and std, or the ones the weights
file records).
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._files import check_regular_file
from .errors import HDF5_ERRORS, DataError, XbarError

MAX_DATA_BYTES = 8 * 2**30
"""Most bytes a test-set file may declare for its arrays ``x`` and ``y`` together (8 GiB), checked on the
declared shapes and item sizes before any array is read (xbar then needs about as much again in float32)."""

DATA_READ_TIMEOUT_S = 60.0
"""Seconds the HDF5 reader process is given, plus one per :data:`DATA_READ_BYTES_PER_S` bytes of file."""

DATA_READ_BYTES_PER_S = 50e6

LAYOUTS = ("nhwc", "nchw")

_NPZ_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _check_declared(where: str, shapes: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Refuse object or non-numeric dtypes and a declared size over :data:`MAX_DATA_BYTES`, before reading."""
    total = 0
    for name, (shape, dtype) in shapes.items():
        kinds = "iuf" if name == "x" else "iu"
        if dtype.kind not in kinds:
            what = "numbers (integer or float)" if name == "x" else "integers"
            raise DataError(f"{where}: array '{name}' must hold {what}, it holds {dtype}")
        total += math.prod(shape) * dtype.itemsize
    if total > MAX_DATA_BYTES:
        raise DataError(
            f"{where}: arrays 'x' and 'y' declare {total:,} bytes, more than the {MAX_DATA_BYTES:,} a test set may have"
        )


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` and ``y`` of an ``.npz`` file; their ``.npy`` headers are checked before their data is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            declared = {}
            for name in ("x", "y"):
                if f"{name}.npy" not in names:
                    raise DataError(f"{path}: no array '{name}' (the file holds {_listed(names)})")
                with archive.open(f"{name}.npy") as fh:
                    version = np.lib.format.read_magic(fh)
                    reader = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = reader(fh)
                declared[name] = (tuple(shape), np.dtype(dtype))
            _check_declared(str(path), declared)
            arrays = []
            for name in ("x", "y"):
                with archive.open(f"{name}.npy") as fh:
                    arrays.append(np.lib.format.read_array(fh, allow_pickle=False))
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{path}: not a readable .npz file, damaged or truncated ({_short(exc)})") from None
    return arrays[0], arrays[1]


def _listed(names) -> str:
    shown = sorted(n.removesuffix(".npy") for n in names)[:8]
    return ", ".join(repr(n) for n in shown) or "nothing"


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__


def _read_h5_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Datasets ``x`` and ``y`` at the root of an HDF5 file (run in a child process: see :func:`_read_h5`)."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            declared = {}
            for name in ("x", "y"):
                node = fh.get(name)
                if node is None:
                    raise DataError(f"{path}: no dataset '{name}' at the root (the file holds {_listed(fh.keys())})")
                if not isinstance(node, h5py.Dataset):
                    raise DataError(f"{path}: '{name}' is a group, not a dataset (an array)")
                if node.dtype.fields is not None or node.shape is None:
                    raise DataError(f"{path}: dataset '{name}' is not a plain array")
                declared[name] = (tuple(node.shape), node.dtype)
            _check_declared(str(path), declared)
            return fh["x"][()], fh["y"][()]
    except DataError:
        raise
    except HDF5_ERRORS as exc:
        raise DataError(f"{path}: not a readable HDF5 file, damaged or truncated ({_short(exc)})") from None


def _read_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_read_h5_arrays` in a forked child within a deadline (a damaged HDF5 file can hang or crash the
    HDF5 library: :func:`xbar._isolated.call_in_child`, as the weights reader does)."""
    from ._isolated import ChildFailed, call_in_child
    from .io import reader_failure

    timeout = DATA_READ_TIMEOUT_S + path.stat().st_size / DATA_READ_BYTES_PER_S
    try:
        return call_in_child(_read_h5_arrays, path, timeout, 2 * MAX_DATA_BYTES + 2**30, passed=(DataError,))
    except ChildFailed as exc:
        raise DataError(f"{path}: {reader_failure(exc)}") from None


def read_arrays(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The arrays ``x`` (images) and ``y`` (labels) of a test-set file, as stored.

    The format is told by the file's first bytes: a zip archive is an ``.npz``
    (``numpy.savez``, compressed or not; no pickled objects), an HDF5 signature
    an HDF5 file (datasets ``x`` and ``y`` at its root, read in a child process
    with a deadline). Declared sizes are checked against :data:`MAX_DATA_BYTES`
    before the data is read.
    """
    try:
        path = check_regular_file(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
    except XbarError as exc:
        raise DataError(str(exc)) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if head.startswith(_NPZ_MAGIC):
        return _read_npz(path)
    if head == _HDF5_MAGIC:
        return _read_h5(path)
    raise DataError(f"{path}: not an .npz (zip) or HDF5 file")


def _numbers(values, what: str) -> tuple[float, ...]:
    """A scalar or a sequence of finite floats as a tuple (for mean and std)."""
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a number or a list of numbers, got {values!r}"[:200]) from None
    if array.size == 0 or not np.all(np.isfinite(array)):
        raise DataError(f"{what} must be finite numbers, got {values!r}"[:200])
    return tuple(float(v) for v in array)


def normalize(
    images: np.ndarray,
    input_shape: tuple[int, ...],
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
) -> np.ndarray:
    """``(images - mean) / std`` per channel, in float32 (``images`` is returned as it is when both are None).

    Parameters
    ----------
    images : ndarray, float32, shape (n, *sample)
        Samples whose last axis is the channel axis when ``input_shape`` is (H, W, C).
    input_shape : tuple of int
        The network's sample shape; its channel count C (the last of three axes, else 1) is the number of
        values ``mean`` and ``std`` may have besides one for all channels.
    mean, std : float or sequence of float, optional
        In the units of ``images`` (after any ``--scale``); std > 0.
    """
    if mean is None and std is None:
        return images
    channels = input_shape[-1] if len(input_shape) == 3 else 1
    out = np.array(images, dtype=np.float32)
    for name, values, default in (("mean", mean, 0.0), ("std", std, 1.0)):
        numbers = (default,) if values is None else _numbers(values, name)
        if len(numbers) not in (1, channels):
            raise DataError(
                f"{name} has {len(numbers)} values; the network's input {input_shape} has {channels} channel(s)"
            )
        if name == "std" and min(numbers) <= 0:
            raise DataError(f"std must be positive, got {min(numbers)}")
        vector = np.asarray(numbers, np.float32)
        if len(numbers) > 1 and out.shape[-1] != channels:
            raise DataError(f"{name}: samples of shape {out.shape[1:]} have no channel axis of {channels}")
        if name == "mean":
            out -= vector
        else:
            out /= vector
    return out


def _fit_shape(x: np.ndarray, input_shape: tuple[int, ...], layout: str, where: str) -> np.ndarray:
    """``x`` in NHWC with samples of ``input_shape``: NCHW transposed, (n, H, W) given a channel, flat reshaped.

    Accepted samples: ``input_shape`` itself; flat (prod(input_shape),), taken as NHWC order; (H, W) for an
    (H, W, 1) input; and, for a flat (features,) input, one-channel images of as many pixels.
    """
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if x.ndim < 2:
        raise DataError(f"{where}: array 'x' has shape {x.shape}; it needs a sample axis and a sample shape")
    if x.ndim == 4 and layout == "nchw":
        x = x.transpose(0, 2, 3, 1)
    sample = tuple(x.shape[1:])
    one_channel = len(sample) == 2 or (len(sample) == 3 and sample[-1] == 1)
    fits = (
        sample == input_shape
        or sample == (math.prod(input_shape),)
        or (len(input_shape) == 3 and input_shape[-1] == 1 and sample == input_shape[:2])
        # a flat network takes one-channel images too: their order is the same in NHWC and NCHW
        or (len(input_shape) == 1 and one_channel and math.prod(sample) == input_shape[0])
    )
    if not fits:
        shown = f"{layout.upper()} samples of shape {sample}" if x.ndim == 4 else f"samples of shape {sample}"
        raise DataError(
            f"{where}: 'x' holds {shown}; the network takes {input_shape} (NHWC; also accepted: flat "
            f"({math.prod(input_shape)},)"
            + (f", or {input_shape[:2]} grayscale" if input_shape[-1:] == (1,) else "")
            + ")"
        )
    return x.reshape((len(x),) + input_shape)


def load_file(
    path: str | os.PathLike,
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    layout: str = "nhwc",
    scale: float = 1.0,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A user's test set from an ``.npz`` or HDF5 file, checked and prepared for a network.

    Parameters
    ----------
    path : path
        File with arrays ``x`` (images: numbers, integer or float) and ``y``
        (labels: integers in [0, n_classes), shape (n,)); see :func:`read_arrays`.
    input_shape : tuple of int
        The network's sample shape (NHWC without the batch axis, e.g. (32, 32, 3)).
    n_classes : int
        The network's number of outputs.
    layout : {"nhwc", "nchw"}
        Axis order of a 4-D ``x``: (n, H, W, C) or (n, C, H, W) (PyTorch's; transposed to NHWC here).
        A 2-D ``x`` (n, features) and a 3-D ``x`` (n, H, W) (grayscale) need none.
    scale : float
        Pixels are divided by it first (255 for 8-bit images stored as 0..255).
    mean, std : float or sequence of float, optional
        Then ``(x / scale - mean) / std`` per channel (:func:`normalize`).
    limit : int, optional
        Keep only the first ``limit`` samples.

    Returns
    -------
    images : ndarray, float32, shape (n, *input_shape)
    labels : ndarray, int64, shape (n,)
    """
    where = str(path)
    if not (math.isfinite(scale) and scale > 0):
        raise DataError(f"scale must be a positive finite number, got {scale}")
    x, y = read_arrays(path)
    if y.ndim != 1:
        raise DataError(f"{where}: array 'y' must be one label per sample, shape (n,), it has shape {y.shape}")
    if x.ndim < 1 or len(x) != len(y):
        raise DataError(f"{where}: 'x' holds {len(x) if x.ndim else 0} samples and 'y' {len(y)} labels")
    if len(y) == 0:
        raise DataError(f"{where}: the test set is empty")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x = _fit_shape(x, tuple(input_shape), layout, where)
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DataError(f"{where}: array 'x' holds NaN or infinite values")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise DataError(
            f"{where}: label {bad} in 'y' is outside [0, {n_classes}) (the network has {n_classes} outputs)"
        )
    images = x.astype(np.float32)
    if scale != 1.0:
        images /= np.float32(scale)
    if not np.all(np.isfinite(images)):
        raise DataError(f"{where}: array 'x' overflows float32")
    return normalize(images, tuple(input_shape), mean, std), y.astype(np.int64)


def stored_normalization(provenance: dict, where: str) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """The ``input_mean`` and ``input_std`` a weights file's provenance holds (None where absent).

    Importers store them there (in the units of the pixels after ``--scale``:
    [0, 1] for the built-in test sets); ``xbar run`` applies them unless
    ``--mean`` / ``--std`` are given.
    """
    found = []
    for key in ("input_mean", "input_std"):
        value = provenance.get(key)
        found.append(None if value is None else _numbers(value, f"{where}: provenance '{key}'"))
    return found[0], found[1]


def stored_layout(provenance: dict, where: str) -> tuple[str, float]:
    """The ``--layout`` and ``--scale`` a weights file's provenance records from ``xbar import --data``
    (``test_data_layout``, ``test_data_scale``), else ``("nhwc", 1.0)``; a damaged value is a :class:`DataError`."""
    layout = provenance.get("test_data_layout", "nhwc")
    if layout not in LAYOUTS:
        raise DataError(f"{where}: provenance 'test_data_layout' must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    scale = provenance.get("test_data_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
        raise DataError(f"{where}: provenance 'test_data_scale' must be a positive number, got {scale!r}")
    return layout, float(scale)
