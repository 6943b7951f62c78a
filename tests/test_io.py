"""The weights format: round trip, and a one-line exit-2 refusal for every malformed file."""

import os
import re
import shutil
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from xbar import io
from xbar.cli import main
from xbar.errors import WeightsFormatError, XbarError
from xbar.nets import Conv2D, Dense, Flatten, Network, build
from xbar.nets.network import MAX_SAMPLE_BYTES


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


def _set_attr(name, key, value):
    return lambda p: _edit(p, lambda f: f[name].attrs.__setitem__(key, value))


def _new_dataset(name, **kwargs):
    return lambda p: _edit(p, lambda f: (f.__delitem__(name), f.create_dataset(name, **kwargs)))


def _new_link(name, make_link):
    return lambda p: _edit(p, lambda f: (f.__delitem__(name), f.__setitem__(name, make_link(p))))


def _many_layers(f):
    for i in range(300):
        f["layers"].create_group(f"{10 + i:03d}_flatten").attrs["kind"] = "flatten"


def _zero_width(f):
    for name, value in (("kernel", np.zeros((784, 0), np.float32)), ("bias", np.zeros(0, np.float32))):
        del f[f"layers/01_dense/{name}"]
        f[f"layers/01_dense/{name}"] = value


def _fifo(p):
    fifo = p.parent / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    return str(fifo)


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
        "input shape (16,) does not match kernel (17, 10)"),
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
    # Values that used to escape as RecursionError, AttributeError, OverflowError, ValueError or MemoryError.
    "provenance-nested-100000": (_set_attr("/", "provenance", '{"a": ' * 100_000 + "1" + "}" * 100_000),
                                 "'provenance' is nested too deeply"),
    "provenance-list": (_set_attr("/", "provenance", "[1, 2]"), "'provenance' must be a JSON object, got list"),
    "input-shape-inf": (_set_attr("/", "input_shape", np.array([np.inf])), "'input_shape' must be 1 to 3 positive"),
    "input-shape-nan": (_set_attr("/", "input_shape", np.array([np.nan, 28, 1])), "'input_shape' must be 1 to 3"),
    "input-shape-negative": (_set_attr("/", "input_shape", np.array([-28, 28, 1])), "must be positive integers"),
    "input-shape-fraction": (_set_attr("/", "input_shape", np.array([2.5])), "'input_shape' must be 1 to 3"),
    "input-shape-huge": (_set_attr("/", "input_shape", np.array([2**62, 2**62, 1])), "does not hold one mnist image"),
    "input-shape-string": (_set_attr("/", "input_shape", "28,28,1"), "'input_shape' must be 1 to 3"),
    "input-shape-2d": (_set_attr("/", "input_shape", np.ones((2, 2), np.int64)), "'input_shape' must be 1 to 3"),
    "input-shape-vs-dataset": (_set_attr("/", "input_shape", np.array([1568])),
                               "'input_shape' (1568,) does not hold one mnist image ((28, 28): 784 numbers)"),
    "zero-width-layer": (lambda p: _edit(p, _zero_width), "layers/01_dense/kernel: is empty (shape (784, 0))"),
    "huge-declared-kernel": (_new_dataset("layers/01_dense/kernel", shape=(10**6, 10**6), dtype="f4",
                                          chunks=(1000, 1000)),
                             "3.6 TiB of float32, more than the 2.0 GiB allowed per dataset"),
    "unwritten-kernel": (_new_dataset("layers/01_dense/kernel", shape=(784, 16), dtype="f4"),
                         "declares 49.0 KiB of data but the file stores 0 B"),
    "too-many-chunks": (_new_dataset("layers/01_dense/kernel", shape=(4096, 4096), dtype="f4", chunks=(4, 4),
                                     compression="gzip"), "1,048,576 chunks, more than the 65,536 allowed"),
    "external-storage": (lambda p: _new_dataset("layers/01_dense/kernel", shape=(784, 16), dtype="f4",
                                                external=[(_fifo(p), 0, 784 * 16 * 4)])(p),
                         "keeps its data in other files"),
    "soft-link-missing": (_new_link("layers/01_dense/kernel", lambda p: h5py.SoftLink("/nowhere")),
                          "kernel is a soft link"),
    "external-link": (_new_link("layers/01_dense/kernel", lambda p: h5py.ExternalLink(_fifo(p), "/kernel")),
                      "kernel is an external link to another file; refused"),
    "too-many-layers": (lambda p: _edit(p, _many_layers), "group 'layers' has 303 members, more than the 256"),
    "attr-array-for-scalar": (_set_attr("/", "n_classes", np.array([10, 10])),
                              "attribute 'n_classes' must be int, got int64 array [10, 10]"),
    "attr-not-utf8": (_set_attr("/", "arch", np.bytes_(b"ml\xff")), "attribute 'arch' is not UTF-8 text"),
    "attr-compound": (_set_attr("/", "format_version", np.zeros((), [("a", "<i4")])), "'format_version' must be int"),
    "attr-vlen-array": (_set_attr("/", "arch", np.array(["a", "b"], h5py.string_dtype())), "'arch' must be str"),
    "kernel-scalar": (_new_dataset("layers/01_dense/kernel", data=np.float32(1)), "kernel must have 2 non-empty axes"),
    "kernel-int": (_new_dataset("layers/01_dense/kernel", data=np.zeros((784, 16), np.int32)), "int32 is not float32"),
    "kernel-no-dataspace": (_new_dataset("layers/01_dense/kernel", data=h5py.Empty("f4")), "holds no data"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_load_refuses_malformed_file(case, good_file):
    damage, message = MALFORMED[case]
    path = damage(good_file)
    with pytest.raises(WeightsFormatError, match=re.escape(message)) as caught:
        io.load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


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
        # The MLP of the paper's text is named for its 128 hidden units (mlp128-...), every other by its arch.
        width = "128" if network.arch == "mlp" and network.layers[1].kernel.shape[1] == 128 else ""
        assert path.stem.startswith(f"{network.arch}{width}-{network.dataset}")
        assert 0.5 < network.provenance["test_accuracy"] <= 1.0  # chance is 0.1; the t = 56 RNN is at 0.78


def test_copy_of_good_file_loads(good_file, tmp_path):
    copy = tmp_path / "copy.h5"
    shutil.copy(good_file, copy)
    assert io.load(copy).n_params == io.load(good_file).n_params


class _TooSlow(BaseException):
    """Raised by the alarm: what should be refused at once blocked instead."""


@pytest.fixture
def time_bound():
    """Fail (rather than hang the suite) if the test body takes more than 20 s."""

    def on_alarm(signum, frame):
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["fifo", "folder", "device", "missing"])
def test_only_regular_files_are_read(kind, tmp_path, time_bound):
    path = {"fifo": tmp_path / "fifo", "folder": tmp_path, "device": Path(os.devnull), "missing": tmp_path / "x.h5"}
    path = path[kind]
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block until a writer came
    with pytest.raises(WeightsFormatError, match=re.escape(str(path))):
        io.load(path)
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 2 and result.stderr.startswith("xbar: error:")
    assert len(result.stderr.strip().splitlines()) == 1


