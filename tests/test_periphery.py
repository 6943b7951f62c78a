"""Paths no other test reaches, each against an independent reference (issue #9, item 6).

The DAC's ``fixed`` and ``percentile`` ranges and the ``calibrated`` ADC range against the loop chain of
tests/reference.py with ranges computed here from the calibration batch; ``device.clip`` and the
state-dependent error models against closed-form Gaussian statistics; float64 inputs against their
float32 casts and the float64 loop reference.
"""

import math

import numpy as np
import pytest

from xbar.config import (
    ADC,
    DAC,
    ADCRange,
    BiasMode,
    DACRange,
    Device,
    Hardware,
    Mapping,
    MappingScheme,
    Subtract,
    Tile,
    resolve,
)
from xbar.crossbar import AnalogMatrix, InputRange, program
from xbar.nets import Dense, Network

from .conftest import TOL
from .reference import ref_adc_i_max, ref_crossbar, ref_crossbar_ranges, ref_dense, ref_sigma_us

N_IN, HIDDEN, N_OUT = 13, 11, 6


def _matrix(kernel, bias, hw, x_max=1.0, signed=False, seed=0):
    return AnalogMatrix(kernel, bias, hw, InputRange(x_max, signed), seed, 0)


def _two_layers(rng):
    """Dense(13 -> 11, brelu) then Dense(11 -> 6, linear), both with a bias; inputs are vectors.

    The first kernel is scaled by 1 / sqrt(13) so that most hidden activations stay inside (0, 1).
    """
    k1, k2 = (rng.standard_normal(shape).astype(np.float32) for shape in ((N_IN, HIDDEN), (HIDDEN, N_OUT)))
    k1 *= np.float32(1 / np.sqrt(N_IN))
    b1, b2 = (0.3 * rng.standard_normal(n).astype(np.float32) for n in (HIDDEN, N_OUT))
    layers = [Dense(kernel=k1, bias=b1, activation="brelu"), Dense(kernel=k2, bias=b2, activation="linear")]
    return Network("two-layers", "test", (N_IN,), N_OUT, layers)


def _assert_within_one_code(got, expected, one_code):
    """Identical arithmetic up to float32 rounding: a current within rounding of an ADC decision level may
    land one code apart in any conversion (test_crossbar.py::test_noise_free_chain_matches_loop_reference)."""
    bound = one_code[None, :] + 1e-4 * (1 + np.abs(expected))
    assert np.all(np.abs(got - expected) <= bound), np.max(np.abs(got - expected) - bound)
    assert np.mean(np.isclose(got, expected, rtol=1e-4, atol=1e-4)) >= 0.95


def _layer_inputs(chip, x):
    """The inputs each weight layer of the two-layer chip sees for images x, and the chip's logits."""
    first = np.clip(chip.matrices[0](x), 0.0, 1.0)
    return [x, first], chip.matrices[1](first)


# ------------------------------------------------------------------ DAC range policies
@pytest.mark.parametrize("policy", ["fixed", "percentile"])
def test_dac_range_policies_against_loop_reference(policy, rng):
    dac = DAC(bits=6, range=DACRange(policy), x_max=0.7, percentile=90.0)
    hw = Hardware(dac=dac, adc=ADC(bits=8), tile=Tile(5, 4))
    network = _two_layers(rng)
    calibration = rng.uniform(-1.0, 1.2, (48, N_IN)).astype(np.float32)
    x = rng.uniform(-2.0, 2.5, (6, N_IN)).astype(np.float32)  # beyond any x_max below: the DAC clips
    chip = program(network, hw, 3, calibration)
    inputs, logits = _layer_inputs(chip, x)
    np.testing.assert_array_equal(chip.forward(x, 0), logits)

    # Ideal activations of the calibration batch, by loops; each layer's range from them.
    ideal = [calibration.astype(np.float64)]
    ideal.append(ref_dense(ideal[0], network.layers[0].kernel, network.layers[0].bias, "brelu"))
    for index, (layer, acts, seen) in enumerate(zip(network.layers, ideal, inputs)):
        signed = bool((acts < 0).any())
        assert signed == (index == 0)
        x_max = dac.x_max if policy == "fixed" else float(np.percentile(np.abs(acts), dac.percentile))
        assert np.abs(seen).max() > 1.2 * x_max  # clipping is exercised
        i_max = ref_adc_i_max(layer.kernel, layer.bias, hw, x_max, signed)  # the 'max' ADC range
        expected, one_code, _ = ref_crossbar_ranges(seen, layer.kernel, layer.bias, hw, x_max, signed, i_max)
        np.testing.assert_allclose(expected, ref_crossbar(seen, layer.kernel, layer.bias, hw, x_max, signed),
                                   rtol=1e-12, atol=1e-12)
        got = chip.matrices[index](seen)
        _assert_within_one_code(got, expected, one_code)
        # The test tells ranges apart: the 'max' policy's range gives other outputs.
        other = float(np.abs(acts).max()) if policy == "percentile" else 1.5 * x_max
        assert not np.allclose(got, ref_crossbar(seen, layer.kernel, layer.bias, hw, other, signed),
                               rtol=1e-2, atol=1e-2)


