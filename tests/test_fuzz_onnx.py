"""Fuzzing ``xbar import``: 200 mutated ONNX files, 0 tracebacks.

Two valid models made with ``onnx.helper`` (a chain: Conv, BatchNormalization, Relu, MaxPool, Flatten, Gemm;
a graph: Conv, Clip with constant bounds, a residual Add, Concat, GlobalAveragePool, Reshape, MatMul + Add,
Softmax) are mutated, with a fixed seed: bytes flipped, the file truncated, and protobuf-level edits (an
initializer's shape, data or element type, an attribute's value, a node's operator, a missing input, a cycle,
nodes out of order, the opset, the input's shape). Each file goes through ``xbar import`` in-process (click's
runner) under an alarm: every run must end in exit 0 (with a loadable weights file) or exit 2 with one
``xbar: error:`` line, and no other exception may escape.
"""

from __future__ import annotations

import copy
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx", reason="ONNX import needs the onnx package (the import extra)")

from xbar import io  # noqa: E402
from xbar.cli import main  # noqa: E402

N_FILES = 200
TIME_BOUND_S = 10
"""An import running longer than this is a hang (the valid ones take milliseconds)."""


def _chain():
    h, rng = onnx.helper, np.random.default_rng(0)
    init = {
        "w": rng.normal(size=(4, 1, 3, 3)),
        "s": rng.random(4) + 0.5,
        "b": rng.normal(size=4),
        "m": rng.normal(size=4),
        "v": rng.random(4) + 0.5,
        "fc": rng.normal(size=(10, 4 * 4 * 4)),
        "fcb": rng.normal(size=10),
    }
    nodes = [
        h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        h.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], epsilon=1e-5, name="bn"),
        h.make_node("Relu", ["n"], ["r"], name="relu"),
        h.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        h.make_node("Flatten", ["p"], ["f"], axis=1, name="flatten"),
        h.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1, name="gemm"),
    ]
    return nodes, init, ["N", 1, 8, 8]


def _graph():
    h, rng = onnx.helper, np.random.default_rng(1)
    init = {
        "w1": rng.normal(size=(3, 3, 3, 3)),
        "w2": rng.normal(size=(3, 1, 3, 3)),
        "lo": np.array(0.0),
        "hi": np.array(6.0),
        "shape": np.array([0, -1], np.int64),
        "fc": rng.normal(size=(6, 5)),
        "fcb": rng.normal(size=5),
    }
    nodes = [
        h.make_node("Conv", ["x", "w1"], ["a"], auto_pad="SAME_UPPER", name="conv1"),
        h.make_node("Clip", ["a", "lo", "hi"], ["b"], name="relu6"),
        h.make_node("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1], group=3, name="depthwise"),
        h.make_node("Add", ["c", "x"], ["d"], name="residual"),
        h.make_node("Concat", ["d", "b"], ["e"], axis=1, name="concat"),
        h.make_node("GlobalAveragePool", ["e"], ["g"], name="gap"),
        h.make_node("Reshape", ["g", "shape"], ["f"], name="reshape"),
        h.make_node("MatMul", ["f", "fc"], ["m"], name="matmul"),
        h.make_node("Add", ["m", "fcb"], ["z"], name="bias"),
        h.make_node("Softmax", ["z"], ["y"], axis=-1, name="softmax"),
    ]
    return nodes, init, ["N", 3, 6, 6]


def _model(nodes, init, in_shape):
    h = onnx.helper
    arrays = [
        onnx.numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k) for k, v in init.items()
    ]
    graph = h.make_graph(
        nodes,
        "fuzz",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, in_shape)],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", None])],
        initializer=arrays,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


OPS = ["Conv", "Relu", "Gemm", "MatMul", "Add", "Sin", "Softmax", "Flatten", "Identity", "Dropout", "Reshape", "Pad"]
INTS = [-(2**40), -3, -1, 0, 1, 2, 3, 7, 2**31, 2**62]
FLOATS = [float("nan"), float("inf"), -1.0, 0.0, 2.0, 1e30]


