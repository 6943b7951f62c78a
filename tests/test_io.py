"""The weights format: round trip, and a one-line exit-2 refusal for every malformed file."""

import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from xbar import io
from xbar.cli import main
from xbar.errors import WeightsFormatError
from xbar.nets import build


@pytest.fixture
def good_file(tmp_path):
    network = build("mlp", hidden=16, seed=2)
    network.provenance = {"seed": 2, "epochs": 0, "sigma_neu": 0.0, "note": "test"}
    return io.save(network, tmp_path / "good.h5")


def test_round_trip_is_bit_exact(tmp_path, rng):
    for arch in ("mlp", "cnn", "rnn"):
        network = build(arch, seed=4)
        network.provenance = {"seed": 4, "test_accuracy": 0.5, "nested": {"a": [1, 2]}}
        loaded = io.load(io.save(network, tmp_path / f"{arch}.h5"))
        assert loaded.arch == arch and loaded.input_shape == (28, 28, 1) and loaded.n_classes == 10
        assert loaded.provenance == network.provenance
        for a, b in zip(network.layers, loaded.layers):
            assert a.kind == b.kind and a.attrs() == b.attrs()
        x = rng.random((3, 28, 28), dtype=np.float32)
        np.testing.assert_array_equal(network.forward(x), loaded.forward(x))


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    io.save(build("mlp", hidden=8), tmp_path / "a.h5")
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]


def _edit(path, action):
    with h5py.File(path, "r+") as f:
        action(f)
    return path


def _replace_dataset(name, value):
    def action(f):
        del f[name]
        f[name] = value
    return action


def _truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


MALFORMED = {
    "not-hdf5": (lambda p: (p.write_text("this is not an HDF5 file\n"), p)[1], "not a readable HDF5 file"),
    "truncated": (_truncate, "HDF5"),
    "empty-file": (lambda p: (p.write_bytes(b""), p)[1], "not a readable HDF5 file"),
    "no-layers-group": (lambda p: _edit(p, lambda f: f.__delitem__("layers")), "missing group 'layers'"),
    "no-format-attr": (lambda p: _edit(p, lambda f: f.attrs.__delitem__("format")), "missing attribute 'format'"),
    "wrong-format": (lambda p: _edit(p, lambda f: f.attrs.__setitem__("format", "keras")), "format is 'keras'"),
    "no-kind-attr": (lambda p: _edit(p, lambda f: f["layers/01_dense"].attrs.__delitem__("kind")),
                     "missing attribute 'kind'"),
    "unknown-kind": (lambda p: _edit(p, lambda f: f["layers/01_dense"].attrs.__setitem__("kind", "lstm")),
                     "unknown layer kind"),
    "no-kernel": (lambda p: _edit(p, lambda f: f.__delitem__("layers/01_dense/kernel")),
                  "missing dataset 'kernel'"),
    "inconsistent-shapes": (
        lambda p: _edit(p, _replace_dataset("layers/02_dense/kernel", np.zeros((17, 10), np.float32))),
        "inconsistent layer shapes"),
    "bias-shape": (lambda p: _edit(p, _replace_dataset("layers/01_dense/bias", np.zeros(3, np.float32))),
                   "bias shape"),
    "wrong-dtype": (lambda p: _edit(p, _replace_dataset("layers/01_dense/kernel", np.zeros((784, 16)))),
                    "is not float32"),
    "nan-weights": (lambda p: _edit(p, _replace_dataset(
        "layers/01_dense/kernel", np.full((784, 16), np.nan, np.float32))), "NaN or Inf"),
    "inf-bias": (lambda p: _edit(p, _replace_dataset(
        "layers/02_dense/bias", np.array([np.inf] + [0] * 9, np.float32))), "NaN or Inf"),
    "bad-n-classes": (lambda p: _edit(p, lambda f: f.attrs.__setitem__("n_classes", 7)), "is not (7,)"),
    "no-layer-attr": (lambda p: _edit(p, lambda f: f["layers/01_dense"].attrs.__delitem__("activation")),
                      "missing attribute 'activation'"),
    "wrong-attr-type": (lambda p: _edit(p, lambda f: f["layers/01_dense"].attrs.__setitem__("activation", 3)),
                        "attribute 'activation' must be str"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_load_refuses_malformed_file(case, good_file):
    damage, message = MALFORMED[case]
    path = damage(good_file)
    with pytest.raises(WeightsFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        io.load(path)


@pytest.mark.parametrize("command", ["info", "run"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_cli_refuses_malformed_file_in_one_line(case, command, good_file):
    damage, message = MALFORMED[case]
    path = damage(good_file)
    result = CliRunner().invoke(main, [command, str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xbar: error:") and str(path) in lines[0]
    assert "Traceback" not in result.output


def test_info_lists_layers_and_parameters(good_file):
    result = CliRunner().invoke(main, ["info", str(good_file), "--json"])
    assert result.exit_code == 0, result.output
    import json
    report = json.loads(result.stdout)
    assert report["n_params"] == 784 * 16 + 16 + 16 * 10 + 10
    assert [layer["kind"] for layer in report["layers"]] == ["flatten", "dense", "dense"]
    assert report["provenance"]["note"] == "test"


def test_shipped_weights_load_and_name_their_dataset(shipped_weights):
    files = sorted(shipped_weights.glob("*.h5"))
    assert files, "no shipped weights"
    for path in files:
        network = io.load(path)
        assert path.stem.startswith(f"{network.arch}-{network.dataset}")
        assert 0.5 < network.provenance["test_accuracy"] <= 1.0  # chance is 0.1; the t = 56 RNN is at 0.78


def test_copy_of_good_file_loads(good_file, tmp_path):
    copy = tmp_path / "copy.h5"
    shutil.copy(good_file, copy)
    assert io.load(copy).n_params == io.load(good_file).n_params
