"""Keras models in: the Keras 3 ``.keras`` archive and the legacy HDF5 ``.h5`` model file, read without Keras.

Both files hold the model's configuration as JSON and its weights as HDF5 datasets:

* ``.keras`` (Keras 3, ``keras.saving.saving_lib``): a zip archive of ``config.json`` (the serialized model:
  ``Sequential`` or ``Functional``, its layers with ``class_name``, ``config`` and, for a functional model,
  ``inbound_nodes``), ``metadata.json`` (``keras_version``) and ``model.weights.h5``, where layer ``i``'s
  variables are datasets ``vars/0``, ``vars/1``, ... of group ``layers/<snake_case class name>[_n]`` (numbered
  in layer order per class; recent Keras also stores the layer's name as attribute ``name`` of ``vars``);
* ``.h5`` (legacy ``model.save("m.h5")``, Keras 2 and 3): root attribute ``model_config`` (the same JSON),
  ``keras_version``, and group ``model_weights/<layer name>`` whose attribute ``weight_names`` lists the
  datasets (paths below that group) in the layer's variable order.

Variables per layer, in order: ``Dense`` and ``Conv2D`` kernel then bias (with ``use_bias``),
``DepthwiseConv2D`` its (KH, KW, C_in, multiplier) kernel then bias, ``BatchNormalization`` gamma (with
``scale``), beta (with ``center``), moving mean, moving variance. Keras is channels-last (NHWC) like xbar and
its convolution kernels are HWIO already, so kernels are taken as they are; batch normalization is folded
into the layer before it (:func:`~xbar.nets.fold_batchnorm`).

The files are read in a forked reader process with a deadline, like :func:`xbar.io.load`, with its HDF5
checks (no links, declared sizes checked before reading, float32 only). Every problem is a one-line
:class:`~xbar.errors.XbarError` naming the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import hdf5_safe
from .. import io as xio
from .._files import check_regular_file
from .._isolated import ChildFailed, call_in_child
from ..errors import HDF5_ERRORS, XbarError
from ..nets.layers import (
    Activation,
    Add,
    AvgPool2D,
    Concat,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    Merge,
    Reshape,
    WeightLayer,
    fold_batchnorm,
)
from ..nets.network import Network

FRAMEWORK = "keras"

SUPPORTED = (
    "InputLayer",
    "Dense",
    "Conv2D",
    "DepthwiseConv2D",
    "BatchNormalization",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "Softmax",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "Flatten",
    "Reshape",
    "Add",
    "Concatenate",
    "Dropout",
)
"""Keras layer classes the importer reads (``Softmax`` and ``softmax`` activations at the output only)."""
ACTIVATIONS = ("linear", "relu", "relu6", "sigmoid", "tanh", "leaky_relu", "softmax (output only)")
"""``activation=`` values the importer reads."""
MODEL_CLASSES = ("Sequential", "Functional", "Model")

MAX_CONFIG_BYTES = 64 * 2**20
"""Most bytes of ``config.json`` / ``model_config`` (64 MiB)."""
MAX_LAYERS = 4096
"""Most layers of a Keras model, and most weight groups of its weights file."""
MAX_VARS = 16
"""Most variables (datasets) of one layer."""
READ_TIMEOUT_S = 30.0
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, NotImplementedError)


def _one_line(text: object, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------------------
# Reading (in the reader process): plain values out.


@dataclass
class _Raw:
    config_text: str
    keras_version: str | None
    by_name: dict[str, list[np.ndarray]] = field(default_factory=dict)
    """Variables by layer name (legacy files; ``.keras`` files that store the name)."""
    by_path: dict[str, list[np.ndarray]] = field(default_factory=dict)
    """Variables by weights-file group (``.keras``: ``layers/conv2d``)."""


def _text(value: Any, where: str, what: str) -> str:
    value = hdf5_safe.scalar(value)
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise XbarError(f"{where}: {what} is not UTF-8 text") from None
    if not isinstance(value, str):
        raise XbarError(f"{where}: {what} is not text")
    return value


def _names(value: Any) -> list[str]:
    """An HDF5 attribute holding a list of names (``layer_names``, ``weight_names``); empty arrays are float."""
    if isinstance(value, (str, bytes)):
        return [_text(value, "", "")]
    array = np.asarray(value)
    if array.size == 0:
        return []
    if array.dtype.kind not in "OSU":
        raise XbarError("a list of names is not text")
    return [_text(item, "", "a name") for item in np.ravel(array)]


def _member_path(group: h5py.Group, path: str, where: str) -> Any:
    """The object at ``path`` ("a/b/c") below ``group``, following hard links only; None if absent."""
    obj = group
    for part in path.split("/"):
        if not part:
            continue
        if not isinstance(obj, h5py.Group) or not hdf5_safe.has_member(obj, part, where):
            return None
        with hdf5_safe.reading(where, f"member {part!r}"):
            obj = obj[part]
    return obj


def _read_vars(group: h5py.Group, names: list[str], where: str, budget: Any) -> list[np.ndarray]:
    if len(names) > MAX_VARS:
        raise XbarError(f"{where}: {len(names)} variables, more than the {MAX_VARS} a layer may have")
    arrays = []
    for name in names:
        parent, _, leaf = name.rpartition("/")
        holder = _member_path(group, parent, where) if parent else group
        if not isinstance(holder, h5py.Group) or not hdf5_safe.has_member(holder, leaf, where):
            raise XbarError(f"{where}: variable {name!r} is missing")
        arrays.append(hdf5_safe.read_dataset(holder, leaf, where, budget))
    return arrays


def _read_keras_weights(data: bytes, where: str) -> tuple[dict, dict]:
    where = f"{where}: model.weights.h5"
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except HDF5_ERRORS as exc:
        raise XbarError(f"{where}: not a readable HDF5 file ({_one_line(exc)})") from None
    by_name: dict[str, list[np.ndarray]] = {}
    by_path: dict[str, list[np.ndarray]] = {}
    budget = hdf5_safe.Budget()
    try:
        if not hdf5_safe.has_member(f, "layers", where):
            return by_name, by_path
        layers = hdf5_safe.open_member(f, "layers", where, h5py.Group)
        with hdf5_safe.reading(where, "group 'layers'"):
            members = list(layers)
        if len(members) > MAX_LAYERS:
            raise XbarError(f"{where}: {len(members):,} layer groups, more than the {MAX_LAYERS} allowed")
        for member in members:
            if not isinstance(member, str):
                raise XbarError(f"{where}: a layer group's name is not UTF-8 text")
            sub_where = f"{where}: layers/{hdf5_safe.member_name(member)}"
            if not hdf5_safe.has_member(layers, member, where):
                continue
            sub = hdf5_safe.open_member(layers, member, where, h5py.Group)
            if not hdf5_safe.has_member(sub, "vars", sub_where):
                continue
            vars_group = hdf5_safe.open_member(sub, "vars", sub_where, h5py.Group)
            with hdf5_safe.reading(sub_where, "group 'vars'"):
                keys = list(vars_group)
            if not all(isinstance(k, str) and k.isdigit() for k in keys) or sorted(map(int, keys)) != list(
                range(len(keys))
            ):
                raise XbarError(f"{sub_where}/vars: members {keys[:8]!r} are not the variables 0, 1, ...")
            arrays = _read_vars(vars_group, [str(i) for i in range(len(keys))], f"{sub_where}/vars", budget)
            by_path[f"layers/{member}"] = arrays
            attrs = xio.read_attrs(vars_group, f"{sub_where}/vars")
            if "name" in attrs:
                by_name[_text(attrs["name"], sub_where, "attribute 'name'")] = arrays
    finally:
        with contextlib.suppress(*HDF5_ERRORS):
            f.close()
    return by_name, by_path


def _zip_member(archive: zipfile.ZipFile, name: str, limit: int, where: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise XbarError(f"{where}: the archive has no {name!r} (not a Keras 3 model archive)") from None
    if info.file_size > limit:
        raise XbarError(f"{where}: {name} declares {info.file_size:,} bytes, more than the {limit:,} allowed")
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except (*_ZIP_ERRORS, RuntimeError, ValueError) as exc:
        raise XbarError(f"{where}: cannot read {name} from the archive ({_one_line(exc)})") from None
    if len(data) > limit:
        raise XbarError(f"{where}: {name} holds more than the {limit:,} bytes allowed")
    return data


def _read_archive(path: Path) -> _Raw:
    where = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except (*_ZIP_ERRORS, ValueError) as exc:
        raise XbarError(f"{where}: not a Keras archive (not a readable zip file: {_one_line(exc)})") from None
    with archive:
        config = _zip_member(archive, "config.json", MAX_CONFIG_BYTES, where)
        version = None
        if "metadata.json" in archive.namelist():
            try:
                meta = json.loads(_zip_member(archive, "metadata.json", 2**20, where))
            except (ValueError, RecursionError):
                meta = None
            if isinstance(meta, dict) and isinstance(meta.get("keras_version"), str):
                version = meta["keras_version"]
        weights = _zip_member(archive, "model.weights.h5", xio.MAX_WEIGHTS_BYTES + 2**26, where)
    try:
        text = config.decode("utf-8")
    except UnicodeDecodeError:
        raise XbarError(f"{where}: config.json is not UTF-8 text") from None
    by_name, by_path = _read_keras_weights(weights, where)
    return _Raw(text, version, by_name, by_path)


def _read_legacy(path: Path) -> _Raw:
    where = str(path)
    try:
        f = h5py.File(path, "r")
    except HDF5_ERRORS as exc:
        raise XbarError(f"{where}: not a readable HDF5 file, corrupt or truncated ({_one_line(exc)})") from None
    try:
        attrs = xio.read_attrs(f, where)
        if "model_config" not in attrs:
            raise XbarError(
                f"{where}: no attribute 'model_config': not a Keras model file (a weights-only file, or "
                "another HDF5 file)"
            )
        text = _text(attrs["model_config"], where, "attribute 'model_config'")
        version = None
        if "keras_version" in attrs:
            version = _text(attrs["keras_version"], where, "attribute 'keras_version'")
        by_name: dict[str, list[np.ndarray]] = {}
        if not hdf5_safe.has_member(f, "model_weights", where):
            raise XbarError(f"{where}: no group 'model_weights': the file holds no weights")
        weights = hdf5_safe.open_member(f, "model_weights", where, h5py.Group)
        wattrs = xio.read_attrs(weights, f"{where}: model_weights")
        try:
            layer_names = _names(wattrs.get("layer_names", []))
        except XbarError:
            raise XbarError(f"{where}: model_weights: attribute 'layer_names' is not a list of names") from None
        if len(layer_names) > MAX_LAYERS:
            raise XbarError(f"{where}: {len(layer_names):,} layers, more than the {MAX_LAYERS} allowed")
        budget = hdf5_safe.Budget()
        for name in layer_names:
            layer_where = f"{where}: model_weights/{hdf5_safe.member_name(name)}"
            if not hdf5_safe.has_member(weights, name, f"{where}: model_weights"):
                raise XbarError(f"{layer_where}: listed in 'layer_names' but missing")
            group = hdf5_safe.open_member(weights, name, f"{where}: model_weights", h5py.Group)
            gattrs = xio.read_attrs(group, layer_where)
            try:
                names = _names(gattrs.get("weight_names", []))
            except XbarError:
                raise XbarError(f"{layer_where}: attribute 'weight_names' is not a list of names") from None
            by_name[name] = _read_vars(group, names, layer_where, budget)
    finally:
        with contextlib.suppress(*HDF5_ERRORS):
            f.close()
    return _Raw(text, version, by_name)


def _read(path: Path) -> _Raw:
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError as exc:
        raise XbarError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if magic.startswith(b"PK"):
        return _read_archive(path)
    if magic == b"\x89HDF\r\n\x1a\n":
        return _read_legacy(path)
    raise XbarError(f"{path}: neither a Keras 3 archive (a zip file) nor a legacy Keras HDF5 model file")


def _read_isolated(path: Path) -> _Raw:
    if not xio.ISOLATE_READER:
        return _read(path)
    timeout = READ_TIMEOUT_S + path.stat().st_size / xio.READ_BYTES_PER_S
    try:
        return call_in_child(_read, path, timeout, 3 * xio.MAX_WEIGHTS_BYTES + 2**30, passed=(XbarError,))
    except ChildFailed as exc:
        raise XbarError(f"{path}: {xio.reader_failure(exc)}") from None
    except RuntimeError as exc:
        raise RuntimeError(f"xbar failed reading {path}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# The model configuration: a graph of Keras layers.


@dataclass
class _KLayer:
    name: str
    cls: str
    config: dict
    sources: list[str]


def _snake(name: str) -> str:
    """Keras's ``naming.to_snake_case``: the group name of a layer class in ``model.weights.h5``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _history(item: Any, out: list[tuple[str, int, int]]) -> None:
    """Collect the (layer, node, tensor) of every Keras tensor in a Keras 3 node's ``args``."""
    if isinstance(item, dict):
        if item.get("class_name") == "__keras_tensor__":
            config = item.get("config")
            hist = config.get("keras_history") if isinstance(config, dict) else None
            if not isinstance(hist, list) or len(hist) != 3 or not isinstance(hist[0], str):
                raise XbarError("a tensor without a valid keras_history")
            out.append((hist[0], hist[1], hist[2]))
    elif isinstance(item, list):
        for sub in item:
            _history(sub, out)


