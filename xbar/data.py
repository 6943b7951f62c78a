"""Datasets: the built-in sets (IDX and CIFAR-10 binary files), fetching them with checksums, and the user's
own test sets (``xbar run --data FILE.npz|FILE.h5``, see :func:`load_file` and ``docs/data.md``).

The two MNIST-like test sets (10,000 images each) ship in the repository's ``data/``
folder, installed with a wheel and found by :mod:`xbar.shipped`; CIFAR-10 does not
ship (30 MB) and is fetched. Every dataset file is read only if it is a regular
file, and never past the size its dataset has (a damaged gzip stream or a larger
file is an error, not a memory hog). Each dataset names a reader of its file
format (:data:`READERS`: ``idx``, ``cifar-bin``).

The training sets are obtained by :func:`fetch` into a local store
(``$XBAR_HOME/datasets``, default ``~/.cache/xbar/datasets``) from, in order:
an explicit source folder, the folder named by ``$XBAR_DATA``, the Debian
package path (Fashion-MNIST only), or the canonical public download (per file
for MNIST, one archive for CIFAR-10, verified by its own SHA-256 before its
members are). Every file is verified against the SHA-256 of its *decompressed*
content recorded below, so gzip or raw copies from any source are accepted alike.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._files import atomic_path, check_regular_file, read_bytes
from .errors import DataError, XbarError
from .shipped import data_dir as shipped_data_dir

#: Folder holding the shipped test sets and weights: the checkout's ``data/``, or the copy a wheel
#: installs under ``<prefix>/share/xbar/data``, or ``$XBAR_SHIPPED_DATA`` (see xbar.shipped).
SHIPPED_DIR = shipped_data_dir()

SPLITS = ("train", "test")

_IDX_DTYPES: dict[int, type | str] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset: its name, the SHA-256 of its decompressed bytes, and their number."""

    name: str
    sha256: str
    n_bytes: int


@dataclass(frozen=True)
class Archive:
    """A compressed tar archive that holds a dataset's files (the canonical download of CIFAR-10).

    Verified against ``sha256`` (of the archive's bytes as downloaded) before any
    member is read; each member is then verified as the dataset file it is.
    """

    name: str
    sha256: str
    n_bytes: int
    member_dir: str
    """Folder inside the archive holding the files, e.g. ``cifar-10-batches-bin``."""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its files per split, class names, file format and canonical download location."""

    name: str
    url: str
    debian_dir: str | None
    files: dict[str, tuple[DatasetFile, ...]]
    """split -> its files: (images, labels) for ``idx``; the record batches, in order, for ``cifar-bin``."""
    classes: tuple[str, ...]
    reader: str = "idx"
    """Key of :data:`READERS`: how the split's files become images and labels."""
    image_shape: tuple[int, ...] = (28, 28)
    """Shape of one image as :func:`load` returns it: (H, W) grayscale or (H, W, C) NHWC."""
    archive: Archive | None = None
    """Download one archive holding every file (at ``url + archive.name``), rather than each file gzipped."""


def _pair(prefix: str, img_sha: str, lab_sha: str, n: int) -> tuple[DatasetFile, DatasetFile]:
    return (
        DatasetFile(f"{prefix}-images-idx3-ubyte", img_sha, 16 + n * 784),
        DatasetFile(f"{prefix}-labels-idx1-ubyte", lab_sha, 8 + n),
    )


CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32
"""One record of a CIFAR-10 binary batch: a label byte, then 3,072 pixel bytes (red, green, blue planes, each
32 x 32 in row-major order: CHW)."""


