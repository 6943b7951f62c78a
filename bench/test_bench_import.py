"""An imported ResNet-20: ideal xbar float32 inference against onnxruntime on the same batch, as a ratio.

The network is ResNet-20 at its real size (16/32/64 channels, three basic blocks per stage, batch norm,
1x1 shortcuts), random weights, exported with PyTorch's TorchScript exporter and imported with
``xbar import``. Both classify the same 256 random CIFAR-sized images on this machine's cores: onnxruntime in
one call, xbar as ``xbar run`` on the ideal network does (:func:`xbar.evaluate.ideal_forward`, in batches of
:func:`xbar.evaluate.ideal_batch_size`). The two are timed in turn, five times each, and the ratio is of
their best times: xbar's images/s over onnxruntime's (issue 11's target: at least 0.5). It is printed and
stored in the benchmark's extra_info; the assertion only checks that both ran and agree.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from tests.test_import_onnx import ResNet, _randomize_bn  # noqa: E402
from xbar.evaluate import ideal_batch_size, ideal_forward  # noqa: E402
from xbar.importers import import_model  # noqa: E402

BATCH = 256


ROUNDS = 5


def _seconds(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def test_imported_resnet20_ideal_throughput_against_onnxruntime(tmp_path, benchmark):
    torch.manual_seed(0)
    model = ResNet(width=16, blocks=3)
    _randomize_bn(model, 1)
    model.eval()
    path = tmp_path / "resnet20.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 32, 32),),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        opset_version=17,
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    network = import_model(path)
    x = np.random.default_rng(0).random((BATCH, 3, 32, 32), dtype=np.float32)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    forward = ideal_forward(network)
    step = ideal_batch_size(network)

    def xbar_run():
        return np.concatenate([forward(x_nhwc[i : i + step], i) for i in range(0, BATCH, step)])

    def ort_run():
        return session.run(None, {"x": x})[0]

    reference = ort_run()
    ours = xbar_run()
    assert np.array_equal(ours.argmax(axis=1), reference.argmax(axis=1))
    benchmark.pedantic(xbar_run, rounds=1, iterations=1)
    # In turn, so that a slow spell of the shared machine falls on both.
    times = [(_seconds(ort_run), _seconds(xbar_run)) for _ in range(ROUNDS)]
    ort_s = min(t for t, _ in times)
    xbar_s = min(t for _, t in times)
    ratio = ort_s / xbar_s
    benchmark.extra_info.update(
        batch=BATCH,
        xbar_batch=step,
        xbar_images_per_s=BATCH / xbar_s,
        onnxruntime_images_per_s=BATCH / ort_s,
        ratio=ratio,
    )
    print(
        f"\nResNet-20, batch {BATCH}: xbar ideal {BATCH / xbar_s:,.0f} images/s, onnxruntime {BATCH / ort_s:,.0f} "
        f"images/s, ratio {ratio:.2f} (target >= 0.5)"
    )
    assert ratio > 0
