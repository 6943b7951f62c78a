"""Fuzzing the weights reader through the command line: no traceback, no hang, whatever the file holds.

Several hundred damaged weights files, generated from a fixed seed, go through ``xbar info FILE`` and
``xbar run FILE --limit 20`` in this process (click's CliRunner). Each invocation must either exit 0 with a
sane report (the damage was harmless) or exit 2 with exactly one line ``xbar: error: ...`` on stderr naming
the file, and finish within INVOCATION_LIMIT_S. The files are:

- byte-level damage of a tiny saved MLP and of the shipped ``mlp-mnist.h5``: random bytes, bit flips,
  zeroed blocks, copied blocks and truncation, mostly inside the HDF5 structure (its metadata rather
  than the weights' raw data, where a flip only changes a number);
- structure edits made with h5py: attributes deleted or changed in type, shape and value; datasets
  replaced by wrong shapes and dtypes, empty, scalar, huge declared-but-unwritten or external ones;
  soft, external and hard links; extra, missing and reordered layers.

Run with ``-s`` to see the counts; ``XBAR_FUZZ_SEED=N`` draws another set of files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from xbar import io
from xbar.cli import main
from xbar.nets import build

from .conftest import ROOT

SEED = int(os.environ.get("XBAR_FUZZ_SEED", "20260610"))  # another seed, another set of files
N_BYTES_TINY = 150  # byte-level mutants of the tiny MLP
N_BYTES_SHIPPED = 50  # byte-level mutants of the shipped MNIST MLP
N_RANDOM_ATTRIBUTES = 60  # random (attribute, bad value) pairs, besides the fixed structure edits below
INVOCATION_LIMIT_S = 20  # one `xbar info` or `xbar run`; a hang becomes a failure, not a stuck suite
READ_TIMEOUT_S = 2.0  # the reader's deadline here (30 s in use): files that make HDF5 loop cost 2 s, not 30


class _Hang(BaseException):
    """Raised by the interval timer in the main thread; a BaseException, so that CliRunner does not keep it."""


def _on_alarm(signum, frame):
    raise _Hang


# ------------------------------------------------------------------------------------------------------------
# Byte-level damage.


def _metadata_offsets(path: Path) -> np.ndarray:
    """Byte offsets of ``path`` that are not the raw data of a dataset: the HDF5 structure."""
    size = path.stat().st_size
    mask = np.ones(size, bool)
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None:
                start = obj.id.get_offset()
                mask[start : start + obj.id.get_storage_size()] = False

        f.visititems(visit)
    return np.flatnonzero(mask)


def _damage(raw: bytes, meta: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random byte-level mutation of ``raw``: (description, damaged bytes)."""
    data = bytearray(raw)

    def offset() -> int:
        # Three in four inside the structure: a flip in the weights' data only changes a number.
        return int(meta[rng.integers(len(meta))] if rng.random() < 0.75 else rng.integers(len(data)))

    kind = ("bytes", "bits", "zeros", "copy", "truncate")[int(rng.integers(5))]
    if kind == "bytes":
        for _ in range(int(rng.integers(1, 9))):
            data[offset()] = int(rng.integers(256))
    elif kind == "bits":
        for _ in range(int(rng.integers(1, 4))):
            data[offset()] ^= 1 << int(rng.integers(8))
    elif kind == "zeros":
        start, n = offset(), int(rng.integers(1, 65))
        data[start : start + n] = bytes(len(data[start : start + n]))
    elif kind == "copy":
        source, target, n = offset(), offset(), int(rng.integers(4, 33))
        chunk = raw[source : source + n]
        data[target : target + len(chunk)] = chunk
    else:
        del data[int(rng.integers(len(data))) :]
    return kind, bytes(data)


# ------------------------------------------------------------------------------------------------------------
# Structure edits: each takes the open file (r+) and the folder of helper files.

BAD_VALUES = {
    "inf": np.inf,
    "nan": np.nan,
    "negative": -1,
    "zero": 0,
    "fraction": 2.5,
    "huge-int": np.int64(2**62),
    "huge-uint": np.uint64(2**64 - 1),
    "empty-str": "",
    "str": "abc",
    "non-utf8-bytes": np.bytes_(b"\xff\xfe\x80"),
    "int-array": np.array([1, 2, 3]),
    "2d-array": np.zeros((2, 2)),
    "str-array": np.array(["mlp", "cnn"], dtype=h5py.string_dtype()),
    "bool": np.bool_(True),
    "compound": np.zeros((), dtype=[("a", "<i4"), ("b", "<f8")]),
    "null": h5py.Empty("f4"),
    "float16": np.float16(1.0),
    "complex": np.complex64(1 + 2j),
}
ROOT_KEYS = ("format", "format_version", "arch", "dataset", "input_shape", "n_classes", "provenance", "seed")
LAYER_KEYS = (("01_dense", "kind"), ("01_dense", "activation"), ("00_flatten", "kind"), ("02_dense", "activation"))


