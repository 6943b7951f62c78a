"""Test data beyond the built-in sets: ``xbar run --data FILE.npz|FILE.h5`` and CIFAR-10 (no downloads).

Every test makes its own small data; bad files and options are in test_bad_cli's table.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io as stdio
import json
import tarfile

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from xbar import data, io, testdata
from xbar.cli import main
from xbar.errors import DataError, WeightsFormatError
from xbar.evaluate import evaluate
from xbar.nets import Network, build
from xbar.nets.layers import Dense, Flatten


def _save(path, x, y, fmt):
    if fmt == "npz":
        np.savez_compressed(path, x=x, y=y)
    else:
        with h5py.File(path, "w") as fh:
            fh["x"], fh["y"] = x, y
    return path


def _run(*args) -> dict:
    result = CliRunner().invoke(main, ["run", *map(str, args), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _rgb_network(provenance=None) -> Network:
    """A tiny network on 4 x 4 RGB samples (NHWC), 10 classes."""
    rng = np.random.default_rng(3)
    dense = Dense(kernel=rng.normal(size=(48, 10)).astype(np.float32), bias=None, activation="linear")
    return Network("tiny-rgb", "synthetic", (4, 4, 3), 10, [Flatten(), dense], provenance or {})


@pytest.fixture
def rgb(tmp_path, rng):
    """(weights path, network, uint8 NHWC images (64, 4, 4, 3), labels)."""
    network = _rgb_network()
    x = rng.integers(0, 256, (64, 4, 4, 3), dtype=np.uint8)
    y = network.predict((x / 255.0).astype(np.float32))
    y[::3] = rng.integers(0, 10, len(y[::3]))  # some wrong: an accuracy neither 0 nor 1
    return io.save(network, tmp_path / "rgb.h5"), network, x, y


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_run_data_round_trip_equals_evaluate(tmp_path, rng, fmt):
    network = build("mlp", hidden=8, seed=1)
    weights = io.save(network, tmp_path / "w.h5")
    x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 40)
    path = _save(tmp_path / f"test.{fmt}", x, y, fmt)
    report = _run(weights, "--data", path, "--scale", 255)
    expected = evaluate(network, (x / np.float32(255)).astype(np.float32), y).accuracy
    assert report["accuracy"] == expected and report["n_images"] == 40
    assert report["data"] == str(path) and report["dataset"] is None
    assert _run(weights, "--data", path, "--scale", 255, "--limit", 7)["n_images"] == 7
    text = CliRunner().invoke(main, ["run", str(weights), "--data", str(path), "--quiet"])
    assert text.exit_code == 0 and f"on {path}:" in text.stdout


def test_nchw_and_nhwc_give_the_same_accuracy(tmp_path, rgb):
    weights, network, x, y = rgb
    nhwc = _save(tmp_path / "nhwc.npz", x, y, "npz")
    nchw = _save(tmp_path / "nchw.h5", x.transpose(0, 3, 1, 2), y, "h5")
    a = _run(weights, "--data", nhwc, "--scale", 255)["accuracy"]
    b = _run(weights, "--data", nchw, "--layout", "nchw", "--scale", 255)["accuracy"]
    assert a == b == evaluate(network, (x / np.float32(255)).astype(np.float32), y).accuracy
    assert 0 < a < 1
    flat = _save(tmp_path / "flat.npz", x.reshape(len(x), -1), y, "npz")
    assert _run(weights, "--data", flat, "--scale", 255)["accuracy"] == a


def test_scale_mean_std_as_documented(tmp_path, rgb):
    weights, network, x, y = rgb
    path = _save(tmp_path / "t.npz", x, y, "npz")
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    images, labels = testdata.load_file(path, network.input_shape, 10, scale=255, mean=mean, std=std)
    expected = ((x.astype(np.float32) / np.float32(255) - np.float32(mean)) / np.float32(std)).astype(np.float32)
    np.testing.assert_allclose(images, expected, rtol=1e-6, atol=1e-6)
    assert labels.dtype == np.int64 and (labels == y).all()
    report = _run(weights, "--data", path, "--scale", 255, "--mean", ",".join(map(str, mean)), "--std", "0.25")
    want = evaluate(network, (x.astype(np.float32) / np.float32(255) - np.float32(mean)) / np.float32(0.25), y)
    assert report["accuracy"] == want.accuracy


def test_provenance_mean_std_used_unless_given(tmp_path, rgb):
    _, _, x, y = rgb
    network = _rgb_network({"input_mean": [0.5, 0.4, 0.3], "input_std": [0.2, 0.25, 0.3]})
    weights = io.save(network, tmp_path / "normalised.h5")
    assert io.load(weights).provenance["input_mean"] == [0.5, 0.4, 0.3]
    path = _save(tmp_path / "t.npz", x, y, "npz")
    scaled = x.astype(np.float32) / np.float32(255)
    stored = evaluate(network, (scaled - np.float32([0.5, 0.4, 0.3])) / np.float32([0.2, 0.25, 0.3]), y).accuracy
    given = evaluate(network, (scaled - np.float32(0.1)) / np.float32([0.2, 0.25, 0.3]), y).accuracy
    assert stored != given
    assert _run(weights, "--data", path, "--scale", 255)["accuracy"] == stored
    assert _run(weights, "--data", path, "--scale", 255, "--mean", 0.1)["accuracy"] == given


def test_declared_size_is_refused_before_reading(tmp_path, monkeypatch, rng):
    x = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    for fmt in ("npz", "h5"):
        path = _save(tmp_path / f"t.{fmt}", x, np.zeros(10, np.int64), fmt)
        monkeypatch.setattr(testdata, "MAX_DATA_BYTES", 7000)
        monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: pytest.fail("read past the limit"))
        with pytest.raises(DataError, match="declare 7,920 bytes, more than the 7,000"):
            testdata.load_file(path, (28, 28, 1), 10)


# ------------------------------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_batch(rng, n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels[:, None], chw.reshape(n, -1)], axis=1).tobytes()
    return raw, chw.transpose(0, 2, 3, 1), labels


def test_cifar_batch_reader_is_nhwc(rng):
    raw, nhwc, labels = _cifar_batch(rng, 5)
    images, got = data.parse_cifar_batch(raw)
    assert images.shape == (5, 32, 32, 3)
    np.testing.assert_array_equal(images, nhwc)
    np.testing.assert_array_equal(got, labels)
    with pytest.raises(DataError, match="whole number"):
        data.parse_cifar_batch(raw[:-1])
    bad = bytearray(raw)
    bad[0] = 10
    with pytest.raises(DataError, match="label 10"):
        data.parse_cifar_batch(bytes(bad))


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch, rng):
    """The cifar10 spec with 3-record batches and a synthetic archive in a source folder (checksums patched)."""
    spec = data.DATASETS["cifar10"]
    batches, files = {}, {}
    for split, names in spec.files.items():
        files[split] = []
        for file in names:
            raw, _, _ = _cifar_batch(rng, 3)
            batches[file.name] = raw
            files[split].append(data.DatasetFile(file.name, hashlib.sha256(raw).hexdigest(), len(raw)))
    buffer = stdio.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, raw in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(raw)
            tar.addfile(info, stdio.BytesIO(raw))
    source = tmp_path / "source"
    source.mkdir()
    archive = source / spec.archive.name
    archive.write_bytes(buffer.getvalue())
    patched = dataclasses.replace(
        spec,
        url="http://invalid.example/",
        files={split: tuple(f) for split, f in files.items()},
        archive=dataclasses.replace(spec.archive, sha256=hashlib.sha256(archive.read_bytes()).hexdigest()),
    )
    monkeypatch.setitem(data.DATASETS, "cifar10", patched)
    monkeypatch.delenv("XBAR_DATA", raising=False)
    monkeypatch.setenv("XBAR_HOME", str(tmp_path / "home"))
    return source, batches


def test_cifar_fetch_from_source_archive(tiny_cifar):
    source, batches = tiny_cifar
    with pytest.raises(DataError, match="xbar data fetch --dataset cifar10"):
        data.load("cifar10", "test")
    result = CliRunner().invoke(main, ["data", "fetch", "--dataset", "cifar10", "--source", str(source)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("SHA-256 verified") == 6
    images, labels = data.load("cifar10", "test")
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.float32 and labels.dtype == np.int64
    expected, expected_labels = data.parse_cifar_batch(batches["test_batch.bin"])
    np.testing.assert_array_equal(images, expected / np.float32(255))
    np.testing.assert_array_equal(labels, expected_labels)
    assert data.load("cifar10", "train")[0].shape == (15, 32, 32, 3)
    assert all(ok for _, ok in data.verify("cifar10")) and len(data.verify("cifar10")) == 6
    stored = data.store_dir() / "cifar10" / "test_batch.bin.gz"
    assert gzip.decompress(stored.read_bytes()) == batches["test_batch.bin"]


def test_cifar_archive_mismatch_leaves_nothing(tiny_cifar):
    source, _ = tiny_cifar
    archive = source / "cifar-10-binary.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"\0")
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        data.fetch("cifar10", source)
    assert not (data.store_dir() / "cifar10").exists() or not any((data.store_dir() / "cifar10").iterdir())


def test_run_on_fetched_cifar(tiny_cifar, tmp_path):
    source, _ = tiny_cifar
    data.fetch("cifar10", source)
    rng = np.random.default_rng(1)
    dense = Dense(kernel=rng.normal(size=(3072, 10)).astype(np.float32), bias=None, activation="linear")
    network = Network("tiny-cifar", "synthetic", (32, 32, 3), 10, [Flatten(), dense])
    weights = io.save(network, tmp_path / "c.h5")
    images, labels = data.load("cifar10", "test")
    report = _run(weights, "--dataset", "cifar10")
    assert report["dataset"] == "cifar10" and report["accuracy"] == evaluate(network, images, labels).accuracy


def test_energy_takes_data(tmp_path, rgb):
    weights, _, x, y = rgb
    path = _save(tmp_path / "t.npz", x, y, "npz")
    result = CliRunner().invoke(
        main, ["energy", str(weights), "--data", str(path), "--scale", "255", "--images", "10", "--json", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_images"] == 10 and report["test_set"] == str(path) and report["total_j"] > 0


def test_data_path_names_cifar10_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("XBAR_HOME", str(tmp_path))
    monkeypatch.delenv("XBAR_DATA", raising=False)
    result = CliRunner().invoke(main, ["data", "path", "--dataset", "cifar10"])
    assert result.exit_code == 0 and "cifar10 test: missing (run 'xbar data fetch --dataset cifar10')" in result.stdout


def test_flat_network_takes_grayscale_images(tmp_path, rng):
    dense = Dense(kernel=rng.normal(size=(16, 10)).astype(np.float32), bias=None, activation="linear")
    Network("flat", "synthetic", (16,), 10, [dense])  # a valid flat network: 16 inputs
    x = rng.random((12, 4, 4)).astype(np.float32)
    y = rng.integers(0, 10, 12)
    for shape in ((12, 4, 4), (12, 4, 4, 1), (12, 16)):
        images, _ = testdata.load_file(_save(tmp_path / "t.npz", x.reshape(shape), y, "npz"), (16,), 10)
        np.testing.assert_array_equal(images, x.reshape(12, 16))
    with pytest.raises(DataError, match=r"the network takes \(16,\)"):
        testdata.load_file(_save(tmp_path / "t.npz", rng.random((12, 2, 2, 4)), y, "npz"), (16,), 10)


def test_sweeps_normalise_as_run_does(tmp_path):
    from xbar import sweep

    network = build("mlp", hidden=8, seed=1)
    network.provenance = {"input_mean": 0.5, "input_std": 0.25}
    weights = io.save(network, tmp_path / "w.h5")
    images, labels = sweep._inputs(io.load(weights), str(weights), "mnist", 20)
    raw, _ = data.load("mnist", "test", limit=20)
    np.testing.assert_array_equal(images, (raw - np.float32(0.5)) / np.float32(0.25))
    report = _run(weights, "--limit", 20)
    assert report["accuracy"] == evaluate(network, images, labels).accuracy


def test_a_cifar10_network_loads_and_an_mnist_sized_one_is_refused(tmp_path, rng):
    """The dataset a weights file names sets the input size it must have: 32 x 32 x 3 for cifar10."""
    dense = Dense(kernel=rng.normal(size=(3072, 10)).astype(np.float32), bias=None, activation="linear")
    good = io.save(Network("mlp", "cifar10", (32, 32, 3), 10, [Flatten(), dense]), tmp_path / "c.h5")
    assert io.load(good).input_shape == (32, 32, 3)
    small = Dense(kernel=rng.normal(size=(784, 10)).astype(np.float32), bias=None, activation="linear")
    bad = io.save(Network("mlp", "cifar10", (28, 28), 10, [Flatten(), small]), tmp_path / "m.h5")
    with pytest.raises(WeightsFormatError, match=r"does not hold one cifar10 image \(\(32, 32, 3\): 3072 numbers\)"):
        io.load(bad)
