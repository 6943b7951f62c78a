"""ONNX import (``xbar import MODEL.onnx``): three reference models built with PyTorch, held against onnxruntime.

LeNet-5, a ResNet-20-shaped CIFAR network and a MobileNet-style block are exported with the TorchScript
exporter (``dynamo=False``, opset 13 and 17), imported, and their ideal xbar logits compared with
onnxruntime's on 64 random inputs. Tolerance: both compute in float32 with different summation orders (im2col
matmuls against direct convolutions, batch norm folded into the kernels in float64 then rounded), so the
logits agree to a few float32 ulps of the largest partial sums: we allow 1e-4 of the logits' scale
(max |logit|) absolute, plus 1e-4 relative. The measured max relative differences are printed (``-s``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch", reason="the reference models are built with PyTorch (the train extra)")
onnx = pytest.importorskip("onnx", reason="ONNX import needs the onnx package (the import extra)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference (a test dependency)")

# torch's TorchScript exporter (chosen: it keeps batch norm nodes with PRESERVE) warns that it is the legacy one,
# and about constant folding in PRESERVE mode, which is harmless here: the models are exported in eval mode.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:torch"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:The feature will be removed"),
    pytest.mark.filterwarnings("ignore:It is recommended that constant folding be turned off"),
]

from xbar import io  # noqa: E402
from xbar.cli import main  # noqa: E402
from xbar.config import resolve  # noqa: E402
from xbar.errors import XbarError  # noqa: E402
from xbar.evaluate import run_chips  # noqa: E402
from xbar.importers import import_model  # noqa: E402

nn = torch.nn
RTOL = 1e-4
"""Allowed difference relative to the logits' scale (max |logit| over the batch), and to each logit."""


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class Block(nn.Module):
    """A ResNet basic block: conv-BN-ReLU-conv-BN plus a shortcut (a strided 1x1 conv with BN when it downsamples)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-20's structure (3 stages, stride-2 downsampling, 1x1 shortcuts, global average pooling), narrower
    (4/8/16 channels) and one block per stage to keep the test fast."""

    def __init__(self, width=4, blocks=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, c = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(Block(c, c_out, 2 if stage > 0 and b == 0 else 1))
                c = c_out
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        y = self.stages(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class MobileNetBlock(nn.Module):
    """Depthwise 3x3 (stride 2) + pointwise 1x1, each with BN and ReLU6, then a flatten into a classifier."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
            nn.Conv2d(8, 8, 3, 2, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
            nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
            nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(16 * 4 * 4, 10), nn.Softmax(dim=1))

    def forward(self, x):
        return self.head(self.body(x))


def _randomize_bn(model: nn.Module, seed: int) -> None:
    """Batch norm statistics and affine parameters away from the identity, so that folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            module.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


MODELS = {
    "lenet5": (LeNet5, (1, 28, 28), 13),
    "resnet20": (ResNet, (3, 32, 32), 17),
    "mobilenet": (MobileNetBlock, (3, 16, 16), 17),
}


def export(name: str, folder: Path, *, dynamic_batch: bool = True) -> Path:
    cls, shape, opset = MODELS[name]
    torch.manual_seed(0)
    model = cls()
    _randomize_bn(model, 1)
    model.eval()
    path = folder / f"{name}.onnx"
    axes = {"x": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(
        model,
        (torch.zeros(1, *shape),),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        opset_version=opset,
        dynamic_axes=axes,
        dynamo=False,
        # PRESERVE (in eval mode) keeps BatchNormalization nodes, which EVAL would fuse into the convolutions
        # itself: the import then folds them (fold_batchnorm), as it must for models exported by other tools.
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return {name: export(name, folder) for name in MODELS}


def _inputs(name: str, n: int = 64, seed: int = 0) -> np.ndarray:
    """n random NCHW float32 samples in [0, 1]."""
    return np.random.default_rng(seed).random((n, *MODELS[name][1]), dtype=np.float32)


def _max_relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


@pytest.mark.parametrize("name", list(MODELS))
def test_logits_match_onnxruntime(exported, name, record_property):
    network = import_model(exported[name])
    x = _inputs(name)
    session = ort.InferenceSession(str(exported[name]), providers=["CPUExecutionProvider"])
    reference = session.run(None, {"x": x})[0]
    ours = network.forward(x.transpose(0, 2, 3, 1))
    if name == "mobilenet":  # a Softmax at the output is dropped (it keeps the argmax): compare probabilities
        ours = np.exp(ours - ours.max(axis=1, keepdims=True))
        ours /= ours.sum(axis=1, keepdims=True)
    difference = _max_relative_difference(ours, reference)
    record_property("max_relative_difference", difference)
    print(f"{name}: max |xbar - onnxruntime| / max |onnxruntime| = {difference:.2e}")
    scale = float(np.max(np.abs(reference)))
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=RTOL * scale)
    assert np.array_equal(ours.argmax(axis=1), reference.argmax(axis=1))


def test_structure_and_provenance(exported):
    ops = {name: {node.op_type for node in onnx.load(str(path)).graph.node} for name, path in exported.items()}
    assert "BatchNormalization" in ops["resnet20"] and "BatchNormalization" in ops["mobilenet"]
    assert "Clip" in ops["mobilenet"] and "AveragePool" in ops["lenet5"]
    resnet = import_model(exported["resnet20"], dataset="cifar10")
    kinds = [layer.kind for layer in resnet.layers]
    assert "add" in kinds and "globalavgpool2d" in kinds and "batchnorm" not in kinds
    assert not resnet.is_chain
    assert resnet.input_shape == (32, 32, 3) and resnet.n_classes == 10 and resnet.dataset == "cifar10"
    prov = resnet.provenance
    assert prov["framework"] == "onnx" and prov["opset"] == 17 and prov["source"] == "resnet20.onnx"
    assert len(prov["source_sha256"]) == 64 and prov["xbar_version"]
    mobile = import_model(exported["mobilenet"])
    convs = [layer for layer in mobile.layers if layer.kind == "conv2d"]
    assert [c.groups for c in convs] == [1, 8, 1] and convs[1].strides == (2, 2)
    assert any(layer.kind == "activation" and layer.function == "clip" and layer.high == 6.0 for layer in mobile.layers)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("preset", ["reram", "sonos"])
def test_runs_on_noisy_chips_with_energy(exported, name, preset):
    network = import_model(exported[name])
    images = _inputs(name, 32, seed=1).transpose(0, 2, 3, 1)
    labels = network.predict(images)
    summary = run_chips(network, resolve(preset), images, labels, seed=0, n_chips=3)
    assert len(summary.accuracies) == 3 and all(0.0 <= a <= 1.0 for a in summary.accuracies)
    assert summary.energy_per_inference_j is not None and summary.energy_per_inference_j > 0
    assert math.isfinite(summary.energy_per_inference_j)


def test_cli_import_then_run_on_own_data(exported, tmp_path):
    weights = tmp_path / "lenet.h5"
    result = CliRunner().invoke(
        main,
        ["import", str(exported["lenet5"]), "-o", str(weights), "--dataset", "mnist", "--mean", "0.5", "--std", "0.25"],
    )
    assert result.exit_code == 0, result.output
    network = io.load(weights)
    assert network.provenance["input_mean"] == [0.5] and network.provenance["input_std"] == [0.25]
    x = np.random.default_rng(2).integers(0, 256, (40, 1, 28, 28), dtype=np.uint8)
    y = network.predict(((x / 255.0 - 0.5) / 0.25).astype(np.float32).transpose(0, 2, 3, 1))
    np.savez(tmp_path / "test.npz", x=x, y=y)
    args = ["run", str(weights), "--data", str(tmp_path / "test.npz"), "--layout", "nchw", "--scale", "255"]
    result = CliRunner().invoke(main, [*args, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == 1.0  # the stored mean/std applied, as the labels were made
    result = CliRunner().invoke(main, [*args, "--hardware", "reram", "--seeds", "3", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["energy_per_inference_j"] > 0


def test_import_with_data_records_the_ideal_accuracy_and_run_reuses_its_layout(exported, tmp_path):
    """``xbar import --data`` checks the test set against the network, stores its ideal accuracy, layout and
    scale; ``xbar run --data`` then defaults to that layout and scale, and without --data names the file."""
    probe = import_model(exported["lenet5"])
    x = np.random.default_rng(4).integers(0, 256, (50, 1, 28, 28), dtype=np.uint8)
    y = probe.predict((x / np.float32(255)).astype(np.float32).transpose(0, 2, 3, 1))
    y[::4] = (y[::4] + 1) % 10  # a quarter wrong: the stored accuracy must be 0.74, not 1
    np.savez(tmp_path / "test.npz", x=x, y=y)
    weights = tmp_path / "lenet.h5"
    args = ["import", str(exported["lenet5"]), "-o", str(weights), "--data", str(tmp_path / "test.npz")]
    result = CliRunner().invoke(main, [*args, "--layout", "nchw", "--scale", "255", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ideal_accuracy"] == 37 / 50
    prov = io.load(weights).provenance
    assert (prov["test_data"], prov["test_data_layout"], prov["test_data_scale"]) == ("test.npz", "nchw", 255.0)
    assert prov["ideal_accuracy"] == 37 / 50 and prov["ideal_n_images"] == 50 and len(prov["test_data_sha256"]) == 64
    run = CliRunner().invoke(main, ["run", str(weights), "--data", str(tmp_path / "test.npz"), "--json", "--quiet"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["accuracy"] == 37 / 50  # nchw and 255 from the file, not nhwc and 1
    bare = CliRunner().invoke(main, ["run", str(weights), "--quiet"])
    assert bare.exit_code == 2 and "--data FILE (it was imported with --data test.npz)" in bare.output
    assert len(bare.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "mnist"], "--data and --dataset are exclusive"),
        (["--layout", "nchw", "--data", None], "'x' holds NCHW samples of shape (28, 1, 28)"),  # NHWC read as NCHW
        (["--data", "missing.npz"], "missing.npz"),
    ],
)
def test_import_with_bad_data_is_one_line_and_writes_nothing(exported, tmp_path, extra, message):
    x = np.zeros((5, 28, 28, 1), np.float32)
    np.savez(tmp_path / "test.npz", x=x, y=np.zeros(5, np.int64))
    extra = [str(tmp_path / "test.npz") if e is None else e for e in extra]
    if "--data" not in extra:
        extra += ["--data", str(tmp_path / "test.npz")]
    extra = [str(tmp_path / e) if e == "missing.npz" else e for e in extra]
    out = tmp_path / "w.h5"
    result = CliRunner().invoke(main, ["import", str(exported["lenet5"]), "-o", str(out), *extra])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    result = CliRunner().invoke(main, ["import", str(exported["lenet5"]), "-o", str(out), "--scale", "2"])
    assert result.exit_code == 2 and "apply to --data only" in result.output and not out.exists()


def test_static_batch_and_input_shape_option(tmp_path):
    path = export("lenet5", tmp_path, dynamic_batch=False)
    assert import_model(path).input_shape == (28, 28, 1)
    assert import_model(path, (28, 28, 1)).input_shape == (28, 28, 1)
    with pytest.raises(XbarError, match="does not fit the model's input"):
        import_model(path, (32, 32, 1))


def _graph(nodes, initializers, in_shape=("N", 3, 8, 8), out_shape=("N", 4), opset=17):
    helper = onnx.helper
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(out_shape))],
        initializer=[onnx.numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _save_model(model, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def test_matmul_add_same_padding_leaky_concat_match_onnxruntime(tmp_path):
    """Operators the PyTorch models do not export: SAME_UPPER, LeakyRelu, Sigmoid, Concat, MatMul + Add."""
    rng = np.random.default_rng(5)
    h = onnx.helper
    w1 = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(2, 3, 1, 1)).astype(np.float32)
    fc = rng.normal(size=(6 * 4 * 4, 4)).astype(np.float32)
    bias = rng.normal(size=(4,)).astype(np.float32)
    nodes = [
        h.make_node("Conv", ["x", "w1"], ["a"], auto_pad="SAME_UPPER", strides=[2, 2], name="conv_same"),
        h.make_node("LeakyRelu", ["a"], ["b"], alpha=0.2),
        h.make_node("Conv", ["x", "w2"], ["c"], strides=[2, 2], name="conv_1x1"),
        h.make_node("Sigmoid", ["c"], ["d"]),
        h.make_node("Concat", ["b", "d"], ["e"], axis=1),
        h.make_node("MaxPool", ["e"], ["f"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
        h.make_node("Flatten", ["f"], ["g"]),
        h.make_node("MatMul", ["g", "fc"], ["m"]),
        h.make_node("Add", ["m", "bias"], ["y"]),
    ]
    model = _graph(nodes, {"w1": w1, "w2": w2, "fc": fc, "bias": bias})
    path = _save_model(model, tmp_path / "ops.onnx")
    network = import_model(path)
    x = rng.random((16, 3, 8, 8), dtype=np.float32)
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ours = network.forward(x.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=RTOL * float(np.max(np.abs(reference))))


@pytest.mark.parametrize(
    "case,match",
    [
        ("unsupported-op", "operator 'Sin' of node 'the_sin' is not supported (supported: Conv, Gemm"),
        ("ceil-mode", "node 'pool' (MaxPool): attribute ceil_mode = 1 is not supported"),
        ("gemm-alpha", "attribute alpha = 2.0 is not supported"),
        ("bn-alone", "BatchNormalization must come directly after a Conv, Gemm or MatMul"),
        ("old-opset", "opset 11 is older than 13"),
        ("same-lower", "auto_pad = 'SAME_LOWER' is not supported"),
        ("reshape", "reshape of"),
    ],
)
def test_unsupported_is_one_line_and_writes_nothing(tmp_path, case, match):
    h = onnx.helper
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    fc = rng.normal(size=(4 * 6 * 6, 4)).astype(np.float32)
    init = {"w": w, "fc": fc}
    tail = [h.make_node("Flatten", ["p"], ["q"]), h.make_node("MatMul", ["q", "fc"], ["y"])]
    conv = h.make_node("Conv", ["x", "w"], ["c"], name="conv")
    opset = 17
    if case == "unsupported-op":
        nodes = [conv, h.make_node("Sin", ["c"], ["p"], name="the_sin"), *tail]
    elif case == "ceil-mode":
        nodes = [conv, h.make_node("MaxPool", ["c"], ["p"], kernel_shape=[1, 1], ceil_mode=1, name="pool"), *tail]
    elif case == "gemm-alpha":
        nodes = [conv, h.make_node("Relu", ["c"], ["p"]), tail[0], h.make_node("Gemm", ["q", "fc"], ["y"], alpha=2.0)]
    elif case == "bn-alone":
        for k, v in {"s": np.ones(4), "b": np.zeros(4), "m": np.zeros(4), "v": np.ones(4)}.items():
            init[k] = v.astype(np.float32)
        nodes = [
            conv,
            h.make_node("Relu", ["c"], ["r"]),
            h.make_node("BatchNormalization", ["r", "s", "b", "m", "v"], ["p"]),
            *tail,
        ]
    elif case == "old-opset":
        nodes, opset = [conv, h.make_node("Relu", ["c"], ["p"]), *tail], 11
    elif case == "same-lower":
        nodes = [
            h.make_node("Conv", ["x", "w"], ["c"], auto_pad="SAME_LOWER", pads=None),
            h.make_node("Relu", ["c"], ["p"]),
            *tail,
        ]
    else:
        init["shape"] = np.array([0, 4, 36], np.int64)
        nodes = [conv, h.make_node("Reshape", ["c", "shape"], ["p"]), *tail]
    path = _save_model(_graph(nodes, init, opset=opset), tmp_path / f"{case}.onnx")
    out = tmp_path / "out.h5"
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xbar: error:"), result.stderr
    assert match in lines[0], lines[0]
    assert not out.exists()


def test_unknown_suffix_is_one_line(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\0")
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "w.h5")])
    assert result.exit_code == 2
    assert "no importer for files named '*.pt'" in result.stderr


def test_grouped_dilated_conv_bn_avgpool_gemm_bn_match_onnxruntime(tmp_path):
    """Grouped dilated Conv with asymmetric pads, BN folded into it and into a Gemm, padded AveragePool
    (padding not counted), Reshape [0, -1], Clip with only a min, LogSoftmax dropped."""
    rng = np.random.default_rng(6)
    h = onnx.helper

    def bn(n):
        return rng.random(n) + 0.5, rng.normal(size=n), rng.normal(size=n) * 0.1, rng.random(n) + 0.5

    init = {"w": rng.normal(size=(6, 1, 3, 3)), "cb": rng.normal(size=6), "fc1": rng.normal(size=(6 * 3 * 3, 8))}
    init.update(zip(["s1", "b1", "m1", "v1"], bn(6)))
    init.update(zip(["s2", "b2", "m2", "v2"], bn(8)))
    init.update({"lo": np.array(-0.5), "fc2": rng.normal(size=(4, 8)), "fb2": rng.normal(size=(1, 4))})
    init = {k: v.astype(np.float32) for k, v in init.items()}
    init["shape"] = np.array([0, -1], np.int64)
    nodes = [
        h.make_node("Conv", ["x", "w", "cb"], ["a"], group=3, dilations=[2, 2], pads=[0, 1, 1, 0]),
        h.make_node("BatchNormalization", ["a", "s1", "b1", "m1", "v1"], ["b"], epsilon=1e-3),
        h.make_node("Relu", ["b"], ["c"]),
        h.make_node("AveragePool", ["c"], ["d"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        h.make_node("Reshape", ["d", "shape"], ["e"]),
        h.make_node("Gemm", ["e", "fc1"], ["f"]),
        h.make_node("BatchNormalization", ["f", "s2", "b2", "m2", "v2"], ["g"]),
        h.make_node("Clip", ["g", "lo", ""], ["k"]),
        h.make_node("Gemm", ["k", "fc2", "fb2"], ["z"], transB=1),
        h.make_node("LogSoftmax", ["z"], ["y"]),
    ]
    path = _save_model(_graph(nodes, init), tmp_path / "ops2.onnx")
    network = import_model(path)
    x = rng.random((16, 3, 8, 8), dtype=np.float32)
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    logits = network.forward(x.transpose(0, 2, 3, 1)).astype(np.float64)
    ours = logits - logits.max(axis=1, keepdims=True)
    ours -= np.log(np.exp(ours).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=RTOL * float(np.max(np.abs(reference))))
    assert [layer.kind for layer in network.layers].count("dense") == 2


def test_vector_model_with_symbolic_features_needs_input_shape(tmp_path):
    """A (N, F) input of symbolic F: refused without --input-shape, imported with it; Identity and Dropout dropped."""
    h = onnx.helper
    w = np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32)
    nodes = [
        h.make_node("Identity", ["x"], ["a"]),
        h.make_node("Dropout", ["a"], ["b"]),
        h.make_node("Gemm", ["b", "w"], ["y"]),
    ]
    path = _save_model(_graph(nodes, {"w": w}, in_shape=("N", "F"), out_shape=("N", 3)), tmp_path / "vec.onnx")
    out = tmp_path / "vec.h5"
    refused = CliRunner().invoke(main, ["import", str(path), "-o", str(out)])
    assert refused.exit_code == 2 and "give --input-shape" in refused.stderr and not out.exists()
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(out), "--input-shape", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["input_shape"] == [4] and report["n_classes"] == 3 and report["provenance"]["framework"] == "onnx"
    network = io.load(out)
    assert [layer.kind for layer in network.layers] == ["dense"]
    x = np.random.default_rng(8).random((5, 4), dtype=np.float32)
    np.testing.assert_allclose(network.forward(x), x @ w, rtol=1e-6)


def test_flattened_map_at_the_output_is_refused(tmp_path):
    """xbar flattens NHWC: a flattened NCHW map that no dense layer re-orders cannot be the output."""
    h = onnx.helper
    w = np.ones((2, 3, 1, 1), np.float32)
    nodes = [h.make_node("Conv", ["x", "w"], ["c"]), h.make_node("Flatten", ["c"], ["y"])]
    path = _save_model(_graph(nodes, {"w": w}, out_shape=("N", 128)), tmp_path / "flat.onnx")
    with pytest.raises(XbarError, match="flattened NCHW feature map"):
        import_model(path)