def _set_attr(obj_path: str, key: str, value):
    def edit(f, aux):
        f[obj_path].attrs[key] = value

    return edit


def _del_attr(obj_path: str, key: str):
    def edit(f, aux):
        del f[obj_path].attrs[key]

    return edit


def _replace(name: str, make):
    """Replace member ``name`` by what ``make(group, leaf, aux)`` creates."""

    def edit(f, aux):
        parent, leaf = name.rsplit("/", 1)
        del f[name]
        make(f[parent or "/"], leaf, aux)

    return edit


def _dataset(value):
    return lambda group, leaf, aux: group.create_dataset(leaf, data=value)


def _declared(shape, **kwargs):
    """A dataset declared with ``shape`` and nothing written: a small file claiming a huge one."""
    return lambda group, leaf, aux: group.create_dataset(leaf, shape=shape, dtype="f4", **kwargs)


def _link(value):
    def make(group, leaf, aux):
        group[leaf] = value(aux) if callable(value) else value

    return make


def _provenance(text: str):
    return _set_attr("/", "provenance", text)


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def _extra_layer(name: str, kind: str, **datasets):
    def edit(f, aux):
        group = f["layers"].create_group(name)
        group.attrs["kind"] = kind
        if datasets:
            group.attrs["activation"] = "linear"
        for key, value in datasets.items():
            group.create_dataset(key, data=value)

    return edit


def _many_layers(n: int):
    def edit(f, aux):
        for i in range(n):
            f["layers"].create_group(f"{10 + i:04d}_flatten").attrs["kind"] = "flatten"

    return edit


def _many_attributes(n: int):
    def edit(f, aux):
        for i in range(n):
            f.attrs[f"extra_{i:03d}"] = i

    return edit


def _add(name: str, value):
    def edit(f, aux):
        f[name] = value

    return edit


def _hard_link(name: str, target: str):
    """Member ``name`` (replaced if it exists) as a second hard link to the object at ``target``."""

    def edit(f, aux):
        if name in f:
            del f[name]
        f[name] = f[target]

    return edit


def _soft_layers(f, aux):
    f.move("layers", "real")
    f["layers"] = h5py.SoftLink("/real")


def _rename(old: str, new: str):
    def edit(f, aux):
        f.move(old, new)

    return edit


def _virtual(group, leaf, aux):
    layout = h5py.VirtualLayout(shape=(784, 8), dtype="f4")
    layout[:] = h5py.VirtualSource(str(aux / "other.h5"), "layers/01_dense/kernel", shape=(784, 8))
    group.create_virtual_dataset(leaf, layout)


def _big_attribute(f, aux):
    # Attributes over 64 KiB need the dense attribute storage of the newer file format.
    f.attrs.create("big", np.zeros(300_000))