def _children() -> set[int]:
    """Process ids whose parent is this process (Linux /proc)."""
    me, found = str(os.getpid()), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.skipif(not io.ISOLATE_READER or not Path("/proc/self/stat").exists(), reason="forked reader, Linux")
def test_a_file_that_makes_hdf5_loop_forever_is_refused_in_time(good_file, monkeypatch, time_bound):
    """A global heap object of index 0 and size 0: HDF5's heap parser never advances (found by fuzzing)."""
    raw = bytearray(good_file.read_bytes())
    heap = raw.index(b"GCOL")  # the strings' global heap: 16-byte header, then objects of 16-byte headers
    raw[heap + 16 : heap + 32] = bytes(16)
    good_file.write_bytes(raw)
    monkeypatch.setattr(io, "READ_TIMEOUT_S", 1.0)
    before, started = _children(), time.monotonic()
    with pytest.raises(WeightsFormatError, match=re.escape(str(good_file))):
        io.load(good_file)
    assert time.monotonic() - started < 1.0 + good_file.stat().st_size / io.READ_BYTES_PER_S + 2
    assert _children() <= before  # the stuck reader was killed and reaped


@pytest.mark.skipif(not io.ISOLATE_READER, reason="needs the forked reader")
def test_reader_crash_hang_and_bug_are_told_apart(good_file, monkeypatch, time_bound):
    monkeypatch.setattr(io, "READ_TIMEOUT_S", 0.5)
    monkeypatch.setattr(io, "_read_file", lambda path: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(WeightsFormatError, match=r"the HDF5 library crashed reading it \(SIGSEGV\)"):
        io.load(good_file)
    monkeypatch.setattr(io, "_read_file", lambda path: time.sleep(60))
    with pytest.raises(WeightsFormatError, match="did not finish reading it in 1 s"):
        io.load(good_file)

    def bug(path):
        raise KeyError("a bug in xbar")

    monkeypatch.setattr(io, "_read_file", bug)
    # A bug is not a damaged file: it keeps its traceback (the reader's, in the message).
    with pytest.raises(RuntimeError, match="KeyError: 'a bug in xbar'"):
        io.load(good_file)


@pytest.mark.parametrize("case", ["no-format-attr", "huge-declared-kernel", "external-link", "provenance-list"])
def test_in_process_reader_gives_the_same_answers(case, good_file, monkeypatch):
    isolated = io.load(good_file)
    monkeypatch.setattr(io, "ISOLATE_READER", False)
    in_process = io.load(good_file)
    assert isolated.summary() == in_process.summary() and isolated.provenance == in_process.provenance
    damage, message = MALFORMED[case]
    path = damage(good_file)
    with pytest.raises(WeightsFormatError, match=re.escape(message)):
        io.load(path)


@pytest.mark.parametrize("shape", [(np.inf,), (2.5,), ("28",), (True, 28, 1), (0, 28, 1), (), 784])
def test_network_refuses_bad_input_shapes(shape):
    with pytest.raises(XbarError, match="input shape must be"):
        Network("mlp", "mnist", shape, 10, [Flatten(), Dense(kernel=np.zeros((784, 10), np.float32))])


def test_network_refuses_activations_over_the_limit_before_allocating():
    side = 6000  # 9 x 6000^2 float32 patches: 1.2 GiB for one sample
    conv = Conv2D(kernel=np.zeros((3, 3, 1, 1), np.float32), bias=None)
    with pytest.raises(XbarError, match=r"layer 0: conv2d needs 1\.2 GiB of float32 per sample"):
        Network("cnn", "big", (side, side, 1), 10, [conv])
    assert 9 * 4 * 28 * 28 * 3 < MAX_SAMPLE_BYTES  # the paper's CNN is far below


def test_network_refuses_samples_that_do_not_fit_its_input():
    network = build("mlp", hidden=8)
    with pytest.raises(XbarError, match=r"takes samples of shape \(28, 28, 1\), got samples of shape \(30, 30\)"):
        network.forward(np.zeros((2, 30, 30), np.float32))


# ------------------------------------------------------------------ format version 2: graphs, integer arrays
def _cnn_file(tmp_path):
    return io.save(build("cnn", seed=2), tmp_path / "cnn.h5")


GRAPH_MALFORMED = {
    "inputs-missing": (lambda f: f["layers/01_dense"].attrs.__delitem__("inputs"), "missing attribute 'inputs'"),
    "inputs-float": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.array([0.5])),
                     "'inputs' must be a 1-D array of 1 to 16 integers, got float64 array [0.5]"),
    "inputs-bool": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.array([True])),
                    "'inputs' must be a 1-D array"),
    "inputs-2d": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.zeros((1, 1), np.int64)),
                  "'inputs' must be a 1-D array"),
    "inputs-scalar": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.int64(0)),
                      "'inputs' must be a 1-D array"),
    "inputs-string": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", "0"), "'inputs' must be a 1-D"),
    "inputs-too-many": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.zeros(17, np.int64)),
                        "1 to 16 integers"),
    "inputs-huge": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.array([2**62])),
                    "'inputs' holds an integer out of range"),
    "inputs-forward": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.array([2])),
                       "layer 1: inputs (2,) must be indices of earlier layers"),
    "inputs-self": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.array([1])),
                    "must be indices of earlier layers"),
    "inputs-below-input": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.array([-2])),
                           "must be indices of earlier layers"),
    "inputs-two-for-dense": (lambda f: f["layers/01_dense"].attrs.__setitem__("inputs", np.array([0, 0])),
                             "dense takes 1 input(s), got 2"),
    "inputs-dangling": (lambda f: f["layers/02_dense"].attrs.__setitem__("inputs", np.array([-1])),
                        "layer 1: its output is never read"),
    "version-3": (lambda f: f.attrs.__setitem__("format_version", 3), "format_version 3 is not supported"),
}


