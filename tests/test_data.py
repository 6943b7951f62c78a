"""Datasets: IDX parsing, the shipped test sets, fetching with checksums (no network)."""

import gzip
import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

from xbar import data
from xbar.cli import main
from xbar.errors import DataError

from .conftest import SHARED_DATA


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_round_trip(rng):
    array = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    np.testing.assert_array_equal(data.parse_idx(_idx(array)), array)


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00\x99\x01\x00\x00\x00\x01\x00", "bad magic"),
    (b"\x00\x00\x08\x02\x00\x00", "truncated IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "size mismatch"),
])
def test_parse_idx_rejects_damaged_bytes(raw, message):
    with pytest.raises(DataError, match=message):
        data.parse_idx(raw)


def test_gzip_and_raw_files_read_alike(tmp_path, rng):
    raw = _idx(rng.integers(0, 256, (2, 3), dtype=np.uint8))
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "b.gz").write_bytes(gzip.compress(raw))
    assert data.read_idx_bytes(tmp_path / "a") == data.read_idx_bytes(tmp_path / "b.gz") == raw


@pytest.mark.parametrize("name, counts", [
    ("mnist", [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    ("fashion-mnist", [1000] * 10),
])
def test_shipped_test_sets(name, counts):
    images, labels = data.load(name, "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels).tolist() == counts
    assert all(ok for _, ok in data.verify(name))


def test_load_limit():
    images, labels = data.load("mnist", "test", limit=7)
    assert images.shape == (7, 28, 28) and labels.shape == (7,)


@pytest.fixture
def fake_dataset(tmp_path, monkeypatch, rng):
    """A tiny dataset registered under the name 'tiny', its IDX files in a source folder."""
    source = tmp_path / "source"
    source.mkdir()
    files = {}
    for split, n in (("train", 6), ("test", 4)):
        images = _idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        labels = _idx(rng.integers(0, 10, (n,), dtype=np.uint8))
        prefix = "train" if split == "train" else "t10k"
        pair = []
        for kind, raw in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            (source / f"{name}.gz").write_bytes(gzip.compress(raw))
            pair.append(data.DatasetFile(name, hashlib.sha256(raw).hexdigest(), len(raw)))
        files[split] = tuple(pair)
    spec = data.DatasetSpec("tiny", "http://invalid.example/", None, files, tuple("0123456789"))
    monkeypatch.setitem(data.DATASETS, "tiny", spec)
    monkeypatch.delenv("XBAR_DATA", raising=False)
    monkeypatch.setenv("XBAR_HOME", str(tmp_path / "home"))
    return source


def test_fetch_from_source_verifies_and_stores(fake_dataset):
    stored = data.fetch("tiny", fake_dataset)
    assert len(stored) == 4
    images, labels = data.load("tiny", "train")
    assert images.shape == (6, 28, 28) and labels.shape == (6,)
    assert all(ok for _, ok in data.verify("tiny"))


def test_fetch_from_xbar_data_env(fake_dataset, monkeypatch):
    monkeypatch.setenv("XBAR_DATA", str(fake_dataset))
    assert all(origin.startswith(str(fake_dataset)) for _, origin in data.fetch("tiny"))


def test_checksum_mismatch_leaves_nothing_behind(fake_dataset):
    damaged = fake_dataset / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(damaged.read_bytes()))
    raw[-1] ^= 1
    damaged.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        data.fetch("tiny", fake_dataset)
    assert not (data.store_dir() / "tiny").exists() or not any((data.store_dir() / "tiny").iterdir())


def test_missing_training_set_names_the_fix(fake_dataset):
    with pytest.raises(DataError, match="xbar data fetch --dataset tiny"):
        data.load("tiny", "train")


def test_cli_fetch_missing_source_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["data", "fetch", "--source", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs the project's ../shared/data")
def test_cli_fetch_real_sets_from_shared_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XBAR_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["data", "fetch", "--source", str(SHARED_DATA)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("SHA-256 verified") == 8
    result = CliRunner().invoke(main, ["data", "verify"])
    assert result.exit_code == 0 and "MISMATCH" not in result.stdout
    images, labels = data.load("mnist", "train")
    assert images.shape == (60000, 28, 28)
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