def _edit(model, rng: np.random.Generator) -> tuple[str, object]:
    """A protobuf-level mutation of a copy of ``model``: (its kind, the mutated ModelProto)."""
    m = copy.deepcopy(model)
    g = m.graph
    kind = str(rng.choice(["init-shape", "init-data", "init-type", "attr", "op", "missing", "cycle", "order",
                           "opset", "input-shape", "drop-node", "output"]))  # fmt: skip
    node = g.node[int(rng.integers(len(g.node)))]
    tensor = g.initializer[int(rng.integers(len(g.initializer)))]
    if kind == "init-shape":
        tensor.dims[:] = [int(rng.choice([0, 1, 2, 3, 5, 64, 2**33])) for _ in range(int(rng.integers(0, 5)))]
    elif kind == "init-data":
        raw = bytearray(tensor.raw_data)
        tensor.raw_data = bytes(raw[: int(rng.integers(0, len(raw) + 1))])
    elif kind == "init-type":
        tensor.data_type = int(rng.choice([0, 2, 6, 7, 8, 10, 11, 16, 99]))
    elif kind == "attr":
        if not node.attribute:
            node.attribute.append(onnx.helper.make_attribute("axis", 5))
        attribute = node.attribute[int(rng.integers(len(node.attribute)))]
        if attribute.type == onnx.AttributeProto.INTS:
            attribute.ints[:] = [int(rng.choice(INTS)) for _ in range(int(rng.integers(0, 6)))]
        elif attribute.type == onnx.AttributeProto.INT:
            attribute.i = int(rng.choice(INTS))
        elif attribute.type == onnx.AttributeProto.FLOAT:
            attribute.f = float(rng.choice(FLOATS))
        else:
            attribute.s = bytes(rng.choice([b"SAME_LOWER", b"VALID", b"", b"\xff"]))
    elif kind == "op":
        node.op_type = str(rng.choice(OPS))
    elif kind == "missing":
        if node.input:
            node.input[int(rng.integers(len(node.input)))] = str(rng.choice(["", "nowhere"]))
    elif kind == "cycle":
        node.input[0] = g.node[-1].output[0]
    elif kind == "order":
        nodes = list(g.node)
        rng.shuffle(nodes)
        del g.node[:]
        g.node.extend(nodes)
    elif kind == "opset":
        m.opset_import[0].version = int(rng.choice([1, 7, 12, 13, 21, 99]))
    elif kind == "input-shape":
        dims = g.input[0].type.tensor_type.shape.dim
        dim = dims[int(rng.integers(len(dims)))]
        dim.dim_value = int(rng.choice([0, 1, 2, 5, 2**31, 2**40]))
    elif kind == "drop-node":
        del g.node[int(rng.integers(len(g.node)))]
    else:
        g.output[0].name = str(rng.choice(["c", "nowhere", "x", "f"]))
    return kind, m


def _mutants(rng: np.random.Generator):
    bases = [_model(*_chain()), _model(*_graph())]
    for number in range(N_FILES):
        base = bases[number % 2]
        raw = base.SerializeToString()
        choice = number % 4
        if choice == 0:
            data = bytearray(raw)
            for _ in range(int(rng.integers(1, 12))):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
            yield "bytes", bytes(data)
        elif choice == 1:
            yield "truncate", raw[: int(rng.integers(0, len(raw)))]
        else:
            kind, model = _edit(base, rng)
            yield kind, model.SerializeToString()


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"import ran past {TIME_BOUND_S} s")


def test_valid_bases_import(tmp_path):
    for number, base in enumerate([_model(*_chain()), _model(*_graph())]):
        path = tmp_path / f"base{number}.onnx"
        path.write_bytes(base.SerializeToString())
        result = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / f"base{number}.h5")])
        assert result.exit_code == 0, result.output
        io.load(tmp_path / f"base{number}.h5")


def test_mutated_models_give_no_traceback(tmp_path: Path):
    rng = np.random.default_rng(20261130)
    outcomes: Counter[str] = Counter()
    failures = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for number, (kind, raw) in enumerate(_mutants(rng)):
            path = tmp_path / f"m{number:03d}.onnx"
            out = tmp_path / f"m{number:03d}.h5"
            path.write_bytes(raw)
            signal.setitimer(signal.ITIMER_REAL, TIME_BOUND_S)
            try:
                result = CliRunner().invoke(main, ["import", str(path), "-o", str(out)])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            lines = result.stderr.strip().splitlines()
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                failures.append(f"{number} {kind}: {type(result.exception).__name__}: {result.exception}")
            elif result.exit_code == 0:
                io.load(out)
                outcomes["imported"] += 1
            elif result.exit_code != 2 or len(lines) != 1 or not lines[0].startswith("xbar: error: "):
                failures.append(f"{number} {kind}: exit {result.exit_code}, stderr {result.stderr!r}")
            else:
                assert not out.exists()
                outcomes["refused"] += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    print(dict(outcomes))
    assert not failures, "\n".join(failures[:20])
    assert outcomes["refused"] > 100


def test_imported_mutants_compute_what_onnxruntime_computes(tmp_path: Path):
    """The mutants xbar imports (weights changed by flipped bytes, attributes it accepts, ...) must compute what
    onnxruntime computes for them, wherever onnxruntime also runs them (it refuses a fixed batch size of 0, say)."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference (a test dependency)")
    from xbar.errors import XbarError
    from xbar.importers import import_model

    ort.set_default_logger_severity(4)
    rng = np.random.default_rng(20261130)
    compared = 0
    for number, (kind, raw) in enumerate(_mutants(rng)):
        path = tmp_path / f"m{number:03d}.onnx"
        path.write_bytes(raw)
        try:
            network = import_model(path)
        except XbarError:
            continue
        shape = network.input_shape
        x = np.random.default_rng(number).random(
            (4, shape[2], shape[0], shape[1]) if len(shape) == 3 else (4, *shape), dtype=np.float32
        )
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            reference = session.run(None, {session.get_inputs()[0].name: x})[0]
        except Exception:  # noqa: BLE001 - onnxruntime refusing a mutant xbar takes is not a failure
            continue
        try:
            ours = network.forward(x.transpose(0, 2, 3, 1) if x.ndim == 4 else x).astype(np.float64)
        except XbarError:  # overflowing weights: refused at run time
            continue
        if any(node.op_type == "Softmax" for node in onnx.load_from_string(raw).graph.node):
            ours = np.exp(ours - ours.max(axis=1, keepdims=True))
            ours /= ours.sum(axis=1, keepdims=True)
        scale = float(np.max(np.abs(reference)))
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * scale + 1e-7, err_msg=f"{number} {kind}")
        compared += 1
    assert compared >= 20
