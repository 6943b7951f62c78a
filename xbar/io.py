"""The HDF5 weights format (``format = "xbar-network"``, version 2; version 1 still read): write, read, validate.

See ``docs/format.md``. Everything a file can get wrong is reported as a
:class:`~xbar.errors.WeightsFormatError` whose message (one line) names the file
and the problem.

Reading happens in two steps. :func:`_read_file` is the only code that calls
h5py on the file: it checks what HDF5 declares (object kinds, links, sizes)
before reading anything, reads the attributes and datasets into plain numpy
values, and turns the exceptions h5py raises on a damaged file into
:class:`WeightsFormatError` (only there, around h5py calls, so that a bug
elsewhere in xbar still shows its traceback). :func:`_build` then validates
those values and builds the :class:`~xbar.nets.Network`.

A damaged file can make the HDF5 library itself loop forever or crash (fuzzing
found both: a global heap object of size 0 is an endless loop in HDF5's
parser, and some flipped bits in an attribute's header a segmentation fault),
which no exception handler can catch. :func:`load` therefore runs
:func:`_read_file` in a forked reader process with a deadline
(:data:`READ_TIMEOUT_S`) and a memory cap, and reports a hang or a crash of
that process as a damaged file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._files import atomic_path, check_regular_file
from ._isolated import ChildFailed, call_in_child
from .data import DATASETS
from .errors import HDF5_ERRORS, WeightsFormatError, XbarError
from .hdf5_safe import (
    MAX_WEIGHTS_BYTES,
    Budget,
    has_member,
    member_name,
    one_line,
    open_member,
    read_dataset,
    reading,
    scalar,
)
from .nets.layers import LAYER_KINDS, WeightLayer
from .nets.network import Network, format_bytes

FORMAT = "xbar-network"
FORMAT_VERSION = 2
"""The version :func:`save` writes: a graph of layers, each with its ``inputs`` (docs/format.md)."""
READ_VERSIONS = (1, 2)
"""Versions :func:`load` reads. Version 1 is a chain of the five kinds of :data:`V1_ATTRS`."""
V1_ATTRS: dict[str, dict[str, type]] = {
    "dense": {"activation": str},
    "conv2d": {"activation": str, "padding": str, "strides": int},
    "mosaic": {"activation": str, "timesteps": int, "feedback": int},
    "maxpool2d": {"pool_size": int},
    "flatten": {},
}
"""The layer kinds of version 1 and their attributes as version 1 stores them (scalars: one int ``strides`` or
``pool_size`` stands for both axes); the attributes added since take their defaults."""
MAX_TUPLE = 16
"""Most integers in an integer-array attribute (``inputs``, ``strides``, ``pads``, ...)."""
MAX_TUPLE_VALUE = 2**31 - 1
"""Largest magnitude of an integer in an integer-array attribute (layers check their own, tighter, ranges)."""
PROVENANCE_KEYS = ("seed", "epochs", "sigma_neu", "timesteps", "test_accuracy")
"""Provenance stored as root attributes; anything else lives in the JSON attribute ``provenance``."""

MAX_LAYERS = 256
"""Most members of group ``layers`` (the paper's networks have 3 to 7)."""
MAX_ATTRIBUTES = 64
"""Most attributes of the root or of one layer (xbar writes 12 and 1 to 4)."""
MAX_ATTRIBUTE_BYTES = 2**20
"""Most bytes one attribute may declare (its shape x item size; a string counts its pointer): 1 MiB."""
MAX_PROVENANCE_DEPTH = 32
"""Most levels of nesting of the JSON attribute ``provenance``."""
READ_TIMEOUT_S = 30.0
"""Seconds the reader process is given, plus one per :data:`READ_BYTES_PER_S` bytes of file."""
READ_BYTES_PER_S = 50 * 2**20
"""Reading speed assumed for the deadline (bytes/s): a slow disk."""
ISOLATE_READER = hasattr(os, "fork")
"""Read in a forked process (where there is ``os.fork``). Reading in this process saves the fork and one copy
of the data (about 15 ms for a shipped file, 0.3 s for 127 MB), but a damaged file could then hang or crash it."""


def _to_attr(value):
    if isinstance(value, tuple):  # strides, pads, shapes: a 1-D int64 array
        return np.asarray(value, dtype=np.int64)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def save(network: Network, path: str | os.PathLike) -> Path:
    """Write ``network`` to ``path`` atomically (a temporary file renamed into place).

    Root attributes: format, format_version, arch, dataset, input_shape,
    n_classes, the provenance keys of :data:`PROVENANCE_KEYS` (NaN/-1 when
    unknown) and the whole provenance as JSON. Group ``layers/`` holds one
    subgroup per layer named ``{index:02d}_{kind}`` (in topological order) with
    attributes ``kind``, ``inputs`` (int64 array: the indices of the layers it
    reads, -1 the network input) and the layer's parameters (tuples as int64
    arrays), and float32 datasets ``kernel`` and (if any) ``bias``.
    """
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["arch"] = network.arch
        f.attrs["dataset"] = network.dataset
        f.attrs["input_shape"] = np.asarray(network.input_shape, dtype=np.int64)
        f.attrs["n_classes"] = network.n_classes
        prov = network.provenance
        for key in PROVENANCE_KEYS:
            default = -1 if key in ("seed", "epochs", "timesteps") else float("nan")
            value = prov.get(key, default)
            f.attrs[key] = default if value is None else value
        f.attrs["provenance"] = json.dumps(prov, sort_keys=True)
        group = f.create_group("layers")
        assert network.inputs is not None  # normalised by Network
        for index, (layer, sources) in enumerate(zip(network.layers, network.inputs)):
            sub = group.create_group(f"{index:02d}_{layer.kind}")
            sub.attrs["kind"] = layer.kind
            sub.attrs["inputs"] = np.asarray(sources, dtype=np.int64)
            for key, value in layer.attrs().items():
                sub.attrs[key] = _to_attr(value)
            if isinstance(layer, WeightLayer):
                sub.create_dataset("kernel", data=np.asarray(layer.kernel, dtype=np.float32))
                if layer.bias is not None:
                    sub.create_dataset("bias", data=np.asarray(layer.bias, dtype=np.float32))
    return path


def load(path: str | os.PathLike) -> Network:
    """Read and validate a weights file; raise :class:`WeightsFormatError` naming any problem.

    Only a regular file is opened (a FIFO or a folder is refused at once). It is
    read in a reader process (see the module's docstring) unless
    :data:`ISOLATE_READER` is false, and validated here.
    """
    try:
        path = check_regular_file(path)
    except XbarError as exc:
        raise WeightsFormatError(str(exc)) from None
    raw = _read_isolated(path) if ISOLATE_READER else _read_file(path)
    return _build(raw, str(path))


# ---------------------------------------------------------------------------------------------------------------
# Reading (h5py): everything the file declares is checked before it is read.


@dataclass
class _Odd:
    """An attribute value of a kind xbar never stores (reference, compound, empty, ...), by description."""

    description: str


@dataclass
class _RawLayer:
    name: str
    attrs: dict[str, Any]
    arrays: dict[str, np.ndarray]
    """``kernel`` and ``bias`` where the group has them."""


@dataclass
class _RawFile:
    """What :func:`_read_file` read: plain values, no h5py objects (it crosses a pipe)."""

    attrs: dict[str, Any]
    layers: list[_RawLayer] | None
    """None when there is no member ``layers``."""


def _read_file(path: Path) -> _RawFile:
    """Read the root attributes and each layer's attributes, kernel and bias (every h5py call of :func:`load`)."""
    where = str(path)
    try:
        f = h5py.File(path, "r")
    except HDF5_ERRORS as exc:
        raise WeightsFormatError(f"{where}: not a readable HDF5 file, corrupt or truncated ({one_line(exc)})") from None
    try:
        attrs = read_attrs(f, where)
        layers = None
        if has_member(f, "layers", where):
            layers = _read_layers(open_member(f, "layers", where, h5py.Group), where)
        return _RawFile(attrs, layers)
    finally:
        # Read-only: nothing to flush, and an error here must not hide the one being raised.
        with contextlib.suppress(*HDF5_ERRORS):
            f.close()


def read_attrs(obj: h5py.HLObject, where: str) -> dict[str, Any]:
    """Every attribute of ``obj`` as a plain value, after checking its declared size."""
    with reading(where, "the attributes"):
        count = len(obj.attrs)
    if count > MAX_ATTRIBUTES:
        raise WeightsFormatError(f"{where}: {count:,} attributes, more than the {MAX_ATTRIBUTES} allowed")
    with reading(where, "the attribute names"):
        names = list(obj.attrs)
    values = {}
    for name in names:
        if not isinstance(name, str):  # h5py hands back the bytes of a name that is not UTF-8
            raise WeightsFormatError(f"{where}: an attribute name is not UTF-8 text ({one_line(repr(name), 60)})")
        what = f"attribute {member_name(name)!r}"
        with reading(where, what):
            attr = obj.attrs.get_id(name)
            shape, dtype = attr.shape, attr.dtype
        declared = (math.prod(shape) if shape else 1) * dtype.itemsize
        if declared > MAX_ATTRIBUTE_BYTES:
            raise WeightsFormatError(
                f"{where}: {what} declares {format_bytes(declared)}, more than the "
                f"{format_bytes(MAX_ATTRIBUTE_BYTES)} allowed"
            )
        with reading(where, what):
            value = obj.attrs[name]
        values[name] = _plain(value)
    return values


def _plain(value: Any) -> Any:
    """An attribute value as str, bytes, a numeric or string numpy scalar or array, or :class:`_Odd`."""
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (np.generic, np.ndarray)):
        if value.dtype.kind in "biufSU":
            return value
        if value.dtype.kind == "O" and all(isinstance(item, (str, bytes)) for item in np.ravel(value)):
            return value
        return _Odd(f"{value.dtype} values of shape {np.shape(value)}")
    return _Odd(type(value).__name__)


