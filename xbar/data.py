"""Datasets: reading IDX files, locating them, and fetching them with checksums.

The two test sets (10,000 images each) ship in the repository's ``data/``
folder, installed with a wheel and found by :mod:`xbar.shipped`. Every IDX file
is read only if it is a regular file, and never past the size its dataset has
(a damaged gzip stream or a larger file is an error, not a memory hog).

The training sets are obtained by :func:`fetch` into a local store
(``$XBAR_HOME/datasets``, default ``~/.cache/xbar/datasets``) from, in order:
an explicit source folder, the folder named by ``$XBAR_DATA``, the Debian
package path (Fashion-MNIST only), or the canonical public download. Every
file is verified against the SHA-256 of its *decompressed* content recorded
below, so gzip or raw copies from any source are accepted alike.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._files import atomic_path, check_regular_file
from .errors import DataError, XbarError
from .shipped import data_dir as shipped_data_dir

#: Folder holding the shipped test sets and weights: the checkout's ``data/``, or the copy a wheel
#: installs under ``<prefix>/share/xbar/data``, or ``$XBAR_SHIPPED_DATA`` (see xbar.shipped).
SHIPPED_DIR = shipped_data_dir()

SPLITS = ("train", "test")

_IDX_DTYPES: dict[int, type | str] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class DatasetFile:
    """One IDX file of a dataset: its name and the SHA-256 of its decompressed bytes."""

    name: str
    sha256: str
    n_bytes: int


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its files per split, class names and canonical download location."""

    name: str
    url: str
    debian_dir: str | None
    files: dict[str, tuple[DatasetFile, DatasetFile]]
    """split -> (images, labels)."""
    classes: tuple[str, ...]


def _pair(prefix: str, img_sha: str, lab_sha: str, n: int) -> tuple[DatasetFile, DatasetFile]:
    return (
        DatasetFile(f"{prefix}-images-idx3-ubyte", img_sha, 16 + n * 784),
        DatasetFile(f"{prefix}-labels-idx1-ubyte", lab_sha, 8 + n),
    )


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        debian_dir=None,
        files={
            "train": _pair(
                "train",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                60000,
            ),
            "test": _pair(
                "t10k",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                10000,
            ),
        },
        classes=tuple(str(i) for i in range(10)),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        debian_dir="/usr/share/datasets/fashion-mnist",
        files={
            "train": _pair(
                "train",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                60000,
            ),
            "test": _pair(
                "t10k",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                10000,
            ),
        },
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}


def dataset_spec(name: str) -> DatasetSpec:
    """Return the :class:`DatasetSpec` called ``name`` or raise :class:`DataError`."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})") from None


def store_dir() -> Path:
    """Folder where fetched datasets live: ``$XBAR_HOME/datasets`` or ``~/.cache/xbar/datasets``."""
    home = os.environ.get("XBAR_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "xbar"
    return base / "datasets"


def parse_idx(raw: bytes, what: str = "IDX data") -> np.ndarray:
    """Decode the bytes of an IDX file (already decompressed) into an array.

    Parameters
    ----------
    raw : bytes
        The whole file: magic (two zero bytes, dtype code, rank), big-endian
        uint32 dimensions, then the data in C order.
    what : str
        Name used in error messages.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{what}: not an IDX file (bad magic number)")
    rank = raw[3]
    header = 4 + 4 * rank
    if len(raw) < header:
        raise DataError(f"{what}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=rank, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{what}: IDX size mismatch ({len(raw)} bytes, header says {expected})")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def read_idx_bytes(path: Path, max_bytes: int | None = None) -> bytes:
    """Read an IDX file, gzip-compressed or raw, and return its decompressed bytes.

    Only a regular file is read, and at most ``max_bytes`` decompressed bytes
    (a larger file is an error before it fills memory; a gzip bomb included).
    """
    try:
        check_regular_file(path)
    except XbarError as exc:
        raise DataError(str(exc)) from None
    limit = -1 if max_bytes is None else max_bytes + 1
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            raw = fh.read(limit)
    except (OSError, EOFError, zlib.error) as exc:
        # gzip reports a damaged stream as BadGzipFile (an OSError), EOFError or zlib.error.
        raise DataError(f"{path}: cannot read, damaged or truncated ({exc})") from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise DataError(f"{path}: more than the {max_bytes:,} bytes this IDX file has")
    return raw


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _candidate_dirs(spec: DatasetSpec, split: str) -> list[Path]:
    """Folders searched when loading ``split`` of ``spec``, most specific first."""
    dirs = [store_dir() / spec.name]
    if split == "test":
        dirs.insert(0, SHIPPED_DIR / spec.name)
    env = os.environ.get("XBAR_DATA")
    if env:
        dirs += [Path(env) / spec.name, Path(env)]
    return dirs


