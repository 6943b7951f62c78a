"""The crossbar against independent references: exact chains, noise statistics, RNG invariance."""

from dataclasses import replace

import numba
import numpy as np
import pytest

from xbar.config import (
    ADC,
    DAC,
    ADCRange,
    BiasMode,
    Device,
    Hardware,
    Mapping,
    MappingScheme,
    ReadNoiseMode,
    Subtract,
    Tile,
    resolve,
)
from xbar.crossbar import AnalogMatrix, InputRange, ReadContext, program
from xbar.nets import build

from .conftest import TOL
from .reference import ref_crossbar, ref_targets


def _matrix(kernel, bias, hw, x_max=1.0, signed=False, seed=0):
    return AnalogMatrix(kernel, bias, hw, InputRange(x_max, signed), seed, 0)


# ------------------------------------------------------------------ ideal hardware equals float
@pytest.mark.parametrize("tile", [(1024, 1024), (64, 32), (7, 5)])
@pytest.mark.parametrize("arch", ["mlp", "cnn", "rnn"])
def test_ideal_preset_equals_float_forward_for_any_tile(arch, tile, rng):
    network = build(arch, seed=2)
    hw = replace(resolve("ideal"), tile=Tile(*tile))
    x = rng.random((6, 28, 28), dtype=np.float32)
    chip = program(network, hw, seed=1, calibration=x)
    np.testing.assert_allclose(chip.forward(x), network.forward(x), **TOL[np.float32])