def _read_layers(group: h5py.Group, where: str) -> list[_RawLayer]:
    with reading(where, "group 'layers'"):
        count = len(group)
    if count > MAX_LAYERS:
        raise WeightsFormatError(f"{where}: group 'layers' has {count:,} members, more than the {MAX_LAYERS} allowed")
    with reading(where, "the names in group 'layers'"):
        names = list(group)
    for name in names:
        if not isinstance(name, str):  # h5py hands back the bytes of a name that is not UTF-8
            raise WeightsFormatError(
                f"{where}: a name in group 'layers' is not UTF-8 text ({one_line(repr(name), 60)})"
            )
    # By the leading index, then the name: "100_add" after "99_dense" (a plain sort would put it after "10_...").
    names.sort(key=lambda name: (int(m.group()) if (m := re.match(r"[0-9]{1,6}", name)) else -1, name))
    budget = Budget()
    layers = []
    for name in names:
        layer_where = f"{where}: layers/{member_name(name)}"
        if not has_member(group, name, f"{where}: layers"):
            raise WeightsFormatError(f"{layer_where}: listed but cannot be opened")
        sub = open_member(group, name, f"{where}: layers", h5py.Group)
        attrs = read_attrs(sub, layer_where)
        arrays = {}
        for dataset in ("kernel", "bias"):
            if has_member(sub, dataset, layer_where):
                arrays[dataset] = read_dataset(sub, dataset, layer_where, budget)
        layers.append(_RawLayer(name, attrs, arrays))
    return layers