def _batch(name: str, sha256: str, n: int = 10000) -> DatasetFile:
    return DatasetFile(name, sha256, n * CIFAR_RECORD_BYTES)


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
    # The binary version of https://www.cs.toronto.edu/~kriz/cifar.html (Krizhevsky 2009). Archive: 170,052,171
    # bytes, MD5 c32a1d4ab5d03f1284b67883e8d87530 (published on that page); the SHA-256s are the ones recorded by
    # other loaders of the same files (docs/data.md says which), not yet re-checked against a download here.
    "cifar10": DatasetSpec(
        name="cifar10",
        url="https://www.cs.toronto.edu/~kriz/",
        debian_dir=None,
        files={
            "train": (
                _batch("data_batch_1.bin", "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5"),
                _batch("data_batch_2.bin", "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed"),
                _batch("data_batch_3.bin", "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67"),
                _batch("data_batch_4.bin", "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48"),
                _batch("data_batch_5.bin", "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add"),
            ),
            "test": (_batch("test_batch.bin", "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b"),),
        },
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        reader="cifar-bin",
        image_shape=(32, 32, 3),
        archive=Archive(
            "cifar-10-binary.tar.gz",
            "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            170052171,
            "cifar-10-batches-bin",
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
    """Read a dataset file (IDX or CIFAR-10 batch), gzip-compressed or raw, and return its decompressed bytes.

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
        raise DataError(f"{path}: more than the {max_bytes:,} bytes this dataset file has")
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


def locate(name: str, split: str) -> tuple[Path, ...]:
    """Return the paths of the files of ``split`` of dataset ``name``, in the order of its spec.

    (images, labels) for an IDX dataset; the record batches for CIFAR-10. The
    MNIST-like test splits are found in the shipped ``data/`` folder; the other
    splits in the fetched store (see :func:`fetch`) or under ``$XBAR_DATA``.
    """
    spec = dataset_spec(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    for folder in _candidate_dirs(spec, split):
        found = [_find_file(folder, file.name) for file in spec.files[split]]
        if all(found):
            return tuple(path for path in found if path is not None)
    raise DataError(
        f"{name} {split} set not found; run 'xbar data fetch --dataset {name}' "
        f"(or set XBAR_DATA to a folder holding its files)"
    )


def _read_idx_split(raws: Sequence[bytes], paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """IDX (images, labels) files -> images uint8 (n, H, W), labels (n,)."""
    images, labels = (parse_idx(raw, str(path)) for raw, path in zip(raws, paths))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{paths[0]}: images {images.shape} and labels {labels.shape} disagree")
    return images, labels


def parse_cifar_batch(raw: bytes, what: str = "CIFAR-10 batch") -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR-10 binary batch (records of :data:`CIFAR_RECORD_BYTES`).

    Returns
    -------
    images : ndarray, uint8, shape (n, 32, 32, 3)
        NHWC (the file holds each image as CHW planes; they are transposed here).
    labels : ndarray, uint8, shape (n,)
        In [0, 10).
    """
    if not raw or len(raw) % CIFAR_RECORD_BYTES:
        raise DataError(f"{what}: {len(raw)} bytes is not a whole number of {CIFAR_RECORD_BYTES}-byte records")
    records = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    labels = records[:, 0]
    if labels.max() >= 10:
        raise DataError(f"{what}: label {int(labels.max())} is not a CIFAR-10 class (0-9)")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _read_cifar_split(raws: Sequence[bytes], paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    parts = [parse_cifar_batch(raw, str(path)) for raw, path in zip(raws, paths)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


READERS: dict[str, Callable[[Sequence[bytes], Sequence[Path]], tuple[np.ndarray, np.ndarray]]] = {
    "idx": _read_idx_split,
    "cifar-bin": _read_cifar_split,
}
"""Dataset file formats: (decompressed bytes of a split's files, their paths) -> (uint8 images, labels)."""


def load(name: str, split: str = "test", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset split.

    Returns
    -------
    images : ndarray, float32, shape (n, *image_shape)
        Pixels scaled to [0, 1]: (n, 28, 28) for MNIST and Fashion-MNIST, (n, 32, 32, 3) NHWC for CIFAR-10.
    labels : ndarray, int64, shape (n,)
    """
    spec = dataset_spec(name)
    paths = locate(name, split)
    raws = [read_idx_bytes(path, file.n_bytes) for path, file in zip(paths, spec.files[split])]
    images, labels = READERS[spec.reader](raws, paths)
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


def _source_folders(spec: DatasetSpec, source: Path | None) -> list[Path]:
    """Folders :func:`fetch` searches, in order: ``source``, ``$XBAR_DATA``, the Debian package path."""
    folders: list[Path] = []
    if source is not None:
        folders += [source / spec.name, source]
    env = os.environ.get("XBAR_DATA")
    if env:
        folders += [Path(env) / spec.name, Path(env)]
    if spec.debian_dir:
        folders.append(Path(spec.debian_dir))
    return folders


def _from_archive(spec: DatasetSpec, files: Sequence[DatasetFile], source: Path | None) -> list[tuple[bytes, str]]:
    """The verified bytes of ``files`` taken out of ``spec.archive``: found in a source folder, else downloaded."""
    archive = spec.archive
    assert archive is not None
    raw, origin = None, spec.url + archive.name
    for folder in _source_folders(spec, source):
        if (folder / archive.name).is_file():
            origin = str(folder / archive.name)
            try:
                raw = read_bytes(origin, archive.n_bytes)
            except XbarError as exc:
                raise DataError(str(exc)) from None
            break
    if raw is None:
        if source is not None:
            names = ", ".join(file.name for file in files)
            raise DataError(f"neither {archive.name} nor {names} found in {source}")
        raw = _download(origin)
    digest = _sha256(raw)
    if digest != archive.sha256:
        raise DataError(f"{origin}: SHA-256 mismatch (got {digest[:12]}..., expected {archive.sha256[:12]}...)")
    out = []
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
            for file in files:
                member = tar.extractfile(f"{archive.member_dir}/{file.name}")
                if member is None:
                    raise DataError(f"{origin}: {archive.member_dir}/{file.name} is not a file")
                content = member.read(file.n_bytes + 1)
                _verify(content, file, f"{origin}:{file.name}")
                out.append((content, f"{origin}:{file.name}"))
    except KeyError as exc:
        raise DataError(f"{origin}: no member {exc}") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{origin}: not a valid .tar.gz archive ({exc})") from None
    return out


def _obtain_all(spec: DatasetSpec, files: Sequence[DatasetFile], source: Path | None) -> list[tuple[bytes, str]]:
    """The verified decompressed bytes of each of ``files`` and a description of their origin.

    Each file is looked for (plain or ``.gz``) in the source folders; those not
    found come from the dataset's archive when it has one (in a source folder or
    downloaded), else each from its canonical ``.gz`` download.
    """
    found: dict[str, tuple[bytes, str]] = {}
    for file in files:
        for folder in _source_folders(spec, source):
            path = _find_file(folder, file.name)
            if path:
                raw = read_idx_bytes(path, file.n_bytes)
                _verify(raw, file, str(path))
                found[file.name] = (raw, str(path))
                break
    missing = [file for file in files if file.name not in found]
    if missing and spec.archive is not None:
        found.update({file.name: got for file, got in zip(missing, _from_archive(spec, missing, source))})
    for file in missing:
        if file.name in found:
            continue
        if source is not None:
            raise DataError(f"{file.name}[.gz] not found in {source}")
        url = spec.url + file.name + ".gz"
        try:
            raw = gzip.decompress(_download(url))
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{url}: the download is not a valid gzip file ({exc})") from None
        _verify(raw, file, url)
        found[file.name] = (raw, url)
    return [found[file.name] for file in files]


def _verify(raw: bytes, file: DatasetFile, where: str) -> None:
    digest = _sha256(raw)
    if digest != file.sha256:
        raise DataError(f"{where}: SHA-256 mismatch (got {digest[:12]}..., expected {file.sha256[:12]}...)")


def fetch(name: str, source: Path | None = None, splits: tuple[str, ...] = SPLITS) -> list[tuple[Path, str]]:
    """Obtain, verify and store the files of dataset ``name``.

    Every file is first obtained and verified in memory; only when all are good
    are they written (gzip-compressed, each through a temporary file and an
    atomic rename), so a mismatch leaves nothing behind.

    Returns
    -------
    list of (stored path, origin)
    """
    spec = dataset_spec(name)
    files = [file for split in splits for file in spec.files[split]]
    obtained = [(file, *got) for file, got in zip(files, _obtain_all(spec, files, source))]
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
