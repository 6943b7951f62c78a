"""One chip instance (`evaluate`, `run_chip`) and the seed loop over instances (`run_chips`, `RunSummary`)."""

import math

import numpy as np
import pytest

from xbar import data
from xbar.config import resolve
from xbar.energy import PARTS
from xbar.evaluate import (
    ChipResult,
    RunSummary,
    chip_seed,
    evaluate,
    ideal_forward,
    run_chip,
    run_chips,
    with_sigma_syn,
)
from xbar.io import load
from xbar.nets import build

#: The keys of `xbar run --json`, in order, as the CLI printed them before the seed loop moved to the library.
RUN_KEYS = ["weights", "dataset", "n_images", "accuracy", "accuracy_std", "accuracy_ci95", "accuracies", "seed",
            "chip_seeds", "energy_per_inference_j", "energy_breakdown", "sigma_te", "sigma_syn", "syn_mode",
            "seconds", "program_seconds", "images_per_second", "hardware"]


def _t975_exact(df):
    """Student t quantile 0.975 in closed form: df = 1 is Cauchy, df = 2 is (2p - 1) / sqrt(2 p (1 - p))."""
    p = 0.975
    return {1: math.tan(math.pi * (p - 0.5)), 2: (2 * p - 1) / math.sqrt(2 * p * (1 - p))}[df]


def _energy(total, scale=1.0):
    return {"total_j": total, "parts_j": {part: scale * (i + 1) * 1e-12 for i, part in enumerate(PARTS)}}


@pytest.mark.parametrize("accuracies", [[0.91, 0.935, 0.9], [0.5, 0.75]])
def test_summary_statistics_against_numpy_and_the_t_quantile(accuracies):
    n = len(accuracies)
    chips = tuple(ChipResult(accuracy=a, n_images=200, seconds=0.25 * (i + 1), seed=100 + i, program_seconds=0.1,
                             energy=_energy(1e-9 * (i + 1), scale=i + 1)) for i, a in enumerate(accuracies))
    summary = RunSummary(hardware=None, sigma_te=0.0, seed=3, chips=chips, seconds=9.0)
    mean, std = np.mean(accuracies), np.std(accuracies, ddof=1)
    # The interval is the t interval on the logit scale (delta method), mapped back: logit(m) +- t se / (m (1 - m)).
    # The stats table holds t to 3 decimals: 4.303 against 4.30265 (df = 2), 12.706 against 12.7062 (df = 1).
    half = _t975_exact(n - 1) * std / math.sqrt(n) / (mean * (1 - mean))
    centre = math.log(mean / (1 - mean))
    assert summary.accuracy == pytest.approx(mean, rel=1e-12)
    assert summary.accuracy_std == pytest.approx(std, rel=1e-12)
    low, high = summary.accuracy_ci95
    assert 0 < low < mean < high < 1
    assert math.log(low / (1 - low)) == pytest.approx(centre - half, rel=2e-4)
    assert math.log(high / (1 - high)) == pytest.approx(centre + half, rel=2e-4)
    assert summary.accuracies == accuracies and summary.chip_seeds == [100 + i for i in range(n)]
    assert summary.n_images == 200
    assert summary.images_per_second == pytest.approx(200 * n / sum(0.25 * (i + 1) for i in range(n)))
    assert summary.program_seconds == pytest.approx(0.1 * n)
    assert summary.energy_per_inference_j == pytest.approx(np.mean([1e-9 * (i + 1) for i in range(n)]))
    assert list(summary.energy_breakdown) == list(PARTS)
    for k, part in enumerate(PARTS):
        assert summary.energy_breakdown[part] == pytest.approx(np.mean([(i + 1) * (k + 1) * 1e-12 for i in range(n)]))


def test_one_chip_has_no_spread_and_float32_no_energy():
    summary = RunSummary(hardware=None, sigma_te=0.0, seed=0, chips=(ChipResult(0.8125, 16, 0.0, seed=5),),
                         seconds=0.0)
    # One chip says nothing of the spread: no std and no interval, rather than a claimed [x, x].
    assert (summary.accuracy, summary.accuracy_std, summary.accuracy_ci95) == (0.8125, None, None)
    assert summary.energy_per_inference_j is None and summary.energy_breakdown is None
    assert summary.images_per_second is None  # nothing measured, as `xbar run --json` printed it
    report = summary.to_dict(weights="w.h5", dataset="mnist", sigma_syn=None, syn_mode="static")
    assert list(report) == RUN_KEYS
    assert report["hardware"] is None and report["chip_seeds"] == [5] and report["weights"] == "w.h5"