# ------------------------------------------------------------------ calibrated ADC range
CALIBRATED = {
    "differential-analog": dict(),
    "digital-subtract-bit-serial": dict(mapping=Mapping(subtract=Subtract.DIGITAL), dac=DAC(bits=6, input_slices=2)),
    "offset-bias-row": dict(mapping=Mapping(scheme=MappingScheme.OFFSET, bias=BiasMode.ROW)),
    "levels-weight-slices": dict(device=Device(g_min_us=1.0, g_max_us=50.0, levels=3),
                                 mapping=Mapping(weight_slices=2)),
    "programming-error": dict(device=Device(g_min_us=1.0, g_max_us=50.0, prog_sigma=0.05)),
}


@pytest.mark.parametrize("name", sorted(CALIBRATED))
def test_calibrated_adc_range_against_loop_reference(name, rng):
    """I_max of every (weight slice, row tile, ADC input, column tile) is adc.percentile of the |currents|
    that tile's ADCs saw on the calibration batch: ideal activations set the DAC ranges, then the batch
    goes through the programmed chip, DAC as in inference, ideal ADC, no read noise (docs/hardware.md)."""
    options = {"dac": DAC(bits=6), **CALIBRATED[name]}
    hw = Hardware(adc=ADC(bits=6, range=ADCRange.CALIBRATED, percentile=90.0), tile=Tile(5, 4), **options)
    network = _two_layers(rng)
    calibration = rng.uniform(-0.5, 1.0, (24, N_IN)).astype(np.float32)
    x = rng.uniform(-0.5, 1.0, (6, N_IN)).astype(np.float32)
    chip = program(network, hw, 5, calibration)
    inputs, logits = _layer_inputs(chip, x)
    np.testing.assert_array_equal(chip.forward(x, 0), logits)

    ideal_adc = Hardware(**{**options, "tile": hw.tile})
    cal = calibration.astype(np.float64)
    ideal = ref_dense(cal, network.layers[0].kernel, network.layers[0].bias, "brelu")
    x_maxes = [float(np.abs(cal).max()), float(ideal.max())]
    saturated = 0
    for index, (layer, seen, x_max) in enumerate(zip(network.layers, inputs, x_maxes)):
        signed = index == 0
        # With programming errors the calibration currents are the programmed chip's: take its conductances.
        g = chip.matrices[index].conductances if hw.device.prog_sigma else None
        i_max = ref_adc_i_max(layer.kernel, layer.bias, hw, x_max, signed, calibration=cal, conductances=g)
        expected, one_code, clipped = ref_crossbar_ranges(seen, layer.kernel, layer.bias, hw, x_max, signed,
                                                          i_max, conductances=g)
        _assert_within_one_code(chip.matrices[index](seen), expected, one_code)
        saturated += clipped
        # The 'max' range would give other outputs: the comparison can tell the policies apart.
        worst = ref_adc_i_max(layer.kernel, layer.bias, Hardware(tile=hw.tile, **options), x_max, signed,
                              conductances=g)
        assert np.mean(np.isclose(chip.matrices[index](seen),
                                  ref_crossbar_ranges(seen, layer.kernel, layer.bias, hw, x_max, signed, worst,
                                                      conductances=g)[0], rtol=1e-4, atol=1e-4)) < 0.5
        # The next layer calibrates on this layer's calibration outputs through the chip with an ideal ADC.
        cal = np.clip(ref_crossbar_ranges(cal, layer.kernel, layer.bias, ideal_adc, x_max, signed, None,
                                          conductances=g)[0], 0.0, 1.0)
    assert saturated > 0  # the 90th percentile clips the largest currents


