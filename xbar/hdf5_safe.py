"""Reading untrusted HDF5 files safely: h5py's errors as one line, no links followed, datasets read only once their
declared size, chunking and storage are sane.

Shared by the weights reader (:mod:`xbar.io`) and the Keras importer (:mod:`xbar.importers.keras`): each names
the file (``where``) in every message, and a bad file is a :class:`~xbar.errors.WeightsFormatError`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from .errors import HDF5_ERRORS, WeightsFormatError
from .nets.network import format_bytes

MAX_LAYER_BYTES = 2 * 2**30
"""Most bytes one dataset (a kernel or a bias) may declare (shape x 4 bytes): 2 GiB. Checked before it is read;
the paper's largest kernel, the MLP's 784 x 300, is 919 KiB."""
MAX_WEIGHTS_BYTES = 4 * 2**30
"""Most bytes all the datasets of one file may declare together: 4 GiB."""
MAX_CHUNKS = 2**16
"""Most chunks one chunked dataset may have: HDF5 visits each (about 7 us apiece), so more is a slow read."""


@dataclass
class Budget:
    """Bytes declared by the datasets read so far, against :data:`MAX_WEIGHTS_BYTES`."""

    declared: int = 0


def one_line(text: object, limit: int = 160) -> str:
    """``text`` on one line, shortened to ``limit`` characters (HDF5 messages, names, values)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def member_name(name: str) -> str:
    """A member name as shown in messages: as is if printable, else its repr (a newline stays one line)."""
    return name if name.isprintable() and len(name) <= 80 else one_line(repr(name), 80)


@contextlib.contextmanager
def reading(where: str, what: str):
    """Turn an exception h5py raises while reading ``what`` into a one-line :class:`WeightsFormatError`.

    Only h5py calls go inside: wrapping more would hide xbar's own bugs.
    """
    try:
        yield
    except HDF5_ERRORS as exc:
        raise WeightsFormatError(
            f"{where}: cannot read {what}: damaged or unsupported HDF5 ({one_line(exc)})"
        ) from None


def has_member(group: h5py.Group, name: str, where: str) -> bool:
    """Whether ``group`` has a member ``name``; a soft or external link is refused, not followed.

    An external link would open another file (possibly a FIFO: a hang); a soft
    link could lead through one. xbar writes neither.
    """
    key = name.encode("utf-8", "surrogateescape")
    with reading(where, f"member {member_name(name)!r}"):
        if not group.id.links.exists(key):
            return False
        link_type = group.id.links.get_info(key).type
    if link_type == h5py.h5l.TYPE_EXTERNAL:
        raise WeightsFormatError(f"{where}: {member_name(name)} is an external link to another file; refused")
    if link_type != h5py.h5l.TYPE_HARD:
        raise WeightsFormatError(f"{where}: {member_name(name)} is a soft link; xbar weights files hold no links")
    return True


def open_member(group: h5py.Group, name: str, where: str, kind: type) -> Any:
    """Member ``name`` of ``group`` (a hard link, see :func:`has_member`), which must be a ``kind``."""
    with reading(where, f"member {member_name(name)!r}"):
        obj = group[name]
    if not isinstance(obj, kind):
        noun = "group" if kind is h5py.Group else "dataset"
        raise WeightsFormatError(f"{where}: {member_name(name)} is not a {noun}")
    return obj


def read_dataset(group: h5py.Group, name: str, where: str, budget: Budget) -> np.ndarray:
    """A float32 dataset, read only once its declared size, chunking and storage are known to be sane."""
    dataset = open_member(group, name, where, h5py.Dataset)
    where = f"{where}/{name}"
    with reading(where, "its shape and type"):
        shape, dtype, chunks = dataset.shape, dataset.dtype, dataset.chunks
        create = dataset.id.get_create_plist()
        n_filters, n_external = create.get_nfilters(), create.get_external_count()
        virtual = dataset.is_virtual
        stored = dataset.id.get_storage_size()
    if shape is None:
        raise WeightsFormatError(f"{where}: holds no data (an empty dataspace)")
    if n_external or virtual:
        raise WeightsFormatError(f"{where}: keeps its data in other files (external storage or virtual); refused")
    if dtype.kind != "f" or dtype.itemsize != 4:
        raise WeightsFormatError(f"{where}: dtype {dtype} is not float32")
    declared = math.prod(shape) * dtype.itemsize
    if declared > MAX_LAYER_BYTES:
        raise WeightsFormatError(
            f"{where}: declares shape {shape}, {format_bytes(declared)} of float32, more than the "
            f"{format_bytes(MAX_LAYER_BYTES)} allowed per dataset"
        )
    budget.declared += declared
    if budget.declared > MAX_WEIGHTS_BYTES:
        raise WeightsFormatError(
            f"{where}: the datasets up to this one declare {format_bytes(budget.declared)}, more than the "
            f"{format_bytes(MAX_WEIGHTS_BYTES)} allowed per file"
        )
    if chunks is not None:
        n_chunks = math.prod(-(-size // max(chunk, 1)) for size, chunk in zip(shape, chunks))
        if n_chunks > MAX_CHUNKS:
            raise WeightsFormatError(f"{where}: {n_chunks:,} chunks, more than the {MAX_CHUNKS:,} allowed")
    if not n_filters and stored < declared:
        # Unwritten (unallocated) data reads as fill values: a tiny file could otherwise declare gigabytes.
        raise WeightsFormatError(
            f"{where}: declares {format_bytes(declared)} of data but the file stores {format_bytes(stored)}"
        )
    with reading(where, "its data"):
        array = dataset[()]
    return np.asarray(array)


def scalar(value: Any) -> Any:
    """A numpy scalar or 0-d array as the Python value; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
    return value