def test_run_chips_is_run_chip_for_each_derived_seed():
    network = build("mlp", hidden=12, seed=1)
    images, labels = data.load("mnist", "test", limit=100)
    hw = with_sigma_syn(resolve("paper"), 0.05)
    done = []
    summary = run_chips(network, hw, images, labels, 7, 3, sigma_te=0.02, progress=done.append)
    assert sum(done) == 3 * len(images)
    assert summary.chip_seeds == [chip_seed(7, k) for k in range(3)] and len(set(summary.chip_seeds)) == 3
    for chip, seed in zip(summary.chips, summary.chip_seeds):
        alone = run_chip(network, hw, images, labels, seed, sigma_te=0.02)
        assert (chip.accuracy, chip.n_images, chip.seed) == (alone.accuracy, 100, seed)
        assert chip.energy["total_j"] == pytest.approx(alone.energy["total_j"], rel=1e-12)
    report = summary.to_dict(weights="tiny.h5", dataset="mnist", sigma_syn=0.05, syn_mode="static")
    assert list(report) == RUN_KEYS
    assert report["hardware"]["device"]["prog_sigma"] == 0.05 and report["sigma_te"] == 0.02
    assert report["energy_per_inference_j"] == pytest.approx(np.mean([c.energy["total_j"] for c in summary.chips]))
    with pytest.raises(ValueError, match="n_chips"):
        run_chips(network, hw, images, labels, 7, 0)


def test_evaluate_is_a_chip_result_without_programming_or_energy():
    network = build("mlp", hidden=12, seed=1)
    images, labels = data.load("mnist", "test", limit=50)
    result = evaluate(network, images, labels, seed=4)
    assert (result.n_images, result.seed, result.program_seconds, result.energy) == (50, 4, 0.0, None)
    assert result.images_per_second == pytest.approx(50 / result.seconds)
    ideal = run_chip(network, None, images, labels, 4)
    assert (ideal.accuracy, ideal.energy, ideal.program_seconds) == (result.accuracy, None, 0.0)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_ideal_logits_do_not_depend_on_threads(arch, shipped_weights, monkeypatch):
    """The threaded ideal forward pass gives the same bits on 1, 2 and 3 threads, and the float32 network's
    logits to float32 rounding (its products run on one BLAS thread, in blocks of other sizes)."""
    network = load(shipped_weights / f"{arch}-mnist.h5")
    images = np.random.default_rng(3).random((77, *network.input_shape), dtype=np.float32)
    forward = ideal_forward(network, block_size=10)
    outputs = []
    for threads in (1, 2, 3):
        monkeypatch.setattr("numba.get_num_threads", lambda threads=threads: threads)
        outputs.append(forward(images, 0))
    for other in outputs[1:]:
        assert np.array_equal(other, outputs[0])
    reference = network.forward(images)
    # float32 products of up to 784 * 9 terms, rounded in another order: well inside 1e-5 of the largest logit.
    assert np.abs(outputs[0] - reference).max() <= 1e-5 * np.abs(reference).max()
    assert np.array_equal(outputs[0].argmax(axis=1), reference.argmax(axis=1))


def test_with_sigma_syn_sets_additive_noise_where_asked():
    hw = resolve("paper")
    assert with_sigma_syn(hw, None) is hw
    static, read = with_sigma_syn(hw, 0.03), with_sigma_syn(hw, 0.03, "read")
    assert (static.device.prog_sigma, static.device.read_sigma) == (0.03, hw.device.read_sigma)
    assert (read.device.read_sigma, read.device.prog_sigma) == (0.03, hw.device.prog_sigma)
    assert static.to_dict()["device"]["prog_model"] == read.to_dict()["device"]["read_model"] == "additive"


def test_interval_of_a_few_spread_chips_stays_inside_0_and_1():
    # Three chips at 34%, 100% and 100%: the plain t interval of the mean is about [-0.2, 1.76]; accuracy is a
    # fraction, so the interval (on the logit scale) must stay inside [0, 1] and contain the mean.
    chips = tuple(ChipResult(accuracy=a, n_images=100, seconds=1.0, seed=i) for i, a in enumerate((0.34, 1.0, 1.0)))
    low, high = RunSummary(hardware=None, sigma_te=0.0, seed=0, chips=chips, seconds=1.0).accuracy_ci95
    assert 0 < low < np.mean([0.34, 1.0, 1.0]) < high < 1