# ---------------------------------------------------------------------------------------------------------------
# The reader process.


def _read_isolated(path: Path) -> _RawFile:
    """:func:`_read_file` in a forked child process (:func:`xbar._isolated.call_in_child`), within a deadline;
    a hang or a crash of the HDF5 library is reported as a damaged file."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsFormatError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    timeout = READ_TIMEOUT_S + size / READ_BYTES_PER_S
    try:
        return call_in_child(_read_file, path, timeout, 2 * MAX_WEIGHTS_BYTES + 2**30, passed=(WeightsFormatError,))
    except ChildFailed as exc:
        raise WeightsFormatError(f"{path}: {reader_failure(exc)}") from None
    except RuntimeError as exc:
        raise RuntimeError(f"xbar failed reading {path}: {exc}") from None


_READER_FAILURES = {
    "timeout": "the HDF5 library did not finish reading it in {detail} (a damaged file can make it loop forever)",
    "crashed": "the HDF5 library crashed reading it ({detail}); the file is damaged",
    "killed": "the reader process was killed ({detail}) while reading it",
    "exited": "the reader process failed ({detail})",
    "memory": "reading it needs more memory than the reader may use",
}
"""How each :class:`~xbar._isolated.ChildFailed` kind reads, after the file's name."""


def reader_failure(exc: ChildFailed) -> str:
    """What an HDF5 reader process that gave no answer means, worded to follow the file's name (one line).

    For every HDF5 file xbar reads in a child: weights, Keras models, test sets.
    """
    return _READER_FAILURES[exc.kind].format(detail=exc.detail)


# ---------------------------------------------------------------------------------------------------------------
# Validation: plain values in, a Network out.


def _describe(value: Any) -> str:
    """A short description of an attribute value for messages."""
    if isinstance(value, _Odd):
        return value.description
    if isinstance(value, np.ndarray) and value.ndim > 0:
        if value.size <= 4 and value.dtype.kind in "biufSUO":
            return one_line(f"{value.dtype} array {value.tolist()}", 60)
        return f"{value.dtype} array of shape {value.shape}"
    return one_line(repr(value.item() if isinstance(value, np.generic) else value), 60)