@pytest.mark.parametrize("case", sorted(GRAPH_MALFORMED))
def test_load_refuses_malformed_graph(case, good_file):
    edit, message = GRAPH_MALFORMED[case]
    path = _edit(good_file, edit)
    with pytest.raises(WeightsFormatError, match=re.escape(message)) as caught:
        io.load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


CONV_MALFORMED = {
    "strides-float": ("strides", np.array([1.5, 1.5]), "'strides' must be a 1-D array"),
    "strides-three": ("strides", np.array([1, 1, 1]), "strides must be 2 integers"),
    "strides-zero": ("strides", np.array([0, 1]), "strides must be integers >= 1"),
    "strides-scalar": ("strides", 1, "'strides' must be a 1-D array"),
    "pads-negative": ("pads", np.array([0, 0, -1, 0]), "pads must be integers >= 0"),
    "pads-without-explicit": ("pads", np.array([1, 1, 1, 1]), "given with padding 'same'"),
    "groups-not-dividing": ("groups", 2, "2 groups do not divide 3 output channels"),
    "groups-array": ("groups", np.array([1]), "'groups' must be int"),
    "dilations-huge": ("dilations", np.array([2**40, 1]), "out of range"),
}


@pytest.mark.parametrize("case", sorted(CONV_MALFORMED))
def test_load_refuses_bad_integer_array_attributes(case, tmp_path):
    key, value, message = CONV_MALFORMED[case]
    path = _edit(_cnn_file(tmp_path), lambda f: f["layers/00_conv2d"].attrs.__setitem__(key, value))
    with pytest.raises(WeightsFormatError, match=re.escape(message)) as caught:
        io.load(path)
    assert "\n" not in str(caught.value)


