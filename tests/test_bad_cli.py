"""Bad input across every command: one line on stderr, exit code 2, nothing written, no hang.

A table of command lines, each naming bad input of one kind: a missing, empty,
binary or special file (a FIFO, a folder), a malformed TOML, CSV or spec, an
out-of-range or non-finite value, an unwritable output. Each runs in-process
(click's runner) under an alarm, so a hang fails the case instead of the suite,
and the input folder is compared before and after: a refused command writes nothing.
"""

from __future__ import annotations

import gzip
import os
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from xbar import io
from xbar.cli import main
from xbar.nets import build

TIME_BOUND_S = 30
"""A case running longer than this is a hang (the slowest refusals take well under a second)."""

RESULTS_HEADER = "weights,arch,dataset,sigma_syn,chip,seed,accuracy,n_images,energy_per_inference_j,seconds\n"


def _spec(weights_path: str, /, **fields: str | None) -> str:
    """A sweep spec around ``weights_path``, with top-level keys replaced (value None drops a key)."""
    table: dict[str, str | None] = {"weights": f'["{weights_path}"]', "hardware": '"paper"', "seeds": "1"}
    table["limit"] = "20"
    grid = fields.pop("grid", None) or "sigma_syn = [0.0, 0.1]"
    table.update(fields)
    lines = [f"{key} = {value}" for key, value in table.items() if value is not None]
    return "\n".join(lines) + f"\n[grid]\n{grid}\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Inputs of every kind, good and bad, in one folder."""
    root = tmp_path_factory.mktemp("bad-cli")
    weights = io.save(build("mlp", hidden=8, seed=1), root / "w.h5")
    w = str(weights)
    os.mkfifo(root / "fifo")
    os.mkfifo(root / "fifo.toml")
    os.mkfifo(root / "fifo.csv")
    (root / "folder").mkdir()
    (root / "folder.png").mkdir()
    (root / "empty_dir").mkdir()
    (root / "empty").write_bytes(b"")
    (root / "text.txt").write_text("hello\n")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (root / "binary.toml").write_bytes(b"\xff\xfe\x00preset = 1\n")
    toml_files = {
        "syntax.toml": "[adc\nbits = 6\n",
        "typo.toml": 'preset = "rerma"\n',
        "preset_int.toml": "preset = 3\n",
        "unknown_key.toml": "[adc]\nbitz = 6\n",
        "wrong_type.toml": '[adc]\nbits = "six"\n',
        "bad_value.toml": "[tile]\nrows = -4\n",
        "deep.toml": "a = " + "[" * 5000 + "]" * 5000 + "\n",
    }
    specs = {
        "spec.toml": _spec(w),
        "spec_syntax.toml": "weights = [\n",
        "spec_unknown.toml": _spec(w, colour='"red"'),
        "spec_dataset_list.toml": _spec(w, dataset='["mnist"]'),
        "spec_dataset_unknown.toml": _spec(w, dataset='"cifar"'),
        "spec_no_weights.toml": _spec(w, weights=None),
        "spec_weights_missing.toml": _spec(str(root / "nope.h5")),
        "spec_weights_int.toml": _spec(w, weights="[3]"),
        "spec_weights_fifo.toml": _spec(str(root / "fifo")),
        "spec_seeds_0.toml": _spec(w, seeds="0"),
        "spec_seeds_str.toml": _spec(w, seeds='"ten"'),
        "spec_seed_neg.toml": _spec(w, seed="-1"),
        "spec_limit_0.toml": _spec(w, limit="0"),
        "spec_batch_0.toml": _spec(w, batch_size="0"),
        "spec_hw_typo.toml": _spec(w, hardware='"papre"'),
        "spec_hw_int.toml": _spec(w, hardware="7"),
        "spec_hw_missing.toml": _spec(w, hardware='"nope.toml"'),
        "spec_grid_scalar.toml": _spec(w, grid="sigma_syn = 0.1"),
        "spec_grid_empty.toml": _spec(w, grid="sigma_syn = []"),
        "spec_grid_key.toml": _spec(w, grid="adc.bitz = [4, 6]"),
        "spec_grid_negative.toml": _spec(w, grid="sigma_syn = [-0.1]"),
        "spec_grid_syn_mode.toml": _spec(w, grid='syn_mode = ["sometimes"]'),
        "spec_grid_bits.toml": _spec(w, grid='"adc.bits" = [99]'),
        "spec_set_table.toml": _spec(w) + "[set]\n\"adc.bits\" = \"x\"\n",
    }
    for name, text in {**toml_files, **specs}.items():
        (root / name).write_text(text)
    row = f"{w},mlp,mnist,0.0,0,1,0.5,20,,0.1\n"
    csv_files = {
        "results.csv": RESULTS_HEADER + row,
        "blank_line.csv": RESULTS_HEADER + "\n" + row,
        "garbage.csv": RESULTS_HEADER + "this is, not, a row\n",
        "short_row.csv": RESULTS_HEADER + "a,b\n",
        "no_accuracy.csv": "weights,arch\nx,mlp\n",
        "nonnumeric.csv": RESULTS_HEADER + row.replace(",0.5,", ",high,"),
        "header_only.csv": RESULTS_HEADER,
    }
    for name, text in csv_files.items():
        (root / name).write_text(text)
    (root / "binary.csv").write_bytes(b"\x00\xff\xfe" * 100 + b"\n")
    (root / "existing.csv").write_text(RESULTS_HEADER + row)
    corrupt = root / "corrupt_store" / "datasets" / "mnist"
    corrupt.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (corrupt / name).write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x01" * 64)[:30] + b"\x00" * 40)
    _test_data_files(root)
    _import_files(root)
    return root


