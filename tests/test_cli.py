"""`xbar run` on ideal hardware: reports, input noise, reproducibility, errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from xbar import data, io
from xbar.cli import main
from xbar.config import resolve
from xbar.evaluate import evaluate, input_noise, run_chips, with_sigma_syn
from xbar.nets import build

from .test_evaluate import RUN_KEYS


def _run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def tiny_weights(tmp_path):
    return io.save(build("mlp", hidden=12, seed=1), tmp_path / "tiny.h5")


def test_run_json_has_the_design_keys(tiny_weights):
    result = _run("run", str(tiny_weights), "--limit", "300", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report) == RUN_KEYS
    assert report["n_images"] == 300 and 0.0 <= report["accuracy"] <= 1.0


def test_run_json_is_the_library_run(tiny_weights):
    """`xbar run` parses, calls run_chips and prints its report: the same numbers, timings aside."""
    result = _run("run", str(tiny_weights), "--hardware", "paper", "--sigma-syn", "0.05", "--sigma-te", "0.1",
                  "--seeds", "2", "--seed", "4", "--limit", "100", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    images, labels = data.load("mnist", "test", limit=100)
    summary = run_chips(io.load(tiny_weights), with_sigma_syn(resolve("paper"), 0.05), images, labels, 4, 2,
                        sigma_te=0.1)
    expected = json.loads(json.dumps(summary.to_dict(weights=str(tiny_weights), dataset="mnist", sigma_syn=0.05,
                                                     syn_mode="static")))
    for timing in ("seconds", "program_seconds", "images_per_second"):
        report.pop(timing), expected.pop(timing)
    assert report == expected


@pytest.mark.parametrize("name", ["mlp-mnist", "cnn-mnist", "rnn-mnist-t7",
                                  "mlp-fashion-mnist", "cnn-fashion-mnist", "rnn-fashion-mnist-t7"])
def test_shipped_weights_reach_their_recorded_accuracy(name, shipped_weights):
    path = shipped_weights / f"{name}.h5"
    result = _run("run", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_images"] == 10000
    assert report["accuracy"] == pytest.approx(io.load(path).provenance["test_accuracy"], abs=1e-9)


def test_input_noise_statistics():
    sigma, n = 0.025, 200_000
    noise = input_noise((n,), sigma, seed=7).astype(np.float64)
    # mean ~ N(0, sigma^2/n); variance estimate has std sigma^2 sqrt(2/(n-1)): 5-sigma bounds.
    assert abs(noise.mean()) < 5 * sigma / np.sqrt(n)
    assert abs(noise.var(ddof=1) - sigma**2) < 5 * sigma**2 * np.sqrt(2 / (n - 1))


def test_input_noise_is_reproducible_by_seed_and_independent_of_batching():
    network = build("mlp", hidden=20, seed=0)
    images, labels = data.load("mnist", "test", limit=500)
    a = evaluate(network, images, labels, sigma_te=0.3, seed=11, batch_size=500)
    b = evaluate(network, images, labels, sigma_te=0.3, seed=11, batch_size=37)
    assert a.accuracy == b.accuracy
    assert not np.array_equal(input_noise((5, 5), 0.1, 1), input_noise((5, 5), 0.1, 2))


def test_sigma_te_hurts_a_trained_network(shipped_weights):
    path = str(shipped_weights / "mlp-mnist.h5")
    clean = json.loads(_run("run", path, "--limit", "1000", "--json").stdout)["accuracy"]
    noisy = json.loads(_run("run", path, "--limit", "1000", "--sigma-te", "0.5", "--json").stdout)["accuracy"]
    assert noisy < clean - 0.05


@pytest.mark.parametrize("args", [
    ["run", "--bogus"],
    ["run", "missing.h5"],
    ["run", "--limit", "0"],
    ["run", "--sigma-te", "-1"],
    ["run", "--dataset", "cifar"],
    ["info"],
    ["nosuchcommand"],
])
def test_bad_input_is_one_line_and_exit_2(args):
    result = _run(*args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("xbar: error:")


def test_default_run_uses_the_shipped_mlp():
    result = _run("run", "--limit", "200", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weights"].endswith("mlp-mnist.h5")


def test_run_with_hardware_reports_each_chip_and_a_confidence_interval(tiny_weights):
    result = _run("run", str(tiny_weights), "--hardware", "paper", "--sigma-syn", "0.05", "--seeds", "3",
                  "--limit", "200", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    accs = report["accuracies"]
    assert len(accs) == 3 and len(set(report["chip_seeds"])) == 3
    assert report["accuracy"] == pytest.approx(np.mean(accs))
    assert report["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    low, high = report["accuracy_ci95"]
    assert low <= report["accuracy"] <= high
    assert report["hardware"]["name"] == "paper" and report["hardware"]["device"]["prog_sigma"] == 0.05
    again = json.loads(_run("run", str(tiny_weights), "--hardware", "paper", "--sigma-syn", "0.05", "--seeds",
                            "3", "--limit", "200", "--json").stdout)
    assert again["accuracies"] == accs


def test_syn_mode_read_moves_sigma_syn_to_read_noise(tiny_weights):
    report = json.loads(_run("run", str(tiny_weights), "--hardware", "paper", "--sigma-syn", "0.05",
                             "--syn-mode", "read", "--limit", "50", "--json").stdout)
    device = report["hardware"]["device"]
    assert (device["read_sigma"], device["prog_sigma"]) == (0.05, 0.0)


def test_toml_hardware_file_and_overrides(tiny_weights, tmp_path):
    spec = tmp_path / "chip.toml"
    spec.write_text('preset = "reram"\n[adc]\nbits = 6\n')
    report = json.loads(_run("run", str(tiny_weights), "--hardware", str(spec), "--set", "tile.rows=128",
                             "--limit", "50", "--json").stdout)
    assert (report["hardware"]["name"], report["hardware"]["adc"]["bits"], report["hardware"]["tile"]["rows"]) == \
        ("chip", 6, 128)


def test_run_header_names_the_device_errors_that_act(tiny_weights):
    result = _run("run", str(tiny_weights), "--hardware", "sonos", "--limit", "50", "--quiet")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0]
    assert "sonos-program x1" in header and "sonos-read x1" in header and "ADC 8 b" in header
    assert "sigma_syn" not in header  # not asked for: the preset's own errors are named instead
    assert result.stderr == ""  # --quiet: no progress, no compile notice