# ------------------------------------------------------------------ clipping to [g_min, g_max]
def _normal_cdf(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


@pytest.mark.parametrize("clip", [True, False])
def test_clip_fractions_match_gaussian_tails(clip, rng):
    g_min, g_max, prog_sigma = 2.0, 12.0, 0.5
    sigma = prog_sigma * (g_max - g_min)  # additive: 5 uS
    values = np.array([-1.0, -0.5, 0.0, 0.3, 0.6, 1.0], np.float32)
    kernel = rng.choice(values, size=(200, 100))
    kernel[0, 0] = 1.0
    hw = Hardware(device=Device(g_min_us=g_min, g_max_us=g_max, prog_sigma=prog_sigma, clip=clip))
    matrix = _matrix(kernel, None, hw, seed=7)
    w = kernel.astype(np.float64)
    g = np.concatenate([matrix.conductances[0][side].ravel().astype(np.float64) for side in (0, 1)])
    targets = np.concatenate([(g_min + (g_max - g_min) * np.clip(s * w, 0, 1)).ravel() for s in (1, -1)])
    p_low = np.array([_normal_cdf((g_min - t) / sigma) for t in targets])
    p_high = np.array([1.0 - _normal_cdf((g_max - t) / sigma) for t in targets])
    if clip:
        assert g.min() >= np.float32(g_min) and g.max() <= np.float32(g_max)
        low, high = g == np.float32(g_min), g == np.float32(g_max)
    else:
        low, high = g < g_min, g > g_max
        assert low.any() and high.any()
    # Each device lands beyond a bound independently: the count is a sum of Bernoulli(p_i).
    for hits, p in ((low, p_low), (high, p_high)):
        assert abs(hits.sum() - p.sum()) < 5 * np.sqrt(np.sum(p * (1 - p)))
    if not clip:
        clipped = _matrix(kernel, None, Hardware(device=Device(g_min_us=g_min, g_max_us=g_max,
                                                               prog_sigma=prog_sigma)), seed=7)
        for side in (0, 1):
            np.testing.assert_array_equal(clipped.conductances[0][side],
                                          np.clip(matrix.conductances[0][side], np.float32(g_min), np.float32(g_max)))


# ------------------------------------------------------------------ state-dependent error models
PROGRAM_MODELS = {
    # Each technology's preset, clipping off (the fits' tails would otherwise be cut), drift off.
    "reram-program": ("reram", ["device.prog_sigma=1.0"]),
    "sonos-program": ("sonos", ["device.prog_sigma=2.0", "device.read_sigma=0.0"]),
    "pcm-program": ("pcm", ["device.prog_sigma=0.5", "device.drift_nu_mean=0.0", "device.drift_nu_std=0.0"]),
}


@pytest.mark.parametrize("model", sorted(PROGRAM_MODELS))
def test_state_dependent_programming_error_is_the_published_sigma(model, rng):
    preset, overrides = PROGRAM_MODELS[model]
    hw = resolve(preset, overrides + ["device.clip=false", f"device.prog_model={model}"])
    dev = hw.device
    values = np.array([-1.0, -0.55, -0.2, 0.0, 0.15, 0.5, 0.8, 1.0], np.float32)
    kernel = rng.choice(values, size=(1024, 512))
    kernel[0, 0] = 1.0
    matrix = _matrix(kernel, None, hw, seed=21)
    w = kernel.astype(np.float64)
    g = np.concatenate([matrix.conductances[0][side].ravel().astype(np.float64) for side in (0, 1)])
    targets = np.concatenate([(dev.g_min_us + (dev.g_max_us - dev.g_min_us) * np.clip(s * w, 0, 1))
                              .astype(np.float32).ravel() for s in (1, -1)]).astype(np.float64)
    z = (g - targets) / ref_sigma_us(targets, model, dev.prog_sigma, dev.v_read_v)
    # Standardized by the published sigma(G): N(0, 1) at every target conductance, so per target level too
    # (a wrong shape of sigma(G) with the right average would fail there).
    levels = np.unique(targets)
    assert len(levels) == 7
    for level in levels:
        zl = z[targets == level]
        n = zl.size
        assert abs(zl.mean()) < 5 / np.sqrt(n), (level, zl.mean())
        assert abs(zl.var(ddof=1) - 1) < 5 * np.sqrt(2 / (n - 1)), (level, zl.var(ddof=1))


@pytest.mark.parametrize("mode", ["device", "column"])
def test_sonos_read_noise_output_variance_closed_form(mode, rng):
    n_in, n_out, reads = 40, 48, 400
    hw = resolve("sonos", ["device.prog_sigma=0.0", "dac.bits=0", "adc.bits=0", "device.read_sigma=1.5",
                           f"device.read_noise_mode={mode}"])
    dev = hw.device
    # Column quarters: small weights (low currents, where sigma_I still grows with I) and large ones
    # (sigma_I saturated), each on G+ (positive) or on G- (negative). Every quarter must come out right,
    # not only their average: a wrong shape of sigma(G), or a pair read with one device's sigma, fails.
    quarter = n_out // 4
    kernel = np.hstack([sign * rng.uniform(low, high, (n_in, quarter))
                        for low, high in ((0.02, 0.1), (0.5, 1.0)) for sign in (1.0, -1.0)]).astype(np.float32)
    kernel[0, -1] = -1.0
    network = Network("one-layer", "test", (n_in,), n_out, [Dense(kernel=kernel, bias=None, activation="linear")])
    x1 = rng.uniform(0.1, 1.0, (1, n_in)).astype(np.float32)
    chip = program(network, hw, 13, x1)
    y = chip.forward(np.repeat(x1, reads, axis=0), 0).astype(np.float64)  # image index keys every read anew
    assert not np.array_equal(y[0], y[1])

    w, dg = kernel.astype(np.float64), dev.g_max_us - dev.g_min_us
    variance_g = sum(ref_sigma_us((dev.g_min_us + dg * np.clip(s * w, 0, 1)).astype(np.float32), "sonos-read",
                                  dev.read_sigma, dev.v_read_v) ** 2 for s in (1, -1))
    # y_j = (w_scale / dg) sum_i x_i (G+_ij - G-_ij + noise): Var = (w_scale / dg)^2 sum_i x_i^2 sigma_ij^2.
    var = (x1[0].astype(np.float64) ** 2 @ variance_g) * (1.0 / dg) ** 2
    z = (y - (x1.astype(np.float64) @ w)[0]) / np.sqrt(var)
    for q in range(4):
        part = z[:, q * quarter:(q + 1) * quarter]
        n = part.size
        assert abs(part.mean()) < 5 / np.sqrt(n), (q, part.mean())
        assert abs(part.var(ddof=1) - 1) < 5 * np.sqrt(2 / (n - 1)), (q, part.var(ddof=1))


# ------------------------------------------------------------------ float64 inputs
FLOAT64 = {
    "linear-fold": ["device.prog_sigma=0.1", "mapping.bias=row", "tile.rows=7", "tile.cols=5"],
    "converters": ["dac.bits=8", "adc.bits=8", "tile.rows=7", "tile.cols=5", "device.prog_sigma=0.05"],
    "read-noise-column": ["dac.bits=6", "adc.bits=6", "device.read_sigma=0.05", "device.read_noise_mode=column"],
    "read-noise-device": ["device.read_sigma=0.05", "device.read_noise_mode=device",
                          "device.read_model=proportional"],
}


@pytest.mark.parametrize("name", sorted(FLOAT64))
def test_float64_inputs_equal_their_float32_cast(name, rng):
    hw = resolve("ideal", FLOAT64[name])
    kernel = rng.standard_normal((30, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    x = rng.uniform(-0.4, 1.3, (5, 30))  # float64, most not representable in float32
    assert not np.array_equal(x, x.astype(np.float32))
    # Two identical chips read once each: the same read-noise draws.
    a, b = (_matrix(kernel, bias, hw, x_max=1.1, signed=True, seed=2) for _ in range(2))
    got, cast = a(x), b(x.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, cast)
    network = _two_layers(rng)
    images = rng.uniform(-0.5, 1.0, (4, N_IN))
    chip = program(network, hw, 4, images)
    np.testing.assert_array_equal(chip.forward(images, 0), chip.forward(images.astype(np.float32), 0))


EXACT64 = {
    "ideal-differential-levels": dict(device=Device(g_min_us=2.0, g_max_us=50.0, levels=16), tile=Tile(7, 5)),
    "ideal-offset-digital-bias": dict(mapping=Mapping(scheme=MappingScheme.OFFSET), tile=Tile(7, 5)),
    "dac-on-its-grid": dict(dac=DAC(bits=8), tile=Tile(7, 5)),
}


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("name", sorted(EXACT64))
def test_float64_inputs_match_float64_loop_reference(name, signed, rng):
    """Chains with no decision level in reach (ideal converters, or DAC inputs on the code grid with an
    ideal ADC) agree with the float64 loop reference on float64 inputs to float32 rounding."""
    hw = Hardware(**EXACT64[name])
    kernel = rng.standard_normal((30, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    x_max = 1.1
    if hw.dac.bits:
        levels = 2**hw.dac.bits - 1
        codes = rng.integers(-levels if signed else 0, levels + 1, (5, 30))
        x = codes / levels * x_max  # float64 grid points: their float32 casts keep the codes
    else:
        x = rng.uniform(-0.4 if signed else 0.0, 1.0, (5, 30))
    assert x.dtype == np.float64 and not np.array_equal(x, x.astype(np.float32))
    got = _matrix(kernel, bias, hw, x_max=x_max, signed=signed)(x)
    np.testing.assert_allclose(got, ref_crossbar(x, kernel, bias, hw, x_max, signed), **TOL[np.float32])