def _import_files(root: Path) -> None:
    """Model files for xbar import: bad ones of every kind, and (where the onnx package is) a tiny valid ONNX
    model and one with an operator xbar does not support (without onnx, both are refused as needing it)."""
    os.mkfifo(root / "fifo.onnx")
    (root / "folder.onnx").mkdir()
    (root / "empty.onnx").write_bytes(b"")
    (root / "binary.onnx").write_bytes(bytes(range(256)) * 4)
    (root / "text.onnx").write_text("hello\n")
    try:
        import onnx
    except ImportError:
        (root / "tiny.onnx").write_bytes(b"\0")
        (root / "sin.onnx").write_bytes(b"\0")
        return
    h = onnx.helper
    for name, op in (("tiny.onnx", "Relu"), ("sin.onnx", "Sin")):
        graph = h.make_graph(
            [h.make_node(op, ["x"], ["r"], name="act"), h.make_node("MatMul", ["r", "w"], ["y"], name="fc")],
            "tiny",
            [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4])],
            [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 2])],
            initializer=[onnx.numpy_helper.from_array(np.ones((4, 2), np.float32), "w")],
        )
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
        (root / name).write_bytes(model.SerializeToString())


def _test_data_files(root: Path) -> None:
    """Test sets for --data (docs/data.md): one good, the others bad in one way each."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 20)
    np.savez(root / "good.npz", x=x, y=y)
    np.savez(root / "no_y.npz", x=x)
    np.savez(root / "x_text.npz", x=np.array(["a"] * 20), y=y)
    np.savez(root / "x_object.npz", x=np.array([None] * 20, dtype=object), y=y)
    np.savez(root / "y_float.npz", x=x, y=y.astype(np.float32))
    np.savez(root / "y_big.npz", x=x, y=np.full(20, 10))
    np.savez(root / "y_negative.npz", x=x, y=np.full(20, -1))
    np.savez(root / "y_2d.npz", x=x, y=y[:, None])
    np.savez(root / "lengths.npz", x=x, y=y[:10])
    np.savez(root / "shape.npz", x=rng.random((20, 32, 32, 3)), y=y)
    np.savez(root / "nan.npz", x=np.full((20, 784), np.nan), y=y)
    np.savez(root / "empty_set.npz", x=x[:0], y=y[:0])
    good = (root / "good.npz").read_bytes()
    (root / "truncated.npz").write_bytes(good[: len(good) // 2])
    with h5py.File(root / "good.h5", "w") as fh:
        fh["x"], fh["y"] = x, y
    with h5py.File(root / "no_x.h5", "w") as fh:
        fh["y"] = y
    with h5py.File(root / "x_group.h5", "w") as fh:
        fh.create_group("x")
        fh["y"] = y
    raw = (root / "good.h5").read_bytes()
    (root / "truncated.h5").write_bytes(raw[: len(raw) // 2])


# (id, command line with {placeholders} for files of the folder, extra environment)
CASES: list[tuple[str, str, dict[str, str]]] = [
    # the group
    ("unknown-option", "--bogus", {}),
    ("unknown-command", "nosuchcommand", {}),
    # info
    ("info-no-file", "info", {}),
    ("info-missing", "info {d}/missing.h5", {}),
    ("info-folder", "info {d}/folder", {}),
    ("info-fifo", "info {d}/fifo", {}),
    ("info-empty", "info {d}/empty", {}),
    ("info-text", "info {d}/text.txt", {}),
    ("info-binary", "info {d}/binary.bin", {}),
    ("info-toml", "info {d}/spec.toml", {}),
    ("info-bad-option", "info {d}/w.h5 --bogus", {}),
    ("info-extra-argument", "info {d}/w.h5 more", {}),
    # run: files
    ("run-unknown-option", "run --bogus", {}),
    ("run-missing", "run {d}/missing.h5", {}),
    ("run-fifo", "run {d}/fifo", {}),
    ("run-folder", "run {d}/folder", {}),
    ("run-binary", "run {d}/binary.bin", {}),
    # run: values
    ("run-limit-0", "run {d}/w.h5 --limit 0", {}),
    ("run-limit-negative", "run {d}/w.h5 --limit -3", {}),
    ("run-limit-text", "run {d}/w.h5 --limit abc", {}),
    ("run-sigma-te-negative", "run {d}/w.h5 --sigma-te -1", {}),
    ("run-sigma-te-nan", "run {d}/w.h5 --sigma-te nan", {}),
    ("run-sigma-te-inf", "run {d}/w.h5 --sigma-te inf", {}),
    ("run-sigma-syn-no-hardware", "run {d}/w.h5 --sigma-syn 0.1", {}),
    ("run-set-no-hardware", "run {d}/w.h5 --set adc.bits=6", {}),
    ("run-sigma-syn-negative", "run {d}/w.h5 --hardware paper --sigma-syn -0.1", {}),
    ("run-sigma-syn-nan", "run {d}/w.h5 --hardware paper --sigma-syn nan", {}),
    ("run-syn-mode", "run {d}/w.h5 --syn-mode sometimes", {}),
    ("run-dataset", "run {d}/w.h5 --dataset cifar", {}),
    ("run-seeds-0", "run {d}/w.h5 --seeds 0", {}),
    ("run-seed-negative", "run {d}/w.h5 --seed -5", {}),
    ("run-seed-float", "run {d}/w.h5 --seed 1e3", {}),
    ("run-seed-huge", "run {d}/w.h5 --seed 18446744073709551616", {}),
    ("run-batch-0", "run {d}/w.h5 --batch-size 0", {}),
    # run: hardware
    ("hw-unknown-preset", "run {d}/w.h5 --hardware nosuch", {}),
    ("hw-fifo", "run {d}/w.h5 --hardware {d}/fifo.toml", {}),
    ("hw-missing", "run {d}/w.h5 --hardware {d}/missing.toml", {}),
    ("hw-folder", "run {d}/w.h5 --hardware {d}/folder/x.toml", {}),
    ("hw-syntax", "run {d}/w.h5 --hardware {d}/syntax.toml", {}),
    ("hw-preset-typo", "run {d}/w.h5 --hardware {d}/typo.toml", {}),
    ("hw-preset-int", "run {d}/w.h5 --hardware {d}/preset_int.toml", {}),
    ("hw-unknown-key", "run {d}/w.h5 --hardware {d}/unknown_key.toml", {}),
    ("hw-wrong-type", "run {d}/w.h5 --hardware {d}/wrong_type.toml", {}),
    ("hw-bad-value", "run {d}/w.h5 --hardware {d}/bad_value.toml", {}),
    ("hw-binary", "run {d}/w.h5 --hardware {d}/binary.toml", {}),
    ("hw-deep", "run {d}/w.h5 --hardware {d}/deep.toml", {}),
    ("set-adc-bits-99", "run {d}/w.h5 --hardware paper --set adc.bits=99", {}),
    ("set-adc-bits-text", "run {d}/w.h5 --hardware paper --set adc.bits=abc", {}),
    ("set-adc-bits-float", "run {d}/w.h5 --hardware paper --set adc.bits=6.5", {}),
    ("set-unknown-section", "run {d}/w.h5 --hardware paper --set nosuch.key=1", {}),
    ("set-unknown-key", "run {d}/w.h5 --hardware paper --set adc.nosuch=1", {}),
    ("set-unknown-top", "run {d}/w.h5 --hardware paper --set nosuch=1", {}),
    ("set-no-equals", "run {d}/w.h5 --hardware paper --set noequals", {}),
    ("set-no-key", "run {d}/w.h5 --hardware paper --set =5", {}),
    ("set-slices-huge", "run {d}/w.h5 --hardware paper --set mapping.weight_slices=100000", {}),
    (
        "set-slices-huge-levels",
        "run {d}/w.h5 --hardware paper --set device.levels=16 --set mapping.weight_slices=100000",
        {},
    ),
    ("set-levels-huge", "run {d}/w.h5 --hardware paper --set device.levels=99999999999999999999", {}),
    ("set-rows-0", "run {d}/w.h5 --hardware paper --set tile.rows=0", {}),
    ("set-rows-huge", "run {d}/w.h5 --hardware paper --set tile.rows=99999999999999999999", {}),
    ("set-g-order", "run {d}/w.h5 --hardware paper --set device.g_min_us=10 --set device.g_max_us=5", {}),
    ("set-model-unknown", "run {d}/w.h5 --hardware paper --set device.prog_model=nosuch", {}),
    ("set-stuck-2", "run {d}/w.h5 --hardware paper --set device.stuck_on=2", {}),
    ("set-adc-range", "run {d}/w.h5 --hardware paper --set adc.range=weird", {}),
    ("set-read-sigma-nan", "run {d}/w.h5 --hardware paper --set device.read_sigma=nan", {}),
    ("set-read-sigma-inf", "run {d}/w.h5 --hardware paper --set device.read_sigma=inf", {}),
    ("set-read-sigma-negative", "run {d}/w.h5 --hardware paper --set device.read_sigma=-0.1", {}),
    ("set-calibration-0", "run {d}/w.h5 --hardware paper --set calibration_images=0", {}),
    ("set-input-slices", "run {d}/w.h5 --hardware paper --set dac.input_slices=3", {}),
    ("set-solver", "run {d}/w.h5 --hardware paper --set tile.solver=magic", {}),
    ("set-section-as-value", "run {d}/w.h5 --hardware paper --set adc=6", {}),
    # energy
    ("energy-no-file", "energy", {}),
    ("energy-missing", "energy {d}/missing.h5", {}),
    ("energy-fifo", "energy {d}/fifo", {}),
    ("energy-preset", "energy {d}/w.h5 --hardware nosuch", {}),
    ("energy-images-0", "energy {d}/w.h5 --images 0", {}),
    ("energy-set", "energy {d}/w.h5 --set adc.bits=-1", {}),
    ("energy-seed", "energy {d}/w.h5 --seed -1", {}),
    ("energy-toml", "energy {d}/w.h5 --hardware {d}/syntax.toml", {}),
    # sweep: the spec
    ("sweep-no-spec", "sweep", {}),
    ("sweep-no-output", "sweep {d}/spec.toml", {}),
    ("sweep-spec-missing", "sweep {d}/missing.toml -o {d}/out/a.csv", {}),
    ("sweep-spec-fifo", "sweep {d}/fifo.toml -o {d}/out/a.csv", {}),
    ("sweep-spec-folder", "sweep {d}/folder -o {d}/out/a.csv", {}),
    ("sweep-spec-binary", "sweep {d}/binary.toml -o {d}/out/a.csv", {}),
    ("sweep-spec-syntax", "sweep {d}/spec_syntax.toml -o {d}/out/a.csv", {}),
    ("sweep-spec-unknown", "sweep {d}/spec_unknown.toml -o {d}/out/a.csv", {}),
    ("sweep-dataset-list", "sweep {d}/spec_dataset_list.toml -o {d}/out/a.csv", {}),
    ("sweep-dataset-unknown", "sweep {d}/spec_dataset_unknown.toml -o {d}/out/a.csv", {}),
    ("sweep-no-weights", "sweep {d}/spec_no_weights.toml -o {d}/out/a.csv", {}),
    ("sweep-weights-missing", "sweep {d}/spec_weights_missing.toml -o {d}/out/a.csv", {}),
    ("sweep-weights-int", "sweep {d}/spec_weights_int.toml -o {d}/out/a.csv", {}),
    ("sweep-weights-fifo", "sweep {d}/spec_weights_fifo.toml -o {d}/out/a.csv", {}),
    ("sweep-seeds-0", "sweep {d}/spec_seeds_0.toml -o {d}/out/a.csv", {}),
    ("sweep-seeds-text", "sweep {d}/spec_seeds_str.toml -o {d}/out/a.csv", {}),
    ("sweep-seed-negative", "sweep {d}/spec_seed_neg.toml -o {d}/out/a.csv", {}),
    ("sweep-limit-0", "sweep {d}/spec_limit_0.toml -o {d}/out/a.csv", {}),
    ("sweep-batch-0", "sweep {d}/spec_batch_0.toml -o {d}/out/a.csv", {}),
    ("sweep-hw-typo", "sweep {d}/spec_hw_typo.toml -o {d}/out/a.csv", {}),
    ("sweep-hw-int", "sweep {d}/spec_hw_int.toml -o {d}/out/a.csv", {}),
    ("sweep-hw-missing", "sweep {d}/spec_hw_missing.toml -o {d}/out/a.csv", {}),
    ("sweep-grid-scalar", "sweep {d}/spec_grid_scalar.toml -o {d}/out/a.csv", {}),
    ("sweep-grid-empty", "sweep {d}/spec_grid_empty.toml -o {d}/out/a.csv", {}),
    ("sweep-grid-key", "sweep {d}/spec_grid_key.toml -o {d}/out/a.csv", {}),
    ("sweep-grid-negative", "sweep {d}/spec_grid_negative.toml -o {d}/out/a.csv", {}),
    ("sweep-grid-syn-mode", "sweep {d}/spec_grid_syn_mode.toml -o {d}/out/a.csv", {}),
    ("sweep-grid-bits", "sweep {d}/spec_grid_bits.toml -o {d}/out/a.csv", {}),
    ("sweep-set-value", "sweep {d}/spec_set_table.toml -o {d}/out/a.csv", {}),
    ("sweep-workers-0", "sweep {d}/spec.toml -o {d}/out/a.csv --workers 0", {}),
    # sweep: the output
    ("sweep-output-folder", "sweep {d}/spec.toml -o {d}/folder", {}),
    ("sweep-output-unwritable", "sweep {d}/spec.toml -o /proc/xbar-test/out.csv", {}),
    ("sweep-output-under-file", "sweep {d}/spec.toml -o {d}/text.txt/out.csv", {}),
    ("sweep-output-fifo", "sweep {d}/spec.toml -o {d}/fifo.csv --resume", {}),
    ("sweep-output-exists", "sweep {d}/spec.toml -o {d}/existing.csv", {}),
    ("sweep-resume-blank-line", "sweep {d}/spec.toml -o {d}/blank_line.csv --resume", {}),
    ("sweep-resume-garbage", "sweep {d}/spec.toml -o {d}/garbage.csv --resume", {}),
    ("sweep-resume-short-row", "sweep {d}/spec.toml -o {d}/short_row.csv --resume", {}),
    ("sweep-resume-binary", "sweep {d}/spec.toml -o {d}/binary.csv --resume", {}),
    ("sweep-resume-other-columns", "sweep {d}/spec.toml -o {d}/no_accuracy.csv --resume", {}),
    # plot
    ("plot-no-args", "plot", {}),
    ("plot-no-output", "plot {d}/results.csv", {}),
    ("plot-missing", "plot {d}/missing.csv -o {d}/out/p.png", {}),
    ("plot-fifo", "plot {d}/fifo.csv -o {d}/out/p.png", {}),
    ("plot-folder", "plot {d}/folder -o {d}/out/p.png", {}),
    ("plot-extension", "plot {d}/results.csv -o {d}/out/p.txt", {}),
    ("plot-no-extension", "plot {d}/results.csv -o {d}/out/p", {}),
    ("plot-garbage", "plot {d}/garbage.csv -o {d}/out/p.png", {}),
    ("plot-short-row", "plot {d}/short_row.csv -o {d}/out/p.png", {}),
    ("plot-binary", "plot {d}/binary.csv -o {d}/out/p.png", {}),
    ("plot-empty", "plot {d}/empty -o {d}/out/p.png", {}),
    ("plot-header-only", "plot {d}/header_only.csv -o {d}/out/p.png", {}),
    ("plot-no-accuracy", "plot {d}/no_accuracy.csv -o {d}/out/p.png", {}),
    ("plot-nonnumeric", "plot {d}/nonnumeric.csv -o {d}/out/p.png", {}),
    ("plot-x-unknown", "plot {d}/results.csv -o {d}/out/p.png --x nosuch", {}),
    ("plot-dpi-0", "plot {d}/results.csv -o {d}/out/p.png --dpi 0", {}),
    ("plot-dpi-text", "plot {d}/results.csv -o {d}/out/p.png --dpi high", {}),
    ("plot-output-unwritable", "plot {d}/results.csv -o /proc/xbar-test/p.png", {}),
    ("plot-output-folder", "plot {d}/results.csv -o {d}/folder.png", {}),
    # reproduce
    ("reproduce-no-target", "reproduce", {}),
    ("reproduce-target", "reproduce table9", {}),
    ("reproduce-seeds-0", "reproduce table2 --seeds 0 -o {d}/out/r", {}),
    ("reproduce-workers-0", "reproduce table2 --workers 0 -o {d}/out/r", {}),
    ("reproduce-output-file", "reproduce table3 -o {d}/text.txt", {}),
    ("reproduce-output-unwritable", "reproduce table3 -o /proc/xbar-test/r", {}),
    # data
    ("data-no-command", "data bogus", {}),
    ("data-fetch-dataset", "data fetch --dataset cifar", {}),
    ("data-fetch-source-missing", "data fetch --source {d}/missing_dir", {}),
    ("data-fetch-source-file", "data fetch --source {d}/text.txt", {}),
    ("data-fetch-source-empty", "data fetch --source {d}/empty_dir", {"XBAR_DATA": ""}),
    ("data-path-dataset", "data path --dataset cifar", {}),
    ("data-verify-dataset", "data verify --dataset cifar", {}),
    ("data-verify-corrupt", "data verify --dataset mnist", {"XBAR_HOME": "{d}/corrupt_store", "XBAR_DATA": ""}),
    # train (each refused before any training starts)
    ("train-no-arch", "train -o {d}/out/t.h5", {}),
    ("train-arch", "train --arch resnet -o {d}/out/t.h5", {}),
    ("train-no-output", "train --arch mlp", {}),
    ("train-dataset", "train --arch mlp --dataset cifar -o {d}/out/t.h5", {}),
    ("train-lr-nan", "train --arch mlp --lr nan -o {d}/out/t.h5", {}),
    ("train-lr-huge", "train --arch mlp --lr 1e300 -o {d}/out/t.h5", {}),
    ("train-lr-0", "train --arch mlp --lr 0 -o {d}/out/t.h5", {}),
    ("train-seed-negative", "train --arch mlp --seed -5 -o {d}/out/t.h5", {}),
    ("train-hidden-huge", "train --arch mlp --hidden 100000000 -o {d}/out/t.h5", {}),
    ("train-timesteps", "train --arch rnn --timesteps 5 -o {d}/out/t.h5", {}),
    ("train-epochs-0", "train --arch mlp --epochs 0 -o {d}/out/t.h5", {}),
    ("train-sigma-neu-nan", "train --arch mlp --sigma-neu nan -o {d}/out/t.h5", {}),
    ("train-sigma-neu-negative", "train --arch mlp --sigma-neu -1 -o {d}/out/t.h5", {}),
    ("train-shift", "train --arch mlp --augment-shift 9 -o {d}/out/t.h5", {}),
    ("train-output-unwritable", "train --arch mlp -o /proc/xbar-test/t.h5", {}),
    ("train-output-folder", "train --arch mlp -o {d}/folder", {}),
    ("train-output-under-file", "train --arch mlp -o {d}/text.txt/t.h5", {}),
    # run and energy: --data (docs/data.md)
    ("data-missing", "run {d}/w.h5 --data {d}/missing.npz", {}),
    ("data-folder", "run {d}/w.h5 --data {d}/folder", {}),
    ("data-fifo", "run {d}/w.h5 --data {d}/fifo", {}),
    ("data-empty-file", "run {d}/w.h5 --data {d}/empty", {}),
    ("data-text", "run {d}/w.h5 --data {d}/text.txt", {}),
    ("data-weights-as-data", "run {d}/w.h5 --data {d}/w.h5", {}),
    ("data-no-y", "run {d}/w.h5 --data {d}/no_y.npz", {}),
    ("data-x-text", "run {d}/w.h5 --data {d}/x_text.npz", {}),
    ("data-x-object", "run {d}/w.h5 --data {d}/x_object.npz", {}),
    ("data-y-float", "run {d}/w.h5 --data {d}/y_float.npz", {}),
    ("data-y-too-big", "run {d}/w.h5 --data {d}/y_big.npz", {}),
    ("data-y-negative", "run {d}/w.h5 --data {d}/y_negative.npz", {}),
    ("data-y-2d", "run {d}/w.h5 --data {d}/y_2d.npz", {}),
    ("data-lengths", "run {d}/w.h5 --data {d}/lengths.npz", {}),
    ("data-shape", "run {d}/w.h5 --data {d}/shape.npz", {}),
    ("data-nan", "run {d}/w.h5 --data {d}/nan.npz", {}),
    ("data-empty-set", "run {d}/w.h5 --data {d}/empty_set.npz", {}),
    ("data-truncated-npz", "run {d}/w.h5 --data {d}/truncated.npz", {}),
    ("data-h5-no-x", "run {d}/w.h5 --data {d}/no_x.h5", {}),
    ("data-h5-x-group", "run {d}/w.h5 --data {d}/x_group.h5", {}),
    ("data-truncated-h5", "run {d}/w.h5 --data {d}/truncated.h5", {}),
    ("data-and-dataset", "run {d}/w.h5 --data {d}/good.npz --dataset mnist", {}),
    ("data-layout-alone", "run {d}/w.h5 --layout nchw", {}),
    ("data-scale-alone", "run {d}/w.h5 --scale 255", {}),
    ("data-layout-unknown", "run {d}/w.h5 --data {d}/good.npz --layout hwcn", {}),
    ("data-scale-0", "run {d}/w.h5 --data {d}/good.npz --scale 0", {}),
    ("data-scale-nan", "run {d}/w.h5 --data {d}/good.npz --scale nan", {}),
    ("data-mean-text", "run {d}/w.h5 --data {d}/good.npz --mean a,b", {}),
    ("data-mean-inf", "run {d}/w.h5 --data {d}/good.npz --mean inf", {}),
    ("data-mean-channels", "run {d}/w.h5 --data {d}/good.npz --mean 0.1,0.2,0.3", {}),
    ("data-std-0", "run {d}/w.h5 --data {d}/good.h5 --std 0", {}),
    ("energy-data-missing", "energy {d}/w.h5 --data {d}/missing.npz", {}),
    ("energy-data-shape", "energy {d}/w.h5 --data {d}/shape.npz", {}),
    ("run-cifar10-not-fetched", "run {d}/w.h5 --dataset cifar10", {}),
    ("data-fetch-cifar10-empty-source", "data fetch --dataset cifar10 --source {d}/empty_dir", {}),
    # xbar import (docs/import.md); the model files are made by _import_files
    ("import-missing", "import {d}/nope.onnx -o {d}/imported.h5", {}),
    ("import-fifo", "import {d}/fifo.onnx -o {d}/imported.h5", {}),
    ("import-folder", "import {d}/folder.onnx -o {d}/imported.h5", {}),
    ("import-empty", "import {d}/empty.onnx -o {d}/imported.h5", {}),
    ("import-binary", "import {d}/binary.onnx -o {d}/imported.h5", {}),
    ("import-text", "import {d}/text.onnx -o {d}/imported.h5", {}),
    ("import-unknown-suffix", "import {d}/text.txt -o {d}/imported.h5", {}),
    ("import-no-output", "import {d}/binary.onnx", {}),
    ("import-shape-zero", "import {d}/binary.onnx -o {d}/imported.h5 --input-shape 0,3,3", {}),
    ("import-shape-text", "import {d}/binary.onnx -o {d}/imported.h5 --input-shape abc", {}),
    ("import-shape-2d", "import {d}/binary.onnx -o {d}/imported.h5 --input-shape 3,3", {}),
    ("import-std-0", "import {d}/binary.onnx -o {d}/imported.h5 --std 0", {}),
    ("import-mean-nan", "import {d}/binary.onnx -o {d}/imported.h5 --mean nan", {}),
    ("import-unsupported-op", "import {d}/sin.onnx -o {d}/imported.h5", {}),
    ("import-output-folder", "import {d}/tiny.onnx -o {d}/folder", {}),
    ("import-mean-channels", "import {d}/tiny.onnx -o {d}/imported.h5 --mean 0.1,0.2", {}),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time: what a refused command must not change."""
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return out


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def test_the_table_is_large_and_its_ids_unique():
    assert len(CASES) >= 100
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id,command,env", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(folder, case_id, command, env):
    args = [part.format(d=folder) for part in command.split()]
    environment = {key: value.format(d=folder) for key, value in env.items()}
    before = _snapshot(folder)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_BOUND_S)
    started = time.perf_counter()
    try:
        result = CliRunner().invoke(main, args, env=environment)
    except _Hang:
        pytest.fail(f"{case_id}: no answer within {TIME_BOUND_S} s (a hang)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - started
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{case_id}: traceback") from result.exception
    assert result.exit_code == 2, f"{case_id}: exit {result.exit_code}\n{result.output}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xbar: error: "), f"{case_id}: stderr {result.stderr!r}"
    assert _snapshot(folder) == before, f"{case_id}: the command changed files it refused"
    assert elapsed < TIME_BOUND_S


def test_an_internal_error_keeps_its_traceback(folder, monkeypatch):
    """Only user errors become one line: a bug in xbar must still surface whole."""
    from xbar import nets

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(nets.network.Network, "forward", broken)
    result = CliRunner().invoke(main, ["run", str(folder / "w.h5"), "--limit", "5"])
    assert isinstance(result.exception, RuntimeError) and result.exit_code == 1