def _node_sources(node: Any) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        _history(node.get("args", []), out)
    elif isinstance(node, list):  # Keras 2: [[layer, node, tensor, kwargs], ...]
        for entry in node:
            if not isinstance(entry, list) or len(entry) < 3 or not isinstance(entry[0], str):
                raise XbarError(f"an inbound node entry {_one_line(entry, 60)} is not [layer, node, tensor, ...]")
            out.append((entry[0], entry[1], entry[2]))
    else:
        raise XbarError("an inbound node is neither a dict nor a list")
    return out


def _endpoints(value: Any, what: str) -> list[str]:
    """Layer names of ``input_layers`` / ``output_layers`` ([name, 0, 0] or a list of them)."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, list) and v and isinstance(v[0], str) for v in value):
        raise XbarError(f"{what} is not a list of [layer, node, tensor]")
    return [v[0] for v in value]


def _parse_model(config: Any) -> tuple[list[_KLayer], str, str]:
    """(layers, input layer name or '', output layer name) of a model's config."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise XbarError("the model config is not a JSON object with 'class_name' and 'config'")
    cls, body = config.get("class_name"), config["config"]
    if cls not in MODEL_CLASSES:
        raise XbarError(f"model class {_one_line(cls, 40)!r} is not supported (one of {', '.join(MODEL_CLASSES)})")
    raw_layers = body.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise XbarError("the model config lists no layers")
    if len(raw_layers) > MAX_LAYERS:
        raise XbarError(f"{len(raw_layers):,} layers, more than the {MAX_LAYERS} allowed")
    layers: list[_KLayer] = []
    for i, raw in enumerate(raw_layers):
        if not isinstance(raw, dict) or not isinstance(raw.get("class_name"), str):
            raise XbarError(f"layer {i} of the config is not an object with a 'class_name'")
        lconfig = raw.get("config")
        if not isinstance(lconfig, dict):
            raise XbarError(f"layer {i} ({_one_line(raw['class_name'], 40)}) has no 'config' object")
        name = raw.get("name", lconfig.get("name"))
        if not isinstance(name, str) or not name:
            name = f"{_snake(raw['class_name'])}_{i}"
        layers.append(_KLayer(name, raw["class_name"], lconfig, []))
    if len({layer.name for layer in layers}) != len(layers):
        raise XbarError("two layers of the config have the same name")
    if cls == "Sequential":
        previous = ""
        if any(layer.cls == "InputLayer" for layer in layers[1:]):
            raise XbarError("a Sequential model with an InputLayer after its first layer")
        for layer in layers:
            layer.sources = [previous] if previous or layer.cls != "InputLayer" else []
            previous = layer.name
        if layers[0].cls != "InputLayer":
            shape = layers[0].config.get("batch_input_shape", body.get("build_input_shape"))
            layers.insert(0, _KLayer("", "InputLayer", {"batch_shape": shape}, []))
        return layers, layers[0].name, layers[-1].name
    for layer, raw in zip(layers, raw_layers):
        nodes = raw.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise XbarError(f"layer {layer.name!r}: 'inbound_nodes' is not a list")
        if len(nodes) > 1:
            raise XbarError(f"layer {layer.name!r} is called {len(nodes)} times (shared layers are not supported)")
        try:
            history = _node_sources(nodes[0]) if nodes else []
        except XbarError as exc:
            raise XbarError(f"layer {layer.name!r}: {exc}") from None
        if any(node != 0 or tensor != 0 for _, node, tensor in history):
            raise XbarError(f"layer {layer.name!r} reads a layer called more than once (shared layers)")
        layer.sources = [name for name, _, _ in history]
    inputs = _endpoints(body.get("input_layers"), "'input_layers'")
    outputs = _endpoints(body.get("output_layers"), "'output_layers'")
    if len(inputs) != 1 or len(outputs) != 1:
        raise XbarError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs; xbar takes one of each")
    return layers, inputs[0], outputs[0]