def locate(name: str, split: str) -> tuple[Path, Path]:
    """Return the (images, labels) paths of ``split`` of dataset ``name``.

    The test split is found in the shipped ``data/`` folder; the training split
    in the fetched store (see :func:`fetch`) or under ``$XBAR_DATA``.
    """
    spec = dataset_spec(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    images_file, labels_file = spec.files[split]
    for folder in _candidate_dirs(spec, split):
        images, labels = _find_file(folder, images_file.name), _find_file(folder, labels_file.name)
        if images and labels:
            return images, labels
    raise DataError(
        f"{name} {split} set not found; run 'xbar data fetch --dataset {name}' "
        f"(or set XBAR_DATA to a folder holding the IDX files)"
    )


def load(name: str, split: str = "test", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset split.

    Returns
    -------
    images : ndarray, float32, shape (n, 28, 28)
        Pixels scaled to [0, 1].
    labels : ndarray, int64, shape (n,)
    """
    images_path, labels_path = locate(name, split)
    images_file, labels_file = dataset_spec(name).files[split]
    images = parse_idx(read_idx_bytes(images_path, images_file.n_bytes), str(images_path))
    labels = parse_idx(read_idx_bytes(labels_path, labels_file.n_bytes), str(labels_path))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path}: images {images.shape} and labels {labels.shape} disagree")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return (images.astype(np.float32) / np.float32(255.0)), labels.astype(np.int64)


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (https/http only)
            return response.read()
    except OSError as exc:
        raise DataError(f"download of {url} failed ({exc})") from None


def _obtain(spec: DatasetSpec, file: DatasetFile, source: Path | None) -> tuple[bytes, str]:
    """Return the verified decompressed bytes of ``file`` and a description of their origin."""
    folders: list[Path] = []
    if source is not None:
        folders += [source / spec.name, source]
    env = os.environ.get("XBAR_DATA")
    if env:
        folders += [Path(env) / spec.name, Path(env)]
    if spec.debian_dir:
        folders.append(Path(spec.debian_dir))
    for folder in folders:
        found = _find_file(folder, file.name)
        if found:
            raw = read_idx_bytes(found, file.n_bytes)
            _verify(raw, file, str(found))
            return raw, str(found)
    if source is not None:
        raise DataError(f"{file.name}[.gz] not found in {source}")
    url = spec.url + file.name + ".gz"
    try:
        raw = gzip.decompress(_download(url))
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{url}: the download is not a valid gzip file ({exc})") from None
    _verify(raw, file, url)
    return raw, url


def _verify(raw: bytes, file: DatasetFile, where: str) -> None:
    digest = _sha256(raw)
    if digest != file.sha256:
        raise DataError(f"{where}: SHA-256 mismatch (got {digest[:12]}..., expected {file.sha256[:12]}...)")


def fetch(name: str, source: Path | None = None, splits: tuple[str, ...] = SPLITS) -> list[tuple[Path, str]]:
    """Obtain, verify and store the IDX files of dataset ``name``.

    Every file is first obtained and verified in memory; only when all are good
    are they written (gzip-compressed, each through a temporary file and an
    atomic rename), so a mismatch leaves nothing behind.

    Returns
    -------
    list of (stored path, origin)
    """
    spec = dataset_spec(name)
    obtained = [(file, *_obtain(spec, file, source)) for split in splits for file in spec.files[split]]
    target = store_dir() / spec.name
    target.mkdir(parents=True, exist_ok=True)
    stored = []
    for file, raw, origin in obtained:
        path = target / f"{file.name}.gz"
        with atomic_path(path) as tmp, gzip.GzipFile(tmp, mode="wb", mtime=0) as gz:
            gz.write(raw)
        stored.append((path, origin))
    return stored


def verify(name: str) -> list[tuple[Path, bool]]:
    """Check every locatable file of dataset ``name`` against its recorded SHA-256.

    Returns
    -------
    list of (path, ok). A split that cannot be located is not listed.
    """
    spec = dataset_spec(name)
    results = []
    for split in SPLITS:
        try:
            paths = locate(name, split)
        except DataError:
            continue
        for path, file in zip(paths, spec.files[split]):
            try:
                ok = _sha256(read_idx_bytes(path, file.n_bytes)) == file.sha256
            except DataError:
                ok = False  # damaged or the wrong size: a mismatch, reported with the others
            results.append((path, ok))
    return results
