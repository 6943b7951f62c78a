"""Sweeps over the user's own test set (spec keys ``data``, ``data_layout``, ``data_scale``): the rows of
``xbar run --data``, checked before any task runs, recorded in the provenance, a changed file not resumed."""

import csv
import hashlib
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from xbar import data
from xbar.cli import main
from xbar.results import read_provenance

N_IMAGES = 40


@pytest.fixture(scope="module")
def mnist_u8():
    """The first 40 MNIST test images as 8-bit pixels (n, 28, 28, 1), and their labels: a real test set, so
    that accuracies are far from chance and a wrong layout or scale would show."""
    images, labels = data.load("mnist", "test", limit=N_IMAGES)
    return np.round(images * 255).astype(np.uint8).reshape(N_IMAGES, 28, 28, 1), labels.astype(np.int64)


def _spec(folder, weights, extra, grid="sigma_syn = [0.0, 0.1]", name="spec.toml"):
    path = folder / name
    path.write_text(f"weights = {json.dumps([str(w) for w in weights])}\nhardware = \"paper\"\nseeds = 2\n"
                    f"seed = 7\n{extra}\n[grid]\n{grid}\n")
    return path


def _sweep(spec, out, *args):
    return CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--workers", "1", "-q", *args])


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _one_line_exit_2(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xbar: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_sweep_rows_are_the_accuracies_of_xbar_run_data(tmp_path, shipped_weights, mnist_u8):
    """Every row (two networks x two sigma_syn x two chips) is the accuracy ``xbar run --data`` gives that chip;
    the rows' dataset is the data file as the spec writes it (relative, found beside the spec)."""
    x, y = mnist_u8
    with h5py.File(tmp_path / "mine.h5", "w") as fh:
        fh["x"], fh["y"] = x.astype(np.float32) / np.float32(255), y
    weights = [shipped_weights / "mlp-mnist.h5", shipped_weights / "rnn-mnist-t7.h5"]
    spec = _spec(tmp_path, weights, 'data = "mine.h5"')
    out = tmp_path / "r.csv"
    result = _sweep(spec, out)
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert len(rows) == 8 and {r["dataset"] for r in rows} == {"mine.h5"}
    assert {r["n_images"] for r in rows} == {str(N_IMAGES)}
    for w in weights:
        for sigma in ("0.0", "0.1"):
            run = CliRunner().invoke(main, ["run", str(w), "--data", str(tmp_path / "mine.h5"), "--hardware", "paper",
                                            "--sigma-syn", sigma, "--seed", "7", "--seeds", "2", "--json"])
            assert run.exit_code == 0, run.output
            report = json.loads(run.stdout)
            mine = sorted((r for r in rows if r["weights"] == str(w) and r["sigma_syn"] == sigma),
                          key=lambda r: int(r["chip"]))
            assert [float(r["accuracy"]) for r in mine] == report["accuracies"]
    clean = [float(r["accuracy"]) for r in rows if r["sigma_syn"] == "0.0"]
    assert min(clean) > 0.5  # the networks recognise the digits: the images reached them as in training


def test_layout_and_scale_default_to_those_the_weights_record(tmp_path, shipped_weights, mnist_u8):
    """Weights imported with ``--data --layout nchw --scale 255`` record them; a spec that leaves them out reads
    the data file that way, as ``xbar run --data`` does, and gives its rows."""
    from xbar import io

    x, y = mnist_u8
    np.savez(tmp_path / "raw.npz", x=x.transpose(0, 3, 1, 2), y=y)
    network = io.load(shipped_weights / "cnn-mnist.h5")
    network.provenance.update(test_data_layout="nchw", test_data_scale=255.0)
    weights = io.save(network, tmp_path / "recorded.h5")
    spec = _spec(tmp_path, [weights], 'data = "raw.npz"', grid="sigma_syn = [0.05]")
    out = tmp_path / "r.csv"
    assert _sweep(spec, out).exit_code == 0
    run = CliRunner().invoke(main, ["run", str(weights), "--data", str(tmp_path / "raw.npz"), "--hardware", "paper",
                                    "--sigma-syn", "0.05", "--seed", "7", "--seeds", "2", "--json"])
    assert run.exit_code == 0, run.output
    rows = sorted(_rows(out), key=lambda r: int(r["chip"]))
    assert [float(r["accuracy"]) for r in rows] == json.loads(run.stdout)["accuracies"]
    assert min(float(r["accuracy"]) for r in rows) > 0.8  # read as NHWC and unscaled it would be near chance


def test_nchw_layout_and_scale_255_equal_a_prepared_nhwc_file(tmp_path, shipped_weights, mnist_u8):
    """0..255 pixels stored NCHW with data_layout = "nchw", data_scale = 255 give the rows of the same pixels
    transposed and divided beforehand; the provenance records the three keys and the file's SHA-256."""
    x, y = mnist_u8
    np.savez(tmp_path / "raw.npz", x=x.transpose(0, 3, 1, 2), y=y)
    np.savez(tmp_path / "prepared.npz", x=x.astype(np.float32) / np.float32(255), y=y)
    weights = [shipped_weights / "cnn-mnist.h5"]
    raw = _spec(tmp_path, weights, 'data = "raw.npz"\ndata_layout = "nchw"\ndata_scale = 255', name="raw.toml")
    prepared = _spec(tmp_path, weights, 'data = "prepared.npz"', name="prepared.toml")
    for spec, out in ((raw, tmp_path / "raw.csv"), (prepared, tmp_path / "prepared.csv")):
        result = _sweep(spec, out)
        assert result.exit_code == 0, result.output

    def results(path):
        return [{k: v for k, v in row.items() if k not in ("dataset", "seconds")} for row in _rows(path)]

    assert len(results(tmp_path / "raw.csv")) == 4
    assert results(tmp_path / "raw.csv") == results(tmp_path / "prepared.csv")
    recorded = read_provenance(tmp_path / "raw.csv")
    assert {k: recorded["spec"][k] for k in ("dataset", "data", "data_layout", "data_scale")} == {
        "dataset": None, "data": "raw.npz", "data_layout": "nchw", "data_scale": 255.0}
    assert recorded["data"] == {"raw.npz": hashlib.sha256((tmp_path / "raw.npz").read_bytes()).hexdigest()}
    defaults = read_provenance(tmp_path / "prepared.csv")["spec"]
    assert (defaults["data_layout"], defaults["data_scale"]) == (None, None)  # as the weights say, else nhwc, 1


def _write(tmp_path, what):
    """A test-set file for the bad-spec cases: MNIST-shaped random images unless ``what`` says otherwise."""
    rng = np.random.default_rng(0)
    x, y = rng.random((N_IMAGES, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, N_IMAGES)
    if what == "cifar-shaped":
        x = rng.random((N_IMAGES, 32, 32, 3), dtype=np.float32)
    elif what == "label 10":
        y[3] = 10
    elif what == "text":
        (tmp_path / "d.npz").write_text("x,y\n1,2\n")
        return
    np.savez(tmp_path / "d.npz", x=x, y=y)


@pytest.mark.parametrize("extra, file, fragments", [
    ('data = "d.npz"\ndataset = "mnist"', "mnist-shaped", ["'data' and 'dataset' are exclusive"]),
    ('data_layout = "nchw"', "mnist-shaped", ["'data_layout' applies to a 'data' file only"]),
    ("data_scale = 255", "mnist-shaped", ["'data_scale' applies to a 'data' file only"]),
    ('data = "d.npz"\ndata_layout = "hwc"', "mnist-shaped", ["'data_layout' must be one of 'nhwc', 'nchw', got 'hwc'"]),
    ('data = "d.npz"\ndata_scale = 0', "mnist-shaped", ["'data_scale' must be a positive finite number, got 0"]),
    ('data = "d.npz"\ndata_scale = nan', "mnist-shaped", ["'data_scale' must be a positive finite number, got nan"]),
    ('data = "d.npz"\ndata_scale = true', "mnist-shaped", ["'data_scale' must be a positive finite number"]),
    ('data = ["d.npz"]', "mnist-shaped", ["'data' must be a test-set file"]),
    ('data = "missing.npz"', "mnist-shaped", ["'data': missing.npz: no such file"]),
    ('data = "d.npz"', "cifar-shaped", ["'data' for weights", "mlp-mnist.h5: ", "d.npz: 'x' holds NHWC samples of "
                                        "shape (32, 32, 3); the network takes (28, 28, 1)"]),
    ('data = "d.npz"', "label 10", ["'data' for weights", "label 10 in 'y' is outside [0, 10)"]),
    ('data = "d.npz"', "text", ["'data' for weights", "d.npz: not an .npz (zip) or HDF5 file"]),
])
def test_bad_data_keys_and_files_are_one_line_before_any_task(tmp_path, shipped_weights, extra, file, fragments):
    _write(tmp_path, file)
    spec = _spec(tmp_path, [shipped_weights / "mlp-mnist.h5"], extra)
    out = tmp_path / "r.csv"
    _one_line_exit_2(_sweep(spec, out), f"{spec}: ", *fragments)
    assert not out.exists()  # refused in load_spec: the results file is not even started


def test_resume_after_the_data_file_changed_is_refused(tmp_path, shipped_weights):
    _write(tmp_path, "mnist-shaped")
    spec = _spec(tmp_path, [shipped_weights / "mlp-mnist.h5"], 'data = "d.npz"', grid="sigma_syn = [0.0]")
    out = tmp_path / "r.csv"
    assert _sweep(spec, out).exit_code == 0
    before = out.read_bytes()
    assert _sweep(spec, out, "--resume").exit_code == 0  # the same file: nothing to run
    assert out.read_bytes() == before
    with np.load(tmp_path / "d.npz") as arrays:
        x, y = arrays["x"], arrays["y"]
    np.savez(tmp_path / "d.npz", x=x, y=(y + 1) % 10)  # same shapes, other labels: the rows would differ
    _one_line_exit_2(_sweep(spec, out, "--resume"), "r.csv", "data d.npz content differs (sha256 ")
    assert out.read_bytes() == before
    # The way it is read counts too.
    _write(tmp_path, "mnist-shaped")
    spec.write_text(spec.read_text().replace('data = "d.npz"', 'data = "d.npz"\ndata_scale = 2'))
    _one_line_exit_2(_sweep(spec, out, "--resume"), "spec data_scale differs: null -> 2.0")