def _structure_edits(rng: np.random.Generator) -> list[tuple[str, object, str]]:
    """(label, edit, base) for every structure edit: base is 'mlp' (00_flatten, 01_dense 784x8, 02_dense 8x10),
    'cnn', 'rnn' or 'latest' (the MLP rewritten in HDF5's newest format)."""
    k1, b1 = "layers/01_dense/kernel", "layers/01_dense/bias"
    edits: list[tuple[str, object, str]] = []
    add = edits.append
    for key in ROOT_KEYS:
        add((f"del-attr-{key}", _del_attr("/", key), "mlp"))
    pairs = [(key, bad) for key in ROOT_KEYS for bad in BAD_VALUES]
    for index in rng.choice(len(pairs), N_RANDOM_ATTRIBUTES, replace=False):
        key, bad = pairs[index]
        add((f"attr-{key}={bad}", _set_attr("/", key, BAD_VALUES[bad]), "mlp"))
    for (group, key), bad in zip(LAYER_KEYS * 3, rng.choice(list(BAD_VALUES), 12)):
        add((f"attr-{group}.{key}={bad}", _set_attr(f"layers/{group}", key, BAD_VALUES[bad]), "mlp"))
    add(("del-attr-kind", _del_attr("layers/01_dense", "kind"), "mlp"))
    add(("del-attr-activation", _del_attr("layers/01_dense", "activation"), "mlp"))
    for name, shape in {
        "inf": [np.inf],
        "nan": [np.nan, 28, 1],
        "negative": [-1, 28, 1],
        "fraction": [2.5],
        "zero": [0, 28, 1],
        "huge": [2**62, 2**62, 1],
        "huge-1d": [2**40],
        "4-axes": [28, 28, 1, 1],
        "2d": [[28, 28], [1, 1]],
        "string": "28,28,1",
        "empty": np.zeros(0, np.int64),
        "784": [784],  # flat input: still one MNIST image, a valid network
        "uint8": np.array([28, 28, 1], np.uint8),  # valid
        "1568": [1568],  # two images' worth: does not fit the dataset
        "14x56": [14, 56, 1],  # 784 pixels in another layout: runs (on scrambled images)
    }.items():
        value = shape if isinstance(shape, str) else np.asarray(shape)
        add((f"input_shape={name}", _set_attr("/", "input_shape", value), "mlp"))
    for name, text in {
        "nested-100000": _nested(100_000),
        "nested-33": _nested(33),
        "nested-30": _nested(30),  # within the limit: valid
        "list": "[1, 2, 3]",
        "list-100000": "[" * 100_000 + "]" * 100_000,
        "number": "3",
        "string": '"text"',
        "not-json": "{'a': 1}",
        "truncated": '{"a": [1, 2',
        "huge-int": '{"a": ' + "9" * 5000 + "}",
        "lone-surrogate": '{"a": "\\udcff"}',
        "nan": '{"a": NaN, "b": Infinity}',  # Python's JSON reads these: valid
        "1-MB-string": json.dumps({"a": "x" * 2**20}),  # large but valid
    }.items():
        add((f"provenance={name}", _provenance(text), "mlp"))
    add(("n_classes=7", _set_attr("/", "n_classes", 7), "mlp"))
    add(("dataset=fashion-mnist", _set_attr("/", "dataset", "fashion-mnist"), "mlp"))  # valid
    add(("dataset=unknown", _set_attr("/", "dataset", "cifar"), "mlp"))  # info: fine; run: unknown dataset
    add(("arch=newline", _set_attr("/", "arch", "ml\np"), "mlp"))
    add(("kind=lstm", _set_attr("layers/01_dense", "kind", "lstm"), "mlp"))
    add(("activation=relu", _set_attr("layers/01_dense", "activation", "relu"), "mlp"))
    # Datasets.
    for name, value in {
        "shape-17x10": np.zeros((17, 10), np.float32),
        "1d": np.zeros(784, np.float32),
        "3d": np.zeros((784, 8, 1), np.float32),
        "scalar": np.float32(1.0),
        "zero-width": np.zeros((784, 0), np.float32),
        "zero-rows": np.zeros((0, 8), np.float32),
        "float64": np.zeros((784, 8)),
        "int32": np.zeros((784, 8), np.int32),
        "float16": np.zeros((784, 8), np.float16),
        "complex": np.zeros((784, 8), np.complex64),
        "bool": np.zeros((784, 8), bool),
        "strings": np.array(["a"] * 8, dtype=h5py.string_dtype()),
        "compound": np.zeros(8, dtype=[("a", "<f4"), ("b", "<f4")]),
        "nan": np.full((784, 8), np.nan, np.float32),
        "inf": np.full((784, 8), np.inf, np.float32),
        "max-float": np.full((784, 8), np.finfo(np.float32).max, np.float32),  # finite: runs, overflows to inf
        "big-endian": np.zeros((784, 8), ">f4"),  # still float32: valid
    }.items():
        add((f"kernel={name}", _replace(k1, _dataset(value)), "mlp"))
    add(("kernel=null", _replace(k1, _dataset(h5py.Empty("f4"))), "mlp"))
    add(("kernel=gzip", _replace(k1, lambda g, leaf, aux: g.create_dataset(
        leaf, data=np.ones((784, 8), np.float32), chunks=(98, 8), compression="gzip")), "mlp"))  # valid
    add(("kernel=tiny-chunks", _replace(k1, lambda g, leaf, aux: g.create_dataset(
        leaf, data=np.ones((784, 8), np.float32), chunks=(1, 1))), "mlp"))  # 6,272 chunks: valid
    add(("kernel=1e6x1e6-chunked", _replace(k1, _declared((10**6, 10**6), chunks=(1000, 1000))), "mlp"))
    add(("kernel=1e6x1e6-gzip", _replace(k1, _declared((10**6, 10**6), chunks=(1000, 1000), compression="gzip")),
         "mlp"))
    add(("kernel=4096x4096-unwritten", _replace(k1, _declared((4096, 4096))), "mlp"))
    add(("kernel=784x8-unwritten", _replace(k1, _declared((784, 8))), "mlp"))
    add(("kernel=2^20-chunks", _replace(k1, _declared((2**12, 2**12), chunks=(4, 4), compression="gzip")), "mlp"))
    add(("kernel=2^31-float32", _replace(k1, _declared((2**31,), chunks=(2**20,))), "mlp"))
    add(("kernel=external-fifo", _replace(k1, lambda g, leaf, aux: g.create_dataset(
        leaf, shape=(784, 8), dtype="f4", external=[(str(aux / "fifo"), 0, 784 * 8 * 4)])), "mlp"))
    add(("kernel=virtual", _replace(k1, _virtual), "mlp"))
    add(("kernel=group", _replace(k1, lambda g, leaf, aux: g.create_group(leaf)), "mlp"))
    add(("bias=group", _replace(b1, lambda g, leaf, aux: g.create_group(leaf)), "mlp"))
    add(("bias=shape-3", _replace(b1, _dataset(np.zeros(3, np.float32))), "mlp"))
    add(("bias=scalar", _replace(b1, _dataset(np.float32(0))), "mlp"))
    add(("del-kernel", _replace(k1, lambda g, leaf, aux: None), "mlp"))
    add(("del-bias", _replace(b1, lambda g, leaf, aux: None), "mlp"))  # bias is optional: valid
    # Links.
    add(("kernel=soft-missing", _replace(k1, _link(h5py.SoftLink("/nowhere"))), "mlp"))
    add(("kernel=soft-existing", _replace(k1, _link(h5py.SoftLink("/layers/02_dense/kernel"))), "mlp"))
    add(("kernel=external-file", _replace(k1, _link(lambda aux: h5py.ExternalLink(
        str(aux / "other.h5"), "layers/01_dense/kernel"))), "mlp"))
    add(("kernel=external-fifo-link", _replace(k1, _link(lambda aux: h5py.ExternalLink(str(aux / "fifo"), "/x"))),
         "mlp"))
    add(("layers=external", _replace("/layers", _link(lambda aux: h5py.ExternalLink(str(aux / "other.h5"),
                                                                                     "/layers"))), "mlp"))
    add(("layers=soft", _soft_layers, "mlp"))
    add(("kernel=hard-link-other", _hard_link(k1, "layers/02_dense/kernel"), "mlp"))
    add(("layer=hard-link-twice", _hard_link("layers/03_dense", "layers/02_dense"), "mlp"))
    add(("layer-member=hard-cycle", _hard_link("layers/01_dense/loop", "layers"), "mlp"))  # ignored: valid
    # Layers.
    add(("layers=deleted", _replace("/layers", lambda g, leaf, aux: None), "mlp"))
    add(("layers=dataset", _replace("/layers", _dataset(np.zeros(3, np.float32))), "mlp"))
    add(("layers=empty", _replace("/layers", lambda g, leaf, aux: g.create_group(leaf)), "mlp"))
    add(("layer=deleted-middle", _replace("layers/01_dense", lambda g, leaf, aux: None), "mlp"))
    add(("layer=reordered", _rename("layers/00_flatten", "layers/05_flatten"), "mlp"))
    add(("layer=extra-dense", _extra_layer("03_dense", "dense", kernel=np.eye(10, dtype=np.float32)), "mlp"))  # valid
    add(("layer=extra-flatten", _extra_layer("99_flatten", "flatten"), "mlp"))  # valid
    add(("layer=extra-unknown", _extra_layer("03_lstm", "lstm"), "mlp"))
    add(("layer=dataset-member", _add("layers/03_x", np.array([1.0])), "mlp"))
    add(("layer=named-type", _add("layers/03_t", np.dtype("f4")), "mlp"))
    add(("layers=1000-members", _many_layers(1000), "mlp"))
    add(("attrs=100-on-root", _many_attributes(100), "mlp"))
    add(("attr=2.4-MB", _big_attribute, "latest"))
    # Kernels that disagree with the layer attributes.
    conv = "layers/00_conv2d"
    add(("conv-kernel=5x5", _replace(f"{conv}/kernel", _dataset(np.zeros((5, 5, 1, 3), np.float32))), "cnn"))
    add(("conv-kernel=2d", _replace(f"{conv}/kernel", _dataset(np.zeros((9, 3), np.float32))), "cnn"))
    add(("conv-padding=valid", _set_attr(conv, "padding", "valid"), "cnn"))
    add(("conv-strides=2", _set_attr(conv, "strides", 2), "cnn"))
    add(("conv-strides=huge", _set_attr(conv, "strides", np.int64(2**62)), "cnn"))
    add(("conv=10000-channels", _wide_conv, "cnn"))
    add(("cnn-input=huge-other-dataset", _huge_input, "cnn"))
    add(("pool=0", _set_attr("layers/02_maxpool2d", "pool_size", 0), "cnn"))
    add(("pool=3", _set_attr("layers/02_maxpool2d", "pool_size", 3), "cnn"))
    add(("pool=huge", _set_attr("layers/02_maxpool2d", "pool_size", np.int64(2**62)), "cnn"))
    add(("pool=negative", _set_attr("layers/02_maxpool2d", "pool_size", -2), "cnn"))
    add(("cnn-input=huge", _set_attr("/", "input_shape", np.array([30_000, 30_000, 1])), "cnn"))
    add(("cnn-input=28x28x2", _set_attr("/", "input_shape", np.array([28, 28, 2])), "cnn"))
    mosaic = "layers/01_mosaic"
    for name, value in {"0": 0, "-1": -1, "huge": np.int64(2**62), "14": 14}.items():
        add((f"timesteps={name}", _set_attr(mosaic, "timesteps", value), "rnn"))
    for name, value in {"-1": -1, "rows": 301, "huge": np.int64(2**40), "0": 0}.items():
        add((f"feedback={name}", _set_attr(mosaic, "feedback", value), "rnn"))
    return edits