@pytest.mark.parametrize("scheme", list(MappingScheme))
@pytest.mark.parametrize("bias", list(BiasMode))
def test_ideal_mapping_schemes_equal_float(scheme, bias, rng):
    kernel = rng.standard_normal((40, 9)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    hw = Hardware(device=Device(g_min_us=5.0, g_max_us=80.0), mapping=Mapping(scheme=scheme, bias=bias),
                  tile=Tile(16, 4))
    x = rng.random((5, 40), dtype=np.float32)
    np.testing.assert_allclose(_matrix(kernel, b, hw, x_max=1.0)(x), x @ kernel + b, rtol=1e-4, atol=1e-4)


LINEAR_CASES = {
    "differential-bias-row": dict(mapping=Mapping(bias=BiasMode.ROW)),
    "differential-digital-subtract": dict(mapping=Mapping(subtract=Subtract.DIGITAL)),
    "offset-bias-row": dict(mapping=Mapping(scheme=MappingScheme.OFFSET, bias=BiasMode.ROW)),
    "offset-digital-bias": dict(mapping=Mapping(scheme=MappingScheme.OFFSET)),
    "levels-slices-stuck": dict(device=Device(g_min_us=2.0, g_max_us=50.0, levels=3, stuck_on=0.05, stuck_off=0.05),
                                mapping=Mapping(weight_slices=2, bias=BiasMode.ROW)),
}


@pytest.mark.parametrize("name", sorted(LINEAR_CASES))
def test_linear_fold_equals_the_tile_by_tile_path(name, rng):
    """Ideal converters and no read noise: the folded product equals the chip read tile by tile."""
    base = Hardware(tile=Tile(13, 4), **LINEAR_CASES[name])
    hw = replace(base, device=replace(base.device, prog_sigma=0.1))
    kernel = rng.standard_normal((30, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    x = (rng.random((5, 30), dtype=np.float32) * 1.3 - 0.4).astype(np.float32)
    folded = _matrix(kernel, bias, hw, x_max=1.1, signed=True, seed=3)
    tiled = _matrix(kernel, bias, hw, x_max=1.1, signed=True, seed=3)
    assert folded.linear is not None
    tiled.linear = None
    folded_reads, tiled_reads = ReadContext(0, len(x)), ReadContext(0, len(x))
    got, expected = folded(x, folded_reads), tiled(x, tiled_reads)
    assert not np.allclose(got, x @ kernel + bias, rtol=1e-3, atol=1e-3)  # the errors are there
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))
    assert folded_reads.layer(0).vectors == tiled_reads.layer(0).vectors == len(x)
    assert folded_reads.layer(0).cell_x2g_us == pytest.approx(tiled_reads.layer(0).cell_x2g_us, rel=1e-5)


# ------------------------------------------------------------------ exact chains against loops
CHAINS = {
    "differential-analog-8bit": dict(dac=DAC(bits=8), adc=ADC(bits=8)),
    "differential-digital-6bit": dict(dac=DAC(bits=6), adc=ADC(bits=6), mapping=Mapping(subtract=Subtract.DIGITAL)),
    "offset-bias-row": dict(dac=DAC(bits=4), adc=ADC(bits=7),
                            mapping=Mapping(scheme=MappingScheme.OFFSET, bias=BiasMode.ROW)),
    "levels-and-weight-slices": dict(device=Device(g_min_us=1.0, g_max_us=50.0, levels=4),
                                     mapping=Mapping(weight_slices=3), dac=DAC(bits=5), adc=ADC(bits=9)),
    "bit-serial-inputs": dict(dac=DAC(bits=8, input_slices=4), adc=ADC(bits=5)),
    "fixed-adc-saturates": dict(dac=DAC(bits=8), adc=ADC(bits=4, range=ADCRange.FIXED, i_max_ua=2.0)),
    "ideal-converters-levels": dict(device=Device(levels=16)),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
@pytest.mark.parametrize("signed", [False, True])
def test_noise_free_chain_matches_loop_reference(name, signed, rng):
    hw = Hardware(tile=Tile(13, 4), **CHAINS[name])
    kernel = rng.standard_normal((30, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    x = rng.random((4, 30), dtype=np.float32) * 1.3 - (0.5 if signed else 0.0)
    x = x.astype(np.float32)
    got = _matrix(kernel, bias, hw, x_max=1.1, signed=signed)(x)
    expected = ref_crossbar(x, kernel, bias, hw, 1.1, signed)
    # Identical arithmetic up to float32 summation order: a current lying within rounding of an
    # ADC decision level may land one code apart, so allow one output step per conversion.
    matrix = _matrix(kernel, bias, hw, x_max=1.1, signed=signed)
    worst_step = max(float(step.max()) for step, _ in matrix.adc_steps.values()) if hw.adc.bits else 0.0
    n_conv = matrix.n_slices * len(matrix.row_tiles) * hw.dac.input_slices * 2
    to_weights = matrix.w_scale * matrix.x_scale / (matrix.v_read * matrix.g_range) * 2
    bound = n_conv * worst_step * to_weights + 1e-4 * (1 + np.abs(expected))
    assert np.all(np.abs(got - expected) <= bound)
    assert np.mean(np.isclose(got, expected, rtol=1e-4, atol=1e-4)) >= 0.95


@pytest.mark.parametrize("levels, slices", [(0, 1), (2, 1), (5, 1), (4, 2), (3, 3)])
def test_programmed_targets_equal_loop_mapping(levels, slices, rng):
    kernel = rng.standard_normal((9, 6)).astype(np.float32)
    hw = Hardware(device=Device(g_min_us=2.0, g_max_us=30.0, levels=levels), mapping=Mapping(weight_slices=slices))
    matrix = _matrix(kernel, None, hw)
    w = kernel.astype(np.float64) / np.abs(kernel).max()
    for side, values in enumerate([np.clip(w, 0, 1), np.clip(-w, 0, 1)]):
        targets, _ = ref_targets(values, levels, slices)
        for s in range(slices):
            expected = (2.0 + 28.0 * targets[s]).astype(np.float32)
            np.testing.assert_array_equal(matrix.conductances[s][side], expected)


def test_stuck_at_fractions_follow_binomial_bounds():
    n_rows, n_cols, on, off = 200, 100, 0.1, 0.05
    hw = Hardware(device=Device(g_min_us=1.0, g_max_us=11.0, stuck_on=on, stuck_off=off))
    # Every target strictly inside the range, so only faults reach g_min or g_max.
    kernel = np.full((n_rows, n_cols), 0.5, np.float32)
    kernel[0, 0] = 1.0
    g = _matrix(kernel, None, hw, seed=3).conductances[0][0].ravel()[1:]
    n = g.size
    for fraction, value in ((on, 11.0), (off, 1.0)):
        observed = np.mean(g == np.float32(value))
        assert abs(observed - fraction) < 5 * np.sqrt(fraction * (1 - fraction) / n)


def test_drift_formula_exact_and_its_exponent_statistics():
    t, t0 = 1000.0, 10.0
    kernel = np.full((100, 100), 0.5, np.float32)
    kernel[0, 0] = 1.0
    base = Device(g_min_us=0.0, g_max_us=20.0, drift_t0_s=t0, read_time_s=t)
    g0 = _matrix(kernel, None, Hardware(device=base)).conductances[0][0]
    exact = _matrix(kernel, None, Hardware(device=replace(base, drift_nu_mean=0.06))).conductances[0][0]
    np.testing.assert_allclose(exact, g0 * (t / t0) ** -0.06, rtol=1e-5)
    spread = _matrix(kernel, None, Hardware(device=replace(base, drift_nu_mean=0.06, drift_nu_std=0.02)),
                     seed=5).conductances[0][0]
    nu = -np.log(spread.ravel().astype(np.float64) / g0.ravel()) / np.log(t / t0)
    n = nu.size
    assert abs(nu.mean() - 0.06) < 5 * 0.02 / np.sqrt(n)
    assert abs(nu.var(ddof=1) - 0.02**2) < 5 * 0.02**2 * np.sqrt(2 / (n - 1))


# ------------------------------------------------------------------ noise statistics
def _noise_setup(read_sigma=0.0, prog_sigma=0.0, mode=ReadNoiseMode.COLUMN, model="additive"):
    device = Device(g_min_us=0.0, g_max_us=10.0, prog_sigma=prog_sigma, prog_model=model, read_sigma=read_sigma,
                    read_model=model, read_noise_mode=mode, clip=False)
    return Hardware(device=device, tile=Tile(64, 512))


def _analytic_output_variance(x, kernel, sigma_of_g, g_range):
    """Var of y_j from independent Gaussian device errors: sum_i x_i^2 (s+^2 + s-^2) (w_scale/dg)^2."""
    w_scale = np.abs(kernel).max()
    w = kernel / w_scale
    g_pos, g_neg = np.clip(w, 0, 1) * g_range, np.clip(-w, 0, 1) * g_range
    var_g = sigma_of_g(g_pos) ** 2 + sigma_of_g(g_neg) ** 2
    return (x.astype(np.float64) ** 2) @ var_g * (w_scale / g_range) ** 2


@pytest.mark.parametrize("model", ["additive", "proportional"])
def test_programming_error_output_mean_and_variance(model, rng):
    n_in, n_out, sigma = 50, 4000, 0.05
    column = rng.standard_normal((n_in, 1)).astype(np.float32)
    kernel = np.repeat(column, n_out, axis=1)  # every column the same: columns are the samples
    x = rng.random((1, n_in), dtype=np.float32)
    y = _matrix(kernel, None, _noise_setup(prog_sigma=sigma, model=model), seed=9)(x)[0].astype(np.float64)
    exact = float((x @ kernel)[0, 0])
    sig = (lambda g: sigma * 10.0 + 0 * g) if model == "additive" else (lambda g: sigma * g)
    var = float(_analytic_output_variance(x, column, sig, 10.0)[0, 0])
    n = y.size
    assert abs(y.mean() - exact) < 5 * np.sqrt(var / n)
    assert abs(y.var(ddof=1) - var) < 5 * var * np.sqrt(2 / (n - 1))


@pytest.mark.parametrize("mode", list(ReadNoiseMode))
def test_read_noise_output_mean_and_variance(mode, rng):
    n_in, n_out, reads, sigma = 40, 50, 400, 0.03
    kernel = rng.standard_normal((n_in, n_out)).astype(np.float32)
    x1 = rng.random((1, n_in), dtype=np.float32)
    x = np.repeat(x1, reads, axis=0)  # the same input read again and again: every row a new read
    matrix = _matrix(kernel, None, _noise_setup(read_sigma=sigma, mode=mode), seed=4)
    y = matrix(x, ReadContext(0, reads)).astype(np.float64)
    exact = (x1 @ kernel)[0]
    var = _analytic_output_variance(x1, kernel, lambda g: sigma * 10.0 + 0 * g, 10.0)[0]
    # Standardized over reads and columns: mean 0, variance 1, n = reads x columns independent draws.
    z = (y - exact) / np.sqrt(var)
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var(ddof=1) - 1) < 5 * np.sqrt(2 / (n - 1))
    assert not np.array_equal(y[0], y[1]), "read noise must be drawn again at every read"


def _ks_two_sample(a, b):
    """Two-sample Kolmogorov-Smirnov statistic D."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, grid, side="right") / a.size
                         - np.searchsorted(b, grid, side="right") / b.size))


def test_column_and_device_read_noise_agree_in_distribution(rng):
    kernel = rng.standard_normal((30, 20)).astype(np.float32)
    x = np.repeat(rng.random((1, 30), dtype=np.float32), 300, axis=0)
    samples = {}
    for mode in ReadNoiseMode:
        hw = _noise_setup(read_sigma=0.05, mode=mode, model="proportional")
        matrix = _matrix(kernel, None, hw, seed=11)
        samples[mode] = (matrix(x, ReadContext(0, x.shape[0])) - x[:1] @ kernel).ravel()
    a, b = samples[ReadNoiseMode.COLUMN], samples[ReadNoiseMode.DEVICE]
    n, m = a.size, b.size
    # Critical value of D at alpha = 0.001: c(alpha) sqrt((n + m) / (n m)), c = sqrt(-ln(alpha / 2) / 2).
    critical = np.sqrt(-np.log(0.001 / 2) / 2) * np.sqrt((n + m) / (n * m))
    assert _ks_two_sample(a, b) < critical
    assert not np.array_equal(a, b)


# ------------------------------------------------------------------ randomness is keyed, not stateful
@pytest.mark.parametrize("mode", ["column", "device"])
def test_bit_identical_across_threads_and_batches(mode):
    network = build("mlp", hidden=32, seed=0)
    hw = resolve("sonos", [f"device.read_noise_mode={mode}", "device.prog_sigma=2.0"])
    x = np.random.default_rng(0).random((48, 28, 28), dtype=np.float32)
    most = numba.config.NUMBA_NUM_THREADS
    results, energies = [], []
    # With several threads a batch of 32 or more is split into blocks of images, one per thread.
    for threads, splits in ((1, [48]), (most, [48]), (most, [7, 41]), (most, [16, 32]), (1, [3, 3, 42])):
        numba.set_num_threads(threads)
        try:
            chip = program(network, hw, seed=42, calibration=x[:8])
            parts, start = [], 0
            for size in splits:
                parts.append(chip.forward(x[start:start + size], image_offset=start))
                start += size
            results.append(np.concatenate(parts))
            energies.append([(reads.vectors, reads.cell_x2g_us) for reads in chip.reads])
        finally:
            numba.set_num_threads(most)
    for other, energy in zip(results[1:], energies[1:]):
        np.testing.assert_array_equal(results[0], other)
        for (vectors, x2g), (vectors0, x2g0) in zip(energy, energies[0]):
            assert vectors == vectors0
            assert x2g == pytest.approx(x2g0, rel=1e-5)


def test_different_seeds_give_different_chips():
    network = build("mlp", hidden=16, seed=0)
    hw = resolve("paper", ["device.prog_sigma=0.05"])
    x = np.random.default_rng(1).random((4, 28, 28), dtype=np.float32)
    a = program(network, hw, 1, x).forward(x)
    b = program(network, hw, 2, x).forward(x)
    assert not np.array_equal(a, b)