def _ordered(layers: list[_KLayer], output: str) -> list[_KLayer]:
    """The layers the output depends on, each after the layers it reads (depth-first, iterative)."""
    by_name = {layer.name: layer for layer in layers}
    if output not in by_name:
        raise XbarError(f"the output layer {output!r} is not in the config")
    order: list[_KLayer] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[tuple[str, int]] = [(output, 0)]
    while stack:
        name, next_source = stack.pop()
        layer = by_name.get(name)
        if layer is None:
            raise XbarError(f"a layer reads {name!r}, which is not in the config")
        if next_source == 0:
            if state.get(name) == 2:
                continue
            state[name] = 1
        if next_source < len(layer.sources):
            stack.append((name, next_source + 1))
            source = layer.sources[next_source]
            if state.get(source) == 1:
                raise XbarError(f"layer {name!r} reads {source!r} in a cycle")
            if state.get(source) != 2:
                stack.append((source, 0))
        else:
            state[name] = 2
            order.append(layer)
    return order


# ---------------------------------------------------------------------------------------------------------------
# Conversion: Keras layers to xbar layers.


def _pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return (value[0], value[1])
    raise XbarError(f"{what} must be two positive integers, got {_one_line(value, 40)}")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise XbarError(f"{what} must be a finite number, got {_one_line(value, 20)}")
    return float(value)


