"""Import an ONNX model (opset 13 or newer) as an xbar :class:`~xbar.nets.Network` (docs/import.md).

The graph is walked in its (topological) node order; each node becomes an xbar layer, is folded into the
layer before it (BatchNormalization, the Add of a MatMul's bias) or is dropped (Identity, Dropout, a final
Softmax). ONNX tensors are NCHW; xbar's are NHWC: every value keeps its ONNX shape (without the batch axis)
beside the xbar layer that computes it, kernels are transposed (OIHW -> HWIO), and a Flatten of a feature
map feeding a dense layer has that layer's kernel rows permuted from (C, H, W) to (H, W, C) order.

Every failure is a one-line :class:`~xbar.errors.XbarError`: a file that is not ONNX, an opset before 13, an
operator or attribute outside :data:`SUPPORTED` (naming the node), a malformed tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import read_bytes
from ..errors import XbarError
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
    WeightLayer,
    fold_batchnorm,
)
from ..nets.network import Network

FRAMEWORK = "onnx"
MIN_OPSET = 13
MAX_MODEL_BYTES = 2**31 - 1
"""Largest model file read (protobuf's own limit, 2 GiB)."""
MAX_TENSOR_BYTES = 2 * 2**30
"""Most bytes one constant tensor may declare (its shape x item size), checked before it is converted."""

SUPPORTED = (
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "BatchNormalization",
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Concat",
    "Softmax",
    "LogSoftmax",
    "Dropout",
    "Identity",
    "Constant",
)
"""The ONNX operators (default domain) the importer maps; the table in docs/import.md says how."""

_FLOAT = 1
"""onnx.TensorProto.FLOAT: the only input element type taken."""
_FLOAT_MAX = float(np.finfo(np.float32).max)


@dataclass
class _Value:
    """An ONNX tensor computed by the network: the xbar layer that computes it (-1: the input), its ONNX
    shape without the batch axis, and, for a flattened (C, H, W) feature map, that shape (its element order
    differs from xbar's NHWC flatten until a dense layer's rows are permuted)."""

    index: int
    onnx_shape: tuple[int, ...]
    chw: tuple[int, int, int] | None = None


def _onnx():
    try:
        import onnx
    except ImportError:
        raise XbarError("importing ONNX models needs the onnx package: pip install 'xbar[import]'") from None
    return onnx


def _parse(path: Path):
    """The ModelProto of ``path``, checked: a parseable ONNX model of the default domain at opset >= 13."""
    onnx = _onnx()
    from google.protobuf.message import DecodeError

    raw = read_bytes(path, MAX_MODEL_BYTES)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(raw)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise XbarError(f"{path}: not an ONNX model (protobuf: {exc})") from None
    if not model.HasField("graph"):
        raise XbarError(f"{path}: not an ONNX model (no graph)")
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset is None:
        raise XbarError(f"{path}: the model imports no opset of the default ONNX domain")
    if opset < MIN_OPSET:
        raise XbarError(
            f"{path}: opset {opset} is older than {MIN_OPSET}; re-export it (torch.onnx.export(..., opset_version=17))"
        )
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise XbarError(f"{path}: opset {opset} is newer than {newest}, the newest this onnx package knows")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise XbarError(f"{path}: invalid ONNX model: {first[:300]}") from None
    return model, int(opset)


def _array(tensor, where: str) -> np.ndarray:
    """A TensorProto as a numpy array; a malformed or external tensor is an :class:`XbarError`."""
    onnx = _onnx()
    from onnx import numpy_helper

    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise XbarError(f"{where}: tensor {tensor.name!r} keeps its data in an external file, which is not supported")
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise XbarError(f"{where}: tensor {tensor.name!r} has negative dimensions {dims}")
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        raise XbarError(f"{where}: tensor {tensor.name!r} has unknown element type {tensor.data_type}") from None
    if math.prod(dims) * itemsize > MAX_TENSOR_BYTES:
        raise XbarError(f"{where}: tensor {tensor.name!r} declares shape {dims}, more than 2 GiB")
    try:
        return np.array(numpy_helper.to_array(tensor))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise XbarError(f"{where}: tensor {tensor.name!r} is malformed ({type(exc).__name__}: {exc})") from None


def _attributes(node, where: str) -> dict[str, Any]:
    onnx = _onnx()
    out = {}
    for attribute in node.attribute:
        try:
            out[attribute.name] = onnx.helper.get_attribute_value(attribute)
        except (ValueError, TypeError) as exc:
            raise XbarError(f"{where}: attribute {attribute.name!r} is malformed ({exc})") from None
    return out


class _Converter:
    """The state of one import: constants, the values computed so far, and the layers made for them."""

    def __init__(self, model, path: Path, input_shape: tuple[int, ...] | None):
        self.graph = model.graph
        self.path = path
        self.layers: list[Layer] = []
        self.inputs: list[tuple[int, ...]] = []
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.values: dict[str, _Value] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.outputs = [output.name for output in self.graph.output]
        self.uses: dict[str, int] = {}
        for node in self.graph.node:
            for name in node.input:
                if name:
                    self.uses[name] = self.uses.get(name, 0) + 1
        for name in self.outputs:
            self.uses[name] = self.uses.get(name, 0) + 1
        for tensor in self.graph.initializer:
            self.consts[tensor.name] = _array(tensor, f"{path}: initializer")
        self.xbar_input_shape = self._input(input_shape)

    # -- the graph input -------------------------------------------------------------------------------
    def _input(self, given: tuple[int, ...] | None) -> tuple[int, ...]:
        real = [value for value in self.graph.input if value.name not in self.consts]
        if len(real) != 1:
            raise XbarError(f"{self.path}: the model has {len(real)} inputs; xbar networks take one")
        value = real[0]
        tensor_type = value.type.tensor_type
        if value.type.WhichOneof("value") != "tensor_type" or tensor_type.elem_type != _FLOAT:
            raise XbarError(f"{self.path}: input {value.name!r} is not a float32 tensor")
        dims: list[int | None] = []
        if tensor_type.HasField("shape"):
            for dim in tensor_type.shape.dim:
                dims.append(dim.dim_value if dim.WhichOneof("value") == "dim_value" and dim.dim_value > 0 else None)
        model_shape = tuple(dims[1:]) if dims else None
        if given is not None:
            onnx_shape = (given[2], given[0], given[1]) if len(given) == 3 else tuple(given)
            if len(given) not in (1, 3):
                raise XbarError(f"--input-shape {given}: give H,W,C for images or N for vectors")
            if model_shape is not None and (
                len(model_shape) != len(onnx_shape) or any(m not in (None, g) for m, g in zip(model_shape, onnx_shape))
            ):
                raise XbarError(
                    f"--input-shape {given} does not fit the model's input {value.name!r} of shape "
                    f"{['N' if d is None else d for d in dims]} (NCHW)"
                )
        else:
            if model_shape is None or any(d is None for d in model_shape):
                raise XbarError(
                    f"{self.path}: the input {value.name!r} has no fixed shape; give --input-shape H,W,C (or N)"
                )
            onnx_shape = tuple(int(d) for d in model_shape if d is not None)
        if len(onnx_shape) == 3:
            c, h, w = onnx_shape
            xbar_shape: tuple[int, ...] = (h, w, c)
        elif len(onnx_shape) == 1:
            xbar_shape = onnx_shape
        else:
            raise XbarError(
                f"{self.path}: input {value.name!r} has {len(onnx_shape) + 1} axes; xbar takes NCHW images or "
                "(N, features) vectors"
            )
        self.values[value.name] = _Value(-1, onnx_shape)
        self.shapes[-1] = xbar_shape
        return xbar_shape

    # -- helpers ----------------------------------------------------------------------------------------
    def _add(self, layer: Layer, sources: tuple[int, ...], where: str) -> int:
        index = len(self.layers)
        try:
            if len(sources) > 1:
                shape = layer.merge_shape([self.shapes[j] for j in sources])  # type: ignore[attr-defined]
            else:
                shape = layer.output_shape(self.shapes[sources[0]])
        except XbarError as exc:
            raise XbarError(f"{where}: {exc}") from None
        self.layers.append(layer)
        self.inputs.append(sources)
        self.shapes[index] = tuple(shape)
        return index

    def _tensor(self, node, position: int, where: str) -> _Value:
        if position >= len(node.input) or not node.input[position]:
            raise XbarError(f"{where}: input {position} is missing")
        name = node.input[position]
        if name in self.consts:
            raise XbarError(f"{where}: input {position} ({name!r}) is a constant; xbar needs a computed tensor there")
        if name not in self.values:
            raise XbarError(f"{where}: input {position} ({name!r}) is not computed before this node")
        return self.values[name]

    def _const(self, node, position: int, where: str, *, optional: bool = False) -> np.ndarray | None:
        if position >= len(node.input) or not node.input[position]:
            if optional:
                return None
            raise XbarError(f"{where}: input {position} is missing")
        name = node.input[position]
        if name not in self.consts:
            raise XbarError(f"{where}: input {position} ({name!r}) must be a constant (an initializer)")
        return self.consts[name]

    def _weights(self, array: np.ndarray, where: str, what: str) -> np.ndarray:
        if array.dtype.kind not in "fiu":
            raise XbarError(f"{where}: {what} has element type {array.dtype}, not a number")
        out = array.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise XbarError(f"{where}: {what} holds values that are not finite in float32")
        return out

    def _set(self, node, value: _Value) -> None:
        if len(node.output) < 1 or not node.output[0]:
            return
        self.values[node.output[0]] = value

    def _only_output(self, node, where: str) -> None:
        for name in list(node.output)[1:]:
            if name and self.uses.get(name):
                raise XbarError(f"{where}: its output {name!r} is used; only the first output is supported")

    def _readers(self, index: int) -> int:
        """How many nodes (and graph outputs) read the output of layer ``index``, under any of its names: an
        Identity or Dropout gives it one more name, and reads it once itself."""
        names = [name for name, value in self.values.items() if value.index == index]
        return sum(self.uses.get(name, 0) for name in names) - (len(names) - 1)

    def _foldable(self, value: _Value, where: str, what: str) -> WeightLayer:
        """The weight layer computing ``value``, if ``what`` may fold into it (it feeds nothing else)."""
        layer = self.layers[value.index] if value.index >= 0 else None
        if not isinstance(layer, WeightLayer) or layer.activation != "linear":
            raise XbarError(f"{where}: {what} must come directly after a Conv, Gemm or MatMul")
        if self._readers(value.index) != 1:
            raise XbarError(f"{where}: the layer before {what} feeds other nodes too; it cannot be folded into it")
        return layer

    @staticmethod
    def _ints(attrs: dict, name: str, default: list[int], where: str, length: int | None = None) -> list[int]:
        value = attrs.get(name, default)
        if not isinstance(value, (list, tuple)) or any(not isinstance(v, int) for v in value):
            raise XbarError(f"{where}: attribute {name} = {value!r} is not a list of integers")
        if length is not None and len(value) != length:
            raise XbarError(f"{where}: attribute {name} = {list(value)} must have {length} values (2-D only)")
        return list(value)

    @staticmethod
    def _int(attrs: dict, name: str, default: int, allowed: tuple[int, ...], where: str) -> int:
        value = attrs.get(name, default)
        if value not in allowed:
            raise XbarError(f"{where}: attribute {name} = {value!r} is not supported (supported: {allowed})")
        return int(value)

    def _window(self, attrs: dict, kernel: tuple[int, int], where: str) -> dict:
        """padding/pads/strides of a 2-D Conv or pool from auto_pad, pads and strides."""
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode("utf-8", "replace") if isinstance(auto_pad, bytes) else str(auto_pad)
        strides = self._ints(attrs, "strides", [1, 1], where, 2)
        pads = self._ints(attrs, "pads", [0, 0, 0, 0], where, 4)
        if any(s < 1 for s in strides):
            raise XbarError(f"{where}: attribute strides = {strides} must be positive")
        if any(p < 0 for p in pads):
            raise XbarError(f"{where}: attribute pads = {pads} must not be negative")
        if auto_pad == "NOTSET":
            top, left, bottom, right = pads
            explicit = any(pads)
            return {
                "padding": "explicit" if explicit else "valid",
                "pads": (top, bottom, left, right),
                "strides": tuple(strides),
            }
        if "pads" in attrs and any(pads):
            raise XbarError(f"{where}: attribute pads = {pads} given with auto_pad {auto_pad}")
        if auto_pad == "VALID":
            return {"padding": "valid", "pads": (0, 0, 0, 0), "strides": tuple(strides)}
        if auto_pad == "SAME_UPPER":
            return {"padding": "same", "pads": (0, 0, 0, 0), "strides": tuple(strides)}
        raise XbarError(
            f"{where}: attribute auto_pad = {auto_pad!r} is not supported (supported: NOTSET, SAME_UPPER, VALID)"
        )

    # -- the nodes --------------------------------------------------------------------------------------
    def convert(self) -> None:
        for number, node in enumerate(self.graph.node):
            name = node.name or f"#{number}"
            where = f"{self.path}: node {name!r} ({node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                raise XbarError(
                    f"{where}: operator {node.domain}.{node.op_type} is not supported (supported: the default "
                    f"domain's {', '.join(SUPPORTED)})"
                )
            method = getattr(self, f"_op_{node.op_type}", None) if node.op_type in SUPPORTED else None
            if method is None:
                raise XbarError(
                    f"{self.path}: operator {node.op_type!r} of node {name!r} is not supported "
                    f"(supported: {', '.join(SUPPORTED)})"
                )
            method(node, _attributes(node, where), where)

    def _op_Constant(self, node, attrs, where):
        if "value" in attrs:
            array = np.array(attrs["value"]) if not hasattr(attrs["value"], "dims") else _array(attrs["value"], where)
        elif "value_float" in attrs or "value_int" in attrs:
            array = np.array(attrs.get("value_float", attrs.get("value_int")))
        elif "value_floats" in attrs or "value_ints" in attrs:
            array = np.array(attrs.get("value_floats", attrs.get("value_ints")))
        else:
            raise XbarError(
                f"{where}: attributes {sorted(attrs)} are not supported "
                "(supported: value, value_float(s), value_int(s))"
            )
        if node.output and node.output[0]:
            self.consts[node.output[0]] = array

    def _op_Identity(self, node, attrs, where):
        if node.input and node.input[0] in self.consts:
            if node.output and node.output[0]:
                self.consts[node.output[0]] = self.consts[node.input[0]]
            return
        self._set(node, self._tensor(node, 0, where))

    def _op_Dropout(self, node, attrs, where):
        self._only_output(node, where)
        ratio = self._const(node, 1, where, optional=True)
        if ratio is not None and (
            ratio.size != 1 or ratio.dtype.kind != "f" or not 0 <= float(ratio.reshape(-1)[0]) < 1
        ):
            raise XbarError(f"{where}: input ratio = {ratio.tolist()!r} is not one number in [0, 1)")
        training = self._const(node, 2, where, optional=True)
        if training is not None and (training.size != 1 or bool(training.reshape(-1)[0])):
            raise XbarError(f"{where}: input training_mode = {training.tolist()!r} is not supported (supported: false)")
        self._set(node, self._tensor(node, 0, where))

    def _op_Softmax(self, node, attrs, where):
        value = self._tensor(node, 0, where)
        axis = attrs.get("axis", -1)
        if len(value.onnx_shape) != 1 or axis not in (-1, 1):
            raise XbarError(
                f"{where}: attribute axis = {axis!r} on a tensor of shape {('N', *value.onnx_shape)} is not supported "
                "(supported: the classes axis of an (N, classes) output)"
            )
        if not node.output or node.output[0] not in self.outputs or self.uses.get(node.output[0], 0) != 1:
            raise XbarError(f"{where}: {node.op_type} is supported only at the output (it does not change the argmax)")
        self._set(node, value)

    _op_LogSoftmax = _op_Softmax

    def _activation(self, node, where, layer: Activation) -> None:
        value = self._tensor(node, 0, where)
        index = self._add(layer, (value.index,), where)
        self._set(node, _Value(index, value.onnx_shape, value.chw))

    def _op_Relu(self, node, attrs, where):
        self._activation(node, where, Activation("relu"))

    def _op_Sigmoid(self, node, attrs, where):
        self._activation(node, where, Activation("sigmoid"))

    def _op_Tanh(self, node, attrs, where):
        self._activation(node, where, Activation("tanh"))

    def _op_LeakyRelu(self, node, attrs, where):
        alpha = attrs.get("alpha", 0.01)
        if not isinstance(alpha, float) or not math.isfinite(alpha):
            raise XbarError(f"{where}: attribute alpha = {alpha!r} is not a finite number")
        self._activation(node, where, Activation("leakyrelu", alpha=alpha))

    def _op_Clip(self, node, attrs, where):
        bounds = []
        for position, key, default in ((1, "min", -_FLOAT_MAX), (2, "max", _FLOAT_MAX)):
            array = self._const(node, position, where, optional=True)
            if array is None:
                value = attrs.get(key, default)
            else:
                if array.size != 1 or array.dtype.kind not in "fiu":
                    raise XbarError(f"{where}: input {key} must be one number, got shape {array.shape}")
                value = float(array.reshape(()))
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise XbarError(f"{where}: {key} = {value!r} is not a finite number")
            bounds.append(max(-_FLOAT_MAX, min(_FLOAT_MAX, float(value))))
        if bounds[0] > bounds[1]:
            raise XbarError(f"{where}: min {bounds[0]} > max {bounds[1]}")
        self._activation(node, where, Activation("clip", low=bounds[0], high=bounds[1]))

    def _op_Conv(self, node, attrs, where):
        value = self._tensor(node, 0, where)
        weight = self._const(node, 1, where)
        assert weight is not None
        if weight.ndim != 4 or len(value.onnx_shape) != 3:
            raise XbarError(
                f"{where}: only 2-D convolutions of (N, C, H, W) tensors are supported, got weight {weight.shape} "
                f"and input {('N', *value.onnx_shape)}"
            )
        bias = self._const(node, 2, where, optional=True)
        group = attrs.get("group", 1)
        if not isinstance(group, int) or group < 1:
            raise XbarError(f"{where}: attribute group = {group!r} is not a positive integer")
        kernel_shape = self._ints(attrs, "kernel_shape", list(weight.shape[2:]), where, 2)
        if tuple(kernel_shape) != weight.shape[2:]:
            raise XbarError(f"{where}: attribute kernel_shape = {kernel_shape} does not match weight {weight.shape}")
        dilations = self._ints(attrs, "dilations", [1, 1], where, 2)
        if any(d < 1 for d in dilations):
            raise XbarError(f"{where}: attribute dilations = {dilations} must be positive")
        kernel = self._weights(weight, where, "weight").transpose(2, 3, 1, 0)
        if bias is not None:
            bias = self._weights(bias, where, "bias")
            if bias.shape != (weight.shape[0],):
                raise XbarError(f"{where}: bias shape {bias.shape} does not match weight {weight.shape}")
        layer = Conv2D(
            kernel=np.ascontiguousarray(kernel),
            bias=bias,
            activation="linear",
            dilations=tuple(dilations),
            groups=group,
            **self._window(attrs, (kernel.shape[0], kernel.shape[1]), where),
        )
        index = self._add(layer, (value.index,), where)
        h, w, c = self.shapes[index]
        self._set(node, _Value(index, (c, h, w)))

    def _dense(self, node, value: _Value, kernel: np.ndarray, bias: np.ndarray | None, where: str) -> None:
        if len(value.onnx_shape) != 1:
            raise XbarError(f"{where}: input of shape {('N', *value.onnx_shape)} is not (N, features)")
        if kernel.ndim != 2 or kernel.shape[0] != value.onnx_shape[0]:
            raise XbarError(f"{where}: weight {kernel.shape} does not fit input {('N', *value.onnx_shape)}")
        if value.chw is not None:
            # The input is an NCHW map flattened in (C, H, W) order; xbar flattens (H, W, C): permute the rows.
            c, h, w = value.chw
            kernel = kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)
        if bias is not None:
            bias = np.broadcast_to(bias, (kernel.shape[1],)) if bias.size in (1, kernel.shape[1]) else bias
            if bias.shape != (kernel.shape[1],):
                raise XbarError(f"{where}: bias shape {bias.shape} does not fit {kernel.shape[1]} outputs")
            bias = np.array(bias.reshape(-1), np.float32)
        layer = Dense(kernel=np.ascontiguousarray(kernel), bias=bias, activation="linear")
        index = self._add(layer, (value.index,), where)
        self._set(node, _Value(index, self.shapes[index]))

    def _op_Gemm(self, node, attrs, where):
        for key in ("alpha", "beta"):
            if attrs.get(key, 1.0) != 1.0:
                raise XbarError(f"{where}: attribute {key} = {attrs[key]!r} is not supported (supported: 1.0)")
        self._int(attrs, "transA", 0, (0,), where)
        trans_b = self._int(attrs, "transB", 0, (0, 1), where)
        value = self._tensor(node, 0, where)
        b = self._const(node, 1, where)
        assert b is not None
        if b.ndim != 2:
            raise XbarError(f"{where}: B has shape {b.shape}, not a matrix")
        kernel = self._weights(b.T if trans_b else b, where, "B")
        c = self._const(node, 2, where, optional=True)
        bias = None if c is None else self._weights(c, where, "C")
        if bias is not None and bias.ndim == 2 and bias.shape[0] == 1:
            bias = bias[0]
        if bias is not None and bias.ndim > 1:
            raise XbarError(f"{where}: C of shape {bias.shape} is not a bias (N,) or (1, N)")
        self._dense(node, value, kernel, bias, where)

    def _op_MatMul(self, node, attrs, where):
        value = self._tensor(node, 0, where)
        b = self._const(node, 1, where)
        assert b is not None
        if b.ndim != 2:
            raise XbarError(f"{where}: B has shape {b.shape}, not a matrix")
        self._dense(node, value, self._weights(b, where, "B"), None, where)

    def _op_Add(self, node, attrs, where):
        if len(node.input) != 2:
            raise XbarError(f"{where}: {len(node.input)} inputs; Add takes two")
        names = list(node.input)
        constant = [name in self.consts for name in names]
        if all(constant):
            raise XbarError(f"{where}: an Add of two constants is not supported (fold constants when exporting)")
        if any(constant):
            value = self._tensor(node, constant.index(False), where)
            array = self._weights(self.consts[names[constant.index(True)]], where, "the added constant")
            layer = self._foldable(value, where, "an Add of a constant (a bias)")
            n_out = layer.kernel.shape[-1]
            if layer.bias is not None:
                raise XbarError(f"{where}: an Add of a constant is supported only as the bias of a MatMul or Conv")
            # Broadcast against (N, M) a bias is (M,), (1, M) or one number; against (N, C, H, W), (C, 1, 1) or
            # (1, C, 1, 1) or one number.
            rank = len(value.onnx_shape) + 1
            shape = (1,) * (rank - array.ndim) + tuple(array.shape) if array.ndim <= rank else None
            axis = 1 if isinstance(layer, Conv2D) else rank - 1
            if shape is None or shape[axis] not in (1, n_out) or any(d != 1 for i, d in enumerate(shape) if i != axis):
                raise XbarError(f"{where}: the added constant of shape {array.shape} is not a bias of {n_out} outputs")
            per_channel = array.reshape(-1)
            layer.bias = np.array(np.broadcast_to(per_channel, (n_out,)), np.float32)
            self._set(node, value)
            return
        a, b = self._tensor(node, 0, where), self._tensor(node, 1, where)
        if a.onnx_shape != b.onnx_shape or a.chw != b.chw:
            raise XbarError(
                f"{where}: inputs of shapes {a.onnx_shape} and {b.onnx_shape}; broadcasting is not supported"
            )
        index = self._add(Add(), (a.index, b.index), where)
        self._set(node, _Value(index, a.onnx_shape, a.chw))

    def _op_BatchNormalization(self, node, attrs, where):
        self._int(attrs, "training_mode", 0, (0,), where)
        self._only_output(node, where)
        value = self._tensor(node, 0, where)
        params = []
        for position, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")):
            array = self._const(node, position, where)
            assert array is not None
            params.append(self._weights(array, where, what))
        layer = self._foldable(value, where, "BatchNormalization")
        eps = attrs.get("epsilon", 1e-5)
        if not isinstance(eps, float) or not math.isfinite(eps) or eps < 0:
            raise XbarError(f"{where}: attribute epsilon = {eps!r} is not a finite non-negative number")
        try:
            self.layers[value.index] = fold_batchnorm(layer, *params, eps=eps)
        except XbarError as exc:
            raise XbarError(f"{where}: {exc}") from None
        self._set(node, value)

    def _pool(self, node, attrs, where, cls) -> None:
        value = self._tensor(node, 0, where)
        if len(value.onnx_shape) != 3:
            raise XbarError(f"{where}: input of shape {('N', *value.onnx_shape)} is not (N, C, H, W)")
        kernel = self._ints(attrs, "kernel_shape", [], where, 2)
        if any(k < 1 for k in kernel):
            raise XbarError(f"{where}: attribute kernel_shape = {kernel} must be positive")
        self._int(attrs, "ceil_mode", 0, (0,), where)
        self._only_output(node, where)
        if self._ints(attrs, "dilations", [1, 1], where, 2) != [1, 1]:
            raise XbarError(f"{where}: attribute dilations = {attrs['dilations']} is not supported (supported: [1, 1])")
        window = self._window(attrs, (kernel[0], kernel[1]), where)
        if cls is AvgPool2D and attrs.get("count_include_pad", 0) != 0 and window["padding"] != "valid":
            raise XbarError(
                f"{where}: attribute count_include_pad = {attrs['count_include_pad']} with padding is not supported "
                "(supported: 0)"
            )
        if cls is MaxPool2D:
            self._int(attrs, "storage_order", 0, (0,), where)
        try:
            layer = cls(pool_size=tuple(kernel), **window)
        except XbarError as exc:
            raise XbarError(f"{where}: {exc}") from None
        index = self._add(layer, (value.index,), where)
        h, w, c = self.shapes[index]
        self._set(node, _Value(index, (c, h, w)))

    def _op_MaxPool(self, node, attrs, where):
        self._pool(node, attrs, where, MaxPool2D)

    def _op_AveragePool(self, node, attrs, where):
        self._pool(node, attrs, where, AvgPool2D)

    def _op_GlobalAveragePool(self, node, attrs, where):
        value = self._tensor(node, 0, where)
        if len(value.onnx_shape) != 3:
            raise XbarError(f"{where}: input of shape {('N', *value.onnx_shape)} is not (N, C, H, W)")
        index = self._add(GlobalAvgPool2D(), (value.index,), where)
        # ONNX keeps (N, C, 1, 1); xbar's output is (C,): a Flatten or Reshape to (N, C) after it is free.
        self._set(node, _Value(index, (value.onnx_shape[0], 1, 1)))

    def _flatten(self, node, value: _Value, where: str) -> None:
        shape = value.onnx_shape
        if len(shape) == 1:
            self._set(node, value)
            return
        if value.index >= 0 and len(self.shapes[value.index]) == 1:  # after GlobalAveragePool: already (C,)
            self._set(node, _Value(value.index, (math.prod(shape),)))
            return
        index = self._add(Flatten(), (value.index,), where)
        c, h, w = shape
        chw = (c, h, w) if c > 1 and h * w > 1 else None
        self._set(node, _Value(index, (c * h * w,), chw))

    def _op_Flatten(self, node, attrs, where):
        value = self._tensor(node, 0, where)
        axis = attrs.get("axis", 1)
        if axis not in (1, -len(value.onnx_shape)):
            raise XbarError(f"{where}: attribute axis = {axis!r} is not supported (supported: 1)")
        self._flatten(node, value, where)

    def _op_Reshape(self, node, attrs, where):
        value = self._tensor(node, 0, where)
        target = self._const(node, 1, where)
        assert target is not None
        if target.dtype.kind not in "iu" or target.ndim != 1:
            raise XbarError(f"{where}: shape input {target.tolist()!r} is not a 1-D integer tensor")
        dims = [int(d) for d in target]
        size = math.prod(value.onnx_shape)
        if attrs.get("allowzero", 0) == 0:
            full = (0, *value.onnx_shape)
            dims = [full[i] if d == 0 and i < len(full) else d for i, d in enumerate(dims)]
        batch_ok = bool(dims) and dims[0] in (-1, 0)
        if len(dims) == 2 and (batch_ok and dims[1] in (-1, size) or dims[0] == -1 and dims[1] == size):
            self._flatten(node, value, where)
            return
        if len(dims) == len(value.onnx_shape) + 1 and batch_ok and tuple(dims[1:]) == value.onnx_shape:
            self._set(node, value)
            return
        raise XbarError(
            f"{where}: reshape of {('N', *value.onnx_shape)} to {dims} is not supported (supported: flattening "
            "to (N, features), or the same shape)"
        )

    def _op_Concat(self, node, attrs, where):
        values = [self._tensor(node, i, where) for i in range(len(node.input))]
        rank = len(values[0].onnx_shape) + 1
        axis = attrs.get("axis")
        if axis not in (1, 1 - rank) or any(v.chw is not None for v in values):
            raise XbarError(f"{where}: attribute axis = {axis!r} is not supported (supported: 1, the channel axis)")
        if len(values) < 2:
            raise XbarError(f"{where}: Concat of {len(values)} input; give two or more")
        index = self._add(Concat(), tuple(v.index for v in values), where)
        shape = self.shapes[index]
        self._set(node, _Value(index, (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape))

    # -- the network ------------------------------------------------------------------------------------
    def network(self, opset: int, producer: str) -> Network:
        if len(self.outputs) != 1:
            raise XbarError(f"{self.path}: the model has {len(self.outputs)} outputs; xbar networks have one")
        name = self.outputs[0]
        if name not in self.values:
            raise XbarError(f"{self.path}: the output {name!r} is not computed by the graph's nodes")
        value = self.values[name]
        if len(value.onnx_shape) != 1:
            raise XbarError(f"{self.path}: the output has shape {('N', *value.onnx_shape)}; xbar needs (N, classes)")
        if value.chw is not None:
            raise XbarError(f"{self.path}: the output is a flattened NCHW feature map, whose order xbar does not keep")
        if value.index != len(self.layers) - 1:
            from ..nets.layers import Identity

            self._add(Identity(), (value.index,), f"{self.path}: output")
        if not self.layers:
            raise XbarError(f"{self.path}: the model computes nothing (no layers)")
        return Network(
            arch="",
            dataset="",
            input_shape=self.xbar_input_shape,
            n_classes=self.shapes[len(self.layers) - 1][0],
            layers=self.layers,
            provenance={"framework": FRAMEWORK, "opset": opset, "producer": producer},
            inputs=self.inputs,
        )


def import_model(path: Path, input_shape: tuple[int, ...] | None) -> Network:
    """The network of the ONNX file ``path`` (``input_shape``: NHWC without batch, or None for the model's)."""
    path = Path(path)
    model, opset = _parse(path)
    converter = _Converter(model, path, input_shape)
    converter.convert()
    producer = f"{model.producer_name} {model.producer_version}".strip()
    return converter.network(opset, producer)
