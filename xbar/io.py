"""The HDF5 weights format (``format = "xbar-network"``, version 1): write, read, validate.

See ``docs/format.md``. Everything a file can get wrong is reported as a
:class:`~xbar.errors.WeightsFormatError` whose message names the file and the
problem; nothing here lets an h5py or numpy exception escape.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from ._files import atomic_path
from .errors import WeightsFormatError, XbarError
from .nets.layers import LAYER_KINDS, WeightLayer
from .nets.network import Network

FORMAT = "xbar-network"
FORMAT_VERSION = 1
PROVENANCE_KEYS = ("seed", "epochs", "sigma_neu", "timesteps", "test_accuracy")
"""Provenance stored as root attributes; anything else lives in the JSON attribute ``provenance``."""


def _to_attr(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def save(network: Network, path: str | os.PathLike) -> Path:
    """Write ``network`` to ``path`` atomically (a temporary file renamed into place).

    Root attributes: format, format_version, arch, dataset, input_shape,
    n_classes, the provenance keys of :data:`PROVENANCE_KEYS` (NaN/-1 when
    unknown) and the whole provenance as JSON. Group ``layers/`` holds one
    subgroup per layer named ``{index:02d}_{kind}`` with attribute ``kind``, the
    layer's parameters, and float32 datasets ``kernel`` and (if any) ``bias``.
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
        for index, layer in enumerate(network.layers):
            sub = group.create_group(f"{index:02d}_{layer.kind}")
            sub.attrs["kind"] = layer.kind
            for key, value in layer.attrs().items():
                sub.attrs[key] = _to_attr(value)
            if isinstance(layer, WeightLayer):
                sub.create_dataset("kernel", data=np.asarray(layer.kernel, dtype=np.float32))
                if layer.bias is not None:
                    sub.create_dataset("bias", data=np.asarray(layer.bias, dtype=np.float32))
    return path


def _attr(obj, key: str, where: str):
    if key not in obj.attrs:
        raise WeightsFormatError(f"{where}: missing attribute {key!r}")
    value = obj.attrs[key]
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _read_array(group, name: str, where: str) -> np.ndarray:
    if name not in group:
        raise WeightsFormatError(f"{where}: missing dataset {name!r}")
    dataset = group[name]
    if not isinstance(dataset, h5py.Dataset):
        raise WeightsFormatError(f"{where}/{name}: is not a dataset")
    if dataset.dtype != np.float32:
        raise WeightsFormatError(f"{where}/{name}: dtype {dataset.dtype} is not float32")
    array = dataset[()]
    if not np.all(np.isfinite(array)):
        raise WeightsFormatError(f"{where}/{name}: contains NaN or Inf values")
    return np.asarray(array)


def _read_layer(group, where: str):
    kind = _attr(group, "kind", where)
    if kind not in LAYER_KINDS:
        raise WeightsFormatError(f"{where}: unknown layer kind {kind!r}")
    cls = LAYER_KINDS[kind]
    params = {}
    # Each kind declares its attributes (Layer.attr_types), so a new kind needs nothing here.
    for key, typ in cls.attr_types().items():
        value = _attr(group, key, where)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise WeightsFormatError(f"{where}: attribute {key!r} must be {typ.__name__}, got {value!r}")
        params[key] = value
    if issubclass(cls, WeightLayer):
        params["kernel"] = _read_array(group, "kernel", where)
        params["bias"] = _read_array(group, "bias", where) if "bias" in group else None
    try:
        return cls(**params)
    except XbarError as exc:
        raise WeightsFormatError(f"{where}: {exc}") from None


def load(path: str | os.PathLike) -> Network:
    """Read and validate a weights file; raise :class:`WeightsFormatError` naming any problem."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFormatError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise WeightsFormatError(f"{path}: not a readable HDF5 file (corrupt or truncated)") from None
    try:
        with f:
            return _load_open(f, str(path))
    except WeightsFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        # h5py reports damaged object headers and chunks only when they are read.
        raise WeightsFormatError(f"{path}: unreadable HDF5 content ({exc})") from None


def _load_open(f: h5py.File, where: str) -> Network:
    fmt = _attr(f, "format", where)
    if fmt != FORMAT:
        raise WeightsFormatError(f"{where}: format is {fmt!r}, expected {FORMAT!r}")
    version = _attr(f, "format_version", where)
    if version != FORMAT_VERSION:
        raise WeightsFormatError(f"{where}: format_version {version} is not supported (expected {FORMAT_VERSION})")
    arch = str(_attr(f, "arch", where))
    dataset = str(_attr(f, "dataset", where))
    input_shape = tuple(int(d) for d in np.atleast_1d(f.attrs.get("input_shape", [])))
    if not input_shape or any(d < 1 for d in input_shape):
        raise WeightsFormatError(f"{where}: missing or invalid attribute 'input_shape'")
    n_classes = _attr(f, "n_classes", where)
    if not isinstance(n_classes, int) or n_classes < 1:
        raise WeightsFormatError(f"{where}: attribute 'n_classes' must be a positive integer")
    provenance = {}
    if "provenance" in f.attrs:
        try:
            provenance = json.loads(_attr(f, "provenance", where))
        except (TypeError, ValueError):
            raise WeightsFormatError(f"{where}: attribute 'provenance' is not valid JSON") from None
    if "layers" not in f or not isinstance(f["layers"], h5py.Group):
        raise WeightsFormatError(f"{where}: missing group 'layers'")
    names = sorted(f["layers"])
    if not names:
        raise WeightsFormatError(f"{where}: group 'layers' is empty")
    layers = []
    for name in names:
        sub = f["layers"][name]
        if not isinstance(sub, h5py.Group):
            raise WeightsFormatError(f"{where}: layers/{name} is not a group")
        layers.append(_read_layer(sub, f"{where}: layers/{name}"))
    try:
        return Network(arch, dataset, input_shape, n_classes, layers, provenance)
    except XbarError as exc:
        raise WeightsFormatError(f"{where}: inconsistent layer shapes: {exc}") from None