def _need(attrs: dict[str, Any], key: str, where: str) -> Any:
    if key not in attrs:
        raise WeightsFormatError(f"{where}: missing attribute {key!r}")
    return attrs[key]


def _typed(attrs: dict[str, Any], key: str, typ: type, where: str) -> Any:
    """Attribute ``key`` as a ``typ`` (str, int or float) scalar; bytes must be UTF-8, bool is not an int."""
    raw = _need(attrs, key, where)
    value = scalar(raw)
    if typ is str and isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise WeightsFormatError(f"{where}: attribute {key!r} is not UTF-8 text") from None
    if isinstance(value, str) and not _is_unicode(value):  # h5py keeps undecodable bytes as lone surrogates
        raise WeightsFormatError(f"{where}: attribute {key!r} is not UTF-8 text")
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise WeightsFormatError(f"{where}: attribute {key!r} must be {typ.__name__}, got {_describe(raw)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise WeightsFormatError(f"{where}: attribute {key!r} must be finite, got {value}")
    return value


def _int_tuple(attrs: dict[str, Any], key: str, where: str) -> tuple[int, ...]:
    """Attribute ``key`` as a tuple of ints: a 1-D integer array (not bool) of 1 to :data:`MAX_TUPLE` values,
    each of magnitude at most :data:`MAX_TUPLE_VALUE` (the layer checks its own ranges)."""
    raw = _need(attrs, key, where)
    if not isinstance(raw, np.ndarray) or raw.ndim != 1 or raw.dtype.kind not in "iu" or not 1 <= raw.size <= MAX_TUPLE:
        raise WeightsFormatError(
            f"{where}: attribute {key!r} must be a 1-D array of 1 to {MAX_TUPLE} integers, got {_describe(raw)}"
        )
    values = tuple(int(v) for v in raw)
    if any(abs(v) > MAX_TUPLE_VALUE for v in values):
        raise WeightsFormatError(f"{where}: attribute {key!r} holds an integer out of range: {_describe(raw)}")
    return values


def _attr(attrs: dict[str, Any], key: str, typ: Any, where: str) -> Any:
    """Attribute ``key`` of type ``typ``: ``str``, ``int``, ``float`` (:func:`_typed`) or ``tuple[int, ...]``."""
    if typing.get_origin(typ) is tuple:
        return _int_tuple(attrs, key, where)
    return _typed(attrs, key, typ, where)


def _is_unicode(text: str) -> bool:
    """Whether ``text`` can be written out as UTF-8 (no lone surrogates), as every printed string must."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _label(attrs: dict[str, Any], key: str, where: str) -> str:
    """A printable string attribute (``arch``, ``dataset``): shown in reports, so no control characters."""
    value = _typed(attrs, key, str, where)
    if not value.isprintable() or len(value) > 200:
        raise WeightsFormatError(
            f"{where}: attribute {key!r} must be a printable name, got {one_line(repr(value), 60)}"
        )
    return value


def _input_shape(attrs: dict[str, Any], where: str) -> tuple[int, ...]:
    raw = _need(attrs, "input_shape", where)
    shape = np.atleast_1d(raw) if isinstance(raw, (np.ndarray, np.generic)) else None
    if shape is None or shape.dtype.kind not in "iu" or shape.ndim != 1 or not 1 <= shape.size <= 3:
        raise WeightsFormatError(
            f"{where}: attribute 'input_shape' must be 1 to 3 positive integers (NHWC, no batch axis), "
            f"got {_describe(raw)}"
        )
    dims = tuple(int(d) for d in shape)
    if any(d < 1 for d in dims):
        raise WeightsFormatError(f"{where}: attribute 'input_shape' must be positive integers, got {dims}")
    return dims


def _json_depth(value: Any) -> int:
    """Levels of nesting of a parsed JSON value (a scalar is 0), without recursion."""
    depth, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        if children:
            depth = max(depth, level + 1)
            stack.extend((child, level + 1) for child in children)
    return depth


def _provenance(attrs: dict[str, Any], where: str) -> dict:
    if "provenance" not in attrs:
        return {}
    text = _typed(attrs, "provenance", str, where)
    try:
        value = json.loads(text)
    except RecursionError:
        raise WeightsFormatError(
            f"{where}: attribute 'provenance' is nested too deeply (more than {MAX_PROVENANCE_DEPTH} levels)"
        ) from None
    except ValueError:  # JSONDecodeError, or an integer of more digits than Python converts
        raise WeightsFormatError(f"{where}: attribute 'provenance' is not valid JSON") from None
    if not isinstance(value, dict):
        raise WeightsFormatError(f"{where}: attribute 'provenance' must be a JSON object, got {type(value).__name__}")
    if _json_depth(value) > MAX_PROVENANCE_DEPTH:
        raise WeightsFormatError(
            f"{where}: attribute 'provenance' is nested too deeply (more than {MAX_PROVENANCE_DEPTH} levels)"
        )
    # A JSON escape such as "\udcff" parses to a lone surrogate, which no report could print.
    if not _is_unicode(json.dumps(value, ensure_ascii=False)):
        raise WeightsFormatError(f"{where}: attribute 'provenance' holds text that is not valid Unicode")
    return value


def _weights(array: np.ndarray, where: str) -> np.ndarray:
    """A dataset's values as native float32, refusing an empty or non-finite one (shapes: the layer's job)."""
    if array.size == 0:
        raise WeightsFormatError(f"{where}: is empty (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        raise WeightsFormatError(f"{where}: contains NaN or Inf values")
    return np.asarray(array, dtype=np.float32)


def _build_layer(raw: _RawLayer, where: str, version: int):
    kind = _typed(raw.attrs, "kind", str, where)
    if kind not in (LAYER_KINDS if version >= 2 else V1_ATTRS):
        raise WeightsFormatError(f"{where}: unknown layer kind {one_line(repr(kind), 60)} (format_version {version})")
    cls = LAYER_KINDS[kind]
    # Each kind declares its attributes (Layer.attr_types), so a new kind needs nothing here.
    types = cls.attr_types() if version >= 2 else V1_ATTRS[kind]
    params: dict[str, Any] = {key: _attr(raw.attrs, key, typ, where) for key, typ in types.items()}
    if issubclass(cls, WeightLayer):
        if "kernel" not in raw.arrays:
            raise WeightsFormatError(f"{where}: missing dataset 'kernel'")
        params["kernel"] = _weights(raw.arrays["kernel"], f"{where}/kernel")
        params["bias"] = _weights(raw.arrays["bias"], f"{where}/bias") if "bias" in raw.arrays else None
    try:
        return cls(**params)
    except XbarError as exc:
        raise WeightsFormatError(f"{where}: {exc}") from None


def _build(raw: _RawFile, where: str) -> Network:
    """Validate what :func:`_read_file` read and build the network."""
    attrs = raw.attrs
    fmt = _typed(attrs, "format", str, where)
    if fmt != FORMAT:
        raise WeightsFormatError(f"{where}: format is {one_line(repr(fmt), 60)}, expected {FORMAT!r}")
    version = _typed(attrs, "format_version", int, where)
    if version not in READ_VERSIONS:
        raise WeightsFormatError(
            f"{where}: format_version {version} is not supported (expected {' or '.join(map(str, READ_VERSIONS))})"
        )
    arch = _label(attrs, "arch", where)
    dataset = _label(attrs, "dataset", where)
    input_shape = _input_shape(attrs, where)
    if dataset in DATASETS and math.prod(input_shape) != math.prod(DATASETS[dataset].image_shape):
        # Caught here, naming the file, rather than when the first test image does not fit.
        image_shape = DATASETS[dataset].image_shape
        raise WeightsFormatError(
            f"{where}: attribute 'input_shape' {input_shape} does not hold one {dataset} image "
            f"({image_shape}: {math.prod(image_shape)} numbers)"
        )
    n_classes = _typed(attrs, "n_classes", int, where)
    if n_classes < 1:
        raise WeightsFormatError(f"{where}: attribute 'n_classes' must be a positive integer, got {n_classes}")
    provenance = _provenance(attrs, where)
    if raw.layers is None:
        raise WeightsFormatError(f"{where}: missing group 'layers'")
    if not raw.layers:
        raise WeightsFormatError(f"{where}: group 'layers' is empty")
    layers = [_build_layer(layer, f"{where}: layers/{member_name(layer.name)}", version) for layer in raw.layers]
    # Version 1 is a chain; version 2 names each layer's inputs, which Network checks (earlier layers only).
    inputs = None
    if version >= 2:
        inputs = [
            _int_tuple(layer.attrs, "inputs", f"{where}: layers/{member_name(layer.name)}") for layer in raw.layers
        ]
    try:
        return Network(arch, dataset, input_shape, n_classes, layers, provenance, inputs)
    except XbarError as exc:
        raise WeightsFormatError(f"{where}: the layers do not make a valid network: {exc}") from None