class _Builder:
    def __init__(self, raw: _Raw, layers: list[_KLayer], sequential_paths: bool, output: str):
        self.raw = raw
        self.output = output
        self.layers: list[Layer] = []
        self.inputs: list[tuple[int, ...]] = []
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.mapped: dict[str, int] = {}
        self.readers: dict[str, int] = {}
        self.by_name = {layer.name: layer for layer in layers}
        for layer in layers:
            for source in layer.sources:
                self.readers[source] = self.readers.get(source, 0) + 1
        # Where model.weights.h5 keeps each layer: layers/<snake case class>[_n], numbered in the model's
        # layer order (a Sequential model's layers exclude its InputLayer).
        self.paths: dict[str, str] = {}
        used: dict[str, int] = {}
        for layer in layers:
            if sequential_paths and layer.cls == "InputLayer":
                continue
            base = _snake(layer.cls)
            used[base] = used.get(base, -1) + 1
            self.paths[layer.name] = f"layers/{base}" if used[base] == 0 else f"layers/{base}_{used[base]}"

    # -- helpers

    def weights(self, layer: _KLayer, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        arrays = self.raw.by_name.get(layer.name)
        if arrays is None and layer.name in self.paths:
            arrays = self.raw.by_path.get(self.paths[layer.name])
        if arrays is None:
            raise XbarError(f"the weights file holds no weights for it (expected {len(shapes)} variables)")
        if len(arrays) != len(shapes):
            raise XbarError(f"the weights file holds {len(arrays)} variables for it, not {len(shapes)}")
        for array, shape in zip(arrays, shapes):
            if tuple(array.shape) != shape:
                raise XbarError(f"a variable of shape {tuple(array.shape)} where {shape} was expected")
            if not np.all(np.isfinite(array)):
                raise XbarError("a variable holds inf or NaN")
        return [np.asarray(a, np.float32) for a in arrays]

    def emit(self, layer: Layer, sources: list[int]) -> int:
        shapes = [self.shapes[j] for j in sources]
        out = layer.merge_shape(shapes) if isinstance(layer, Merge) else layer.output_shape(shapes[0])
        self.layers.append(layer)
        self.inputs.append(tuple(sources))
        index = len(self.layers) - 1
        self.shapes[index] = tuple(out)
        return index

    def activation(self, name: Any, index: int, is_output: bool) -> int:
        if isinstance(name, dict):  # Keras 3 may serialize a built-in activation as an object
            name = name.get("config") if isinstance(name.get("config"), str) else name.get("class_name")
        if name in (None, "linear"):
            return index
        if name == "softmax":
            if is_output:
                return index  # does not change the argmax
            raise XbarError("softmax is supported only at the output (where it does not change the argmax)")
        functions: dict[str, Activation] = {
            "relu": Activation("relu"),
            "relu6": Activation("clip", low=0.0, high=6.0),
            "sigmoid": Activation("sigmoid"),
            "tanh": Activation("tanh"),
            "leaky_relu": Activation("leakyrelu", alpha=0.2),
        }
        if not isinstance(name, str) or name not in functions:
            raise XbarError(f"activation {_one_line(name, 40)!r} is not supported (one of {', '.join(ACTIVATIONS)})")
        return self.emit(functions[name], [index])

    @staticmethod
    def channels_last(config: dict) -> None:
        if config.get("data_format", "channels_last") not in (None, "channels_last"):
            raise XbarError(f"data_format {config.get('data_format')!r} is not supported (only channels_last)")

    @staticmethod
    def padding(config: dict) -> str:
        padding = config.get("padding", "valid")
        if padding not in ("same", "valid"):
            raise XbarError(f"padding {_one_line(padding, 20)!r} is not supported (same or valid)")
        return padding

    # -- layers

    def add(self, layer: _KLayer) -> None:
        c, is_output = layer.config, layer.name == self.output
        sources = [self.mapped[s] for s in layer.sources]
        if layer.cls == "InputLayer":
            self.mapped[layer.name] = -1
            return
        if layer.cls in ("Add", "Concatenate"):
            if len(sources) < 2:
                raise XbarError(f"{layer.cls} needs two or more inputs, got {len(sources)}")
            if layer.cls == "Concatenate":
                rank = len(self.shapes[sources[0]])
                if c.get("axis", -1) not in (-1, rank):
                    raise XbarError(f"Concatenate on axis {c.get('axis')!r} is not supported (only the last axis)")
            self.mapped[layer.name] = self.emit(Add() if layer.cls == "Add" else Concat(), sources)
            return
        if len(sources) != 1:
            raise XbarError(f"{layer.cls} takes one input, got {len(sources)}")
        source, shape = sources[0], self.shapes[sources[0]]
        cls = layer.cls
        if cls == "Dense":
            if len(shape) != 1:
                raise XbarError(f"Dense on an input of shape {shape} is not supported (Flatten it first)")
            units = c.get("units")
            if isinstance(units, bool) or not isinstance(units, int) or units < 1:
                raise XbarError(f"units must be a positive integer, got {_one_line(units, 20)}")
            if c.get("lora_rank"):
                raise XbarError("LoRA weights are not supported (merge them into the kernel first)")
            use_bias = c.get("use_bias", True) is not False
            wanted: list[tuple[int, ...]] = [(shape[0], units)] + ([(units,)] if use_bias else [])
            arrays = self.weights(layer, wanted)
            dense = Dense(kernel=arrays[0], bias=arrays[1] if use_bias else None, activation="linear")
            index = self.emit(dense, [source])
            self.mapped[layer.name] = self.activation(c.get("activation"), index, is_output)
            return
        if cls in ("Conv2D", "DepthwiseConv2D"):
            self.channels_last(c)
            if len(shape) != 3:
                raise XbarError(f"{cls} on an input of shape {shape} (not H, W, C)")
            kh, kw = _pair(c.get("kernel_size"), "kernel_size")
            strides = _pair(c.get("strides", 1), "strides")
            dilations = _pair(c.get("dilation_rate", 1), "dilation_rate")
            padding = self.padding(c)
            use_bias = c.get("use_bias", True) is not False
            c_in = shape[2]
            if cls == "Conv2D":
                groups, filters = c.get("groups", 1), c.get("filters")
                if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or c_in % groups:
                    raise XbarError(f"groups {_one_line(groups, 20)} does not divide {c_in} input channels")
                if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
                    raise XbarError(f"filters must be a positive integer, got {_one_line(filters, 20)}")
                kernel_shape, c_out = (kh, kw, c_in // groups, filters), filters
            else:
                multiplier = c.get("depth_multiplier", 1)
                if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1:
                    raise XbarError(f"depth_multiplier must be a positive integer, got {_one_line(multiplier, 20)}")
                kernel_shape, c_out, groups = (kh, kw, c_in, multiplier), c_in * multiplier, c_in
            arrays = self.weights(layer, [kernel_shape] + ([(c_out,)] if use_bias else []))
            # Depthwise output channel c * multiplier + m is input channel c's m-th filter: group c of xbar's.
            kernel = arrays[0].reshape(kh, kw, kernel_shape[2] if cls == "Conv2D" else 1, c_out)
            conv = Conv2D(
                kernel=kernel,
                bias=arrays[1] if use_bias else None,
                activation="linear",
                padding=padding,
                strides=strides,
                dilations=dilations,
                groups=groups,
            )
            index = self.emit(conv, [source])
            self.mapped[layer.name] = self.activation(c.get("activation"), index, is_output)
            return
        if cls == "BatchNormalization":
            self.batchnorm(layer, source, shape)
            return
        if cls in ("Activation", "Softmax"):
            name = "softmax" if cls == "Softmax" else c.get("activation")
            self.mapped[layer.name] = self.activation(name, source, is_output)
            return
        if cls == "ReLU":
            top, slope, threshold = c.get("max_value"), c.get("negative_slope", 0.0), c.get("threshold", 0.0)
            if threshold not in (0, 0.0, None):
                raise XbarError(f"ReLU threshold {_one_line(threshold, 20)} is not supported (only 0)")
            if slope and top is not None:
                raise XbarError("ReLU with both max_value and negative_slope is not supported")
            if top is not None:
                act = Activation("clip", low=0.0, high=_number(top, "max_value"))
            elif slope:
                act = Activation("leakyrelu", alpha=_number(slope, "negative_slope"))
            else:
                act = Activation("relu")
            self.mapped[layer.name] = self.emit(act, [source])
            return
        if cls == "LeakyReLU":
            slope = c.get("negative_slope", c.get("alpha", 0.3))
            self.mapped[layer.name] = self.emit(
                Activation("leakyrelu", alpha=_number(slope, "negative_slope")), [source]
            )
            return
        if cls in ("MaxPooling2D", "AveragePooling2D"):
            self.channels_last(c)
            size = _pair(c.get("pool_size", 2), "pool_size")
            strides = size if c.get("strides") is None else _pair(c.get("strides"), "strides")
            pool_cls = MaxPool2D if cls == "MaxPooling2D" else AvgPool2D
            pool = pool_cls(pool_size=size, strides=strides, padding=self.padding(c))
            self.mapped[layer.name] = self.emit(pool, [source])
            return
        if cls == "GlobalAveragePooling2D":
            self.channels_last(c)
            index = self.emit(GlobalAvgPool2D(), [source])
            if c.get("keepdims"):
                index = self.emit(Reshape(shape=(1, 1, self.shapes[index][0])), [index])
            self.mapped[layer.name] = index
            return
        if cls == "Flatten":
            self.channels_last(c)
            self.mapped[layer.name] = self.emit(Flatten(), [source])
            return
        if cls == "Reshape":
            target = c.get("target_shape")
            if not isinstance(target, list):
                raise XbarError(f"target_shape must be a list of integers, got {_one_line(target, 40)}")
            self.mapped[layer.name] = self.emit(Reshape(shape=tuple(target)), [source])
            return
        if cls == "Dropout":
            self.mapped[layer.name] = source
            return
        raise XbarError("unsupported")  # pragma: no cover (classes are checked before)

    def batchnorm(self, layer: _KLayer, source: int, shape: tuple[int, ...]) -> None:
        c = layer.config
        axis = c.get("axis", -1)
        if isinstance(axis, list) and len(axis) == 1:
            axis = axis[0]
        if axis not in (-1, len(shape)):
            raise XbarError(f"BatchNormalization on axis {_one_line(axis, 20)} is not supported (only the last)")
        producer = layer.sources[0]
        target = self.layers[source] if source >= 0 else None
        if (
            not isinstance(target, WeightLayer)
            or self.by_name[producer].cls not in ("Dense", "Conv2D", "DepthwiseConv2D")
            or self.readers.get(producer, 0) != 1
            or any(source in sources for sources in self.inputs)
        ):
            raise XbarError(
                "BatchNormalization folds only into a Dense, Conv2D or DepthwiseConv2D layer without activation "
                "whose output nothing else reads"
            )
        n = shape[-1]
        scale, center = c.get("scale", True) is not False, c.get("center", True) is not False
        arrays = self.weights(layer, [(n,)] * (2 + scale + center))
        gamma = arrays.pop(0) if scale else np.ones(n, np.float32)
        beta = arrays.pop(0) if center else np.zeros(n, np.float32)
        eps = c.get("epsilon", 1e-3)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
            raise XbarError(f"epsilon must be a finite number >= 0, got {_one_line(eps, 20)}")
        self.layers[source] = fold_batchnorm(target, gamma, beta, arrays[0], arrays[1], float(eps))
        self.mapped[layer.name] = source


def _input_shape(first: _KLayer, given: tuple[int, ...] | None, where: str) -> tuple[int, ...]:
    declared = first.config.get("batch_shape", first.config.get("batch_input_shape"))
    dims = None
    if isinstance(declared, list) and len(declared) >= 2:
        dims = declared[1:]
    known = dims is not None and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims)
    if given is not None:
        if known and tuple(dims or ()) != tuple(given):
            raise XbarError(f"{where}: input shape {tuple(given)} given, but the model declares {tuple(dims or ())}")
        return tuple(given)
    if not known:
        raise XbarError(
            f"{where}: the model does not declare a complete input shape ({_one_line(declared, 40)}); "
            "give one with --input-shape"
        )
    return tuple(dims or ())


def import_model(path: Path, input_shape: tuple[int, ...] | None) -> Network:
    """The xbar network of the Keras model file ``path`` (``.keras`` archive or legacy ``.h5``).

    Parameters
    ----------
    path : Path
        The model file (a Keras 3 zip archive or a legacy HDF5 model file, told apart by their contents).
    input_shape : tuple of int or None
        One sample's shape, NHWC without the batch axis; None: the model's InputLayer shape.

    Returns
    -------
    Network
        The layers in a topological order, batch normalization folded, Dropout and an output softmax
        dropped; provenance ``framework`` and ``keras_version`` (when the file records it).
    """
    path = check_regular_file(path)
    where = str(path)
    raw = _read_isolated(path)
    try:
        config = json.loads(raw.config_text)
    except (ValueError, RecursionError) as exc:
        raise XbarError(f"{where}: the model config is not valid JSON ({_one_line(exc, 80)})") from None
    try:
        layers, input_name, output = _parse_model(config)
        order = _ordered(layers, output)
    except XbarError as exc:
        raise XbarError(f"{where}: {exc}") from None
    inputs = [layer for layer in order if layer.cls == "InputLayer"]
    if len(inputs) != 1 or (input_name and inputs[0].name != input_name):
        raise XbarError(f"{where}: the model's output depends on {len(inputs)} input layers; xbar takes one")
    shape = _input_shape(inputs[0], input_shape, where)
    builder = _Builder(raw, layers, config.get("class_name") == "Sequential", output)
    builder.shapes[-1] = shape
    for layer in order:
        if layer.cls not in SUPPORTED:
            raise XbarError(
                f"{where}: layer {_one_line(layer.name, 60)!r} of class {_one_line(layer.cls, 40)} is not "
                f"supported (supported: {', '.join(SUPPORTED)})"
            )
        try:
            builder.add(layer)
        except XbarError as exc:
            raise XbarError(f"{where}: layer {_one_line(layer.name, 60)!r} ({layer.cls}): {exc}") from None
    last = builder.mapped[output]
    if last < 0 or last != len(builder.layers) - 1:
        raise XbarError(f"{where}: the model computes nothing xbar can hold (its output is its input)")
    out_shape = builder.shapes[last]
    if len(out_shape) != 1:
        raise XbarError(f"{where}: the model's output has shape {out_shape}; xbar needs a vector of logits")
    provenance: dict[str, Any] = {"framework": FRAMEWORK}
    if raw.keras_version:
        provenance["keras_version"] = _one_line(raw.keras_version, 40)
    try:
        return Network(
            arch="",
            dataset="",
            input_shape=shape,
            n_classes=out_shape[0],
            layers=builder.layers,
            provenance=provenance,
            inputs=builder.inputs,
        )
    except XbarError as exc:
        raise XbarError(f"{where}: {exc}") from None