def _wide_conv(f, aux):
    """A first convolution of 10,000 channels: the second one's patches are 9 x 28 x 28 x 10,000 float32
    (282 MB) per sample, over the network's limit, from kernels of 352 KiB and 1 MiB."""
    for name, value in (
        ("00_conv2d/kernel", np.zeros((3, 3, 1, 10_000), np.float32)),
        ("00_conv2d/bias", np.zeros(10_000, np.float32)),
        ("01_conv2d/kernel", np.zeros((3, 3, 10_000, 3), np.float32)),
    ):
        del f[f"layers/{name}"]
        f[f"layers/{name}"] = value


def _huge_input(f, aux):
    """A 30,000 x 30,000 input (its dataset unknown, so not checked against MNIST's 784 pixels): 32 GB of
    patches per sample in the first convolution, refused from the shapes alone."""
    f.attrs["dataset"] = "satellite"
    f.attrs["input_shape"] = np.array([30_000, 30_000, 1])


def _rewrite_latest(source: Path, target: Path) -> None:
    """``source`` copied into a file of HDF5's newest format (which allows attributes over 64 KiB)."""
    with h5py.File(source, "r") as src, h5py.File(target, "w", libver="latest") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        src.copy(src["layers"], dst)


# ------------------------------------------------------------------------------------------------------------
# Running and judging.