def _as_version_1(f):
    """Rewrite a saved chain as version 1 wrote it: no inputs, scalar strides and pool_size, no newer attributes."""
    f.attrs["format_version"] = 1
    for group in f["layers"].values():
        del group.attrs["inputs"]
        if group.attrs["kind"] == "conv2d":
            for key in ("pads", "dilations", "groups"):
                del group.attrs[key]
            group.attrs["strides"] = 1
        if group.attrs["kind"] == "maxpool2d":
            for key in ("strides", "padding", "pads"):
                del group.attrs[key]
            group.attrs["pool_size"] = 2


def test_version_1_files_load_as_chains(tmp_path, rng, shipped_weights):
    network = build("cnn", seed=2)
    path = _edit(_cnn_file(tmp_path), _as_version_1)
    loaded = io.load(path)
    assert loaded.is_chain and [a.attrs() for a in loaded.layers] == [a.attrs() for a in network.layers]
    x = rng.random((3, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(loaded.forward(x), network.forward(x))
    with h5py.File(shipped_weights / "cnn-mnist.h5", "r") as f:
        assert f.attrs["format_version"] == 1  # the shipped files stay version 1 (tests/test_golden.py)
    # Version 1 knows its five kinds, with their version 1 attribute types.
    for edit, message in [
        (lambda f: f["layers/00_conv2d"].attrs.__setitem__("strides", np.array([1, 1])), "'strides' must be int"),
        (lambda f: f["layers/05_flatten"].attrs.__setitem__("kind", "identity"), "unknown layer kind 'identity'"),
    ]:
        path = _edit(_edit(_cnn_file(tmp_path), _as_version_1), edit)
        with pytest.raises(WeightsFormatError, match=re.escape(message)):
            io.load(path)


def test_layers_past_99_keep_their_order(tmp_path, rng):
    """Names sort by their index ("100_dense" after "99_dense"), not as text."""
    layers = [Flatten()] + [Dense(kernel=np.eye(4, dtype=np.float32) * (1 + i / 64), activation="linear")
                            for i in range(104)]
    network = Network("deep", "none", (4,), 4, layers)
    loaded = io.load(io.save(network, tmp_path / "deep.h5"))
    assert [layer.kernel[0, 0] for layer in loaded.weight_layers] == [layer.kernel[0, 0] for layer in layers[1:]]