def _invoke(runner: CliRunner, args: list[str]):
    """``xbar ARGS`` in this process and the warnings it raised, or None if it ran past INVOCATION_LIMIT_S.

    Warnings are collected rather than left to pytest, which would keep them off stderr: on the command
    line each would be lines of stderr beside the report or the one error line.
    """
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, INVOCATION_LIMIT_S)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for hidden in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", hidden)  # hidden by Python's default filters too
            result = runner.invoke(main, args)
        return result, [f"{w.category.__name__}: {w.message}" for w in caught]
    except _Hang:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _problem(result, raised: list[str], path: Path, command: str, info_error: str | None) -> str | None:
    """What is wrong with one invocation's outcome, or None."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback: " + "".join(traceback.format_exception(result.exception))[-1500:]
    if raised:
        return f"exit {result.exit_code} with warnings {raised[:3]}"
    if result.exit_code == 0:
        lines = result.stdout.splitlines()
        if result.stderr:
            return f"exit 0 with stderr {result.stderr[:300]!r}"
        if command == "info" and not (lines and lines[0].startswith(f"{path}: ") and "parameters" in lines[0]):
            return f"exit 0 with odd output {result.stdout[:300]!r}"
        if command == "run" and not any(re.match(r"accuracy \d\.\d{4}", line) for line in lines):
            return f"exit 0 with odd output {result.stdout[:300]!r}"
        return None
    if result.exit_code != 2:
        return f"exit {result.exit_code}: {result.stderr[:300]!r}"
    lines = result.stderr.splitlines()
    if len(lines) != 1 or not lines[0].startswith("xbar: error: "):
        return f"exit 2 but stderr is not one error line: {result.stderr[:500]!r}"
    if command == "info" and str(path) not in lines[0]:
        return f"error does not name the file: {lines[0]!r}"
    # Anything `info` refused, `run` must refuse the same way (both fail in io.load); what `info` accepts,
    # `run` may still refuse for reasons of its own (an unknown dataset), in one line.
    if command == "run" and info_error is not None and lines[0] != info_error:
        return f"run and info disagree: {lines[0]!r} vs {info_error!r}"
    return None


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fuzz-bases")
    paths = {
        "mlp": io.save(build("mlp", hidden=8, seed=1), folder / "mlp.h5"),
        "cnn": io.save(build("cnn", seed=1), folder / "cnn.h5"),
        "rnn": io.save(build("rnn", seed=1), folder / "rnn.h5"),
        "shipped": ROOT / "data" / "weights" / "mlp-mnist.h5",
    }
    _rewrite_latest(paths["mlp"], folder / "latest.h5")
    paths["latest"] = folder / "latest.h5"
    shutil.copy(paths["mlp"], folder / "other.h5")
    os.mkfifo(folder / "fifo")  # targets of external links and external storage: never to be opened
    return paths


def test_damaged_weights_files_never_escape_as_traceback_or_hang(bases, tmp_path, monkeypatch):
    monkeypatch.setattr(io, "READ_TIMEOUT_S", READ_TIMEOUT_S)
    rng = np.random.default_rng(SEED)
    aux = bases["mlp"].parent
    cases: list[tuple[str, Path]] = []
    for base, count in (("mlp", N_BYTES_TINY), ("shipped", N_BYTES_SHIPPED)):
        raw, meta = bases[base].read_bytes(), _metadata_offsets(bases[base])
        for index in range(count):
            kind, data = _damage(raw, meta, rng)
            path = tmp_path / f"{base}-{index:03d}-{kind}.h5"
            path.write_bytes(data)
            cases.append((f"{base} {kind}", path))
    for index, (label, edit, base) in enumerate(_structure_edits(rng)):
        path = tmp_path / f"edit-{index:03d}.h5"
        shutil.copy(bases[base], path)
        with h5py.File(path, "r+") as f:
            edit(f, aux)
        cases.append((label, path))

    runner = CliRunner()
    counts: Counter = Counter()
    failures = []
    started = time.perf_counter()
    for label, path in cases:
        counts["files"] += 1
        info_error = None
        failed = len(failures)
        for command, args in (("info", ["info", str(path)]), ("run", ["run", str(path), "--limit", "20"])):
            outcome = _invoke(runner, args)
            if outcome is None:
                counts["hangs"] += 1
                failures.append(f"{label} ({path.name}): xbar {command} ran past {INVOCATION_LIMIT_S} s")
                continue
            result, raised = outcome
            problem = _problem(result, raised, path, command, info_error)
            if problem is not None:
                counts["tracebacks" if problem.startswith("traceback") else "bad output"] += 1
                failures.append(f"{label} ({path.name}): xbar {command}: {problem}")
                continue
            counts[f"exit {result.exit_code}"] += 1
            if result.exit_code == 2:
                message = result.stderr.strip()
                info_error = message if command == "info" else info_error
                counts["reader timeouts"] += "did not finish reading" in message
                counts["reader crashes"] += "crashed reading" in message
        if len(failures) == failed:
            path.unlink()  # kept when it failed, to be looked at
    seconds = time.perf_counter() - started
    print(
        f"\nfuzzed {counts['files']} weights files x (info, run): exit 0 {counts['exit 0']}, "
        f"exit 2 {counts['exit 2']} (of which reader timeouts {counts['reader timeouts']}, reader crashes "
        f"{counts['reader crashes']}), tracebacks {counts['tracebacks']}, hangs {counts['hangs']}, "
        f"bad output {counts['bad output']}; {seconds:.1f} s"
    )
    assert counts["files"] >= 300
    assert not failures, f"{len(failures)} failure(s) in {counts['files']} files:\n" + "\n".join(failures[:15])
