"""Read noise with clipping (``device.read_clip``): the kernels against a plain-numpy loop over the same draws,
the clipped-normal statistics, the column mode's fallback to per-device draws, and the configuration."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np
import pytest
from click.testing import CliRunner

from xbar import io
from xbar.cli import main
from xbar.config import (
    READ_CLIPS,
    Device,
    Hardware,
    Mapping,
    MappingScheme,
    Parasitics,
    ReadNoiseMode,
    Subtract,
    Tile,
    load_toml,
    resolve,
)
from xbar.crossbar import AnalogMatrix, InputRange, ReadContext, program
from xbar.crossbar.array import DenseArray
from xbar.crossbar.devices import PURPOSE_READ
from xbar.errors import ConfigError
from xbar.kernels.rng import derive_key, mix, normal
from xbar.nets import build

from .golden.cases import CONFIGS, run_case

SEED, LAYER = 7, 3
EDGE = 5.0
"""Standard errors allowed between a sample statistic and its exact value: a two-sided 5-sigma band, which a
correct implementation leaves with probability 6e-7 (the seeds are fixed, so a pass is a pass for good)."""


def _phi(a: float) -> float:
    return math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)


def _cdf(a: float) -> float:
    return 0.5 * (1 + math.erf(a / math.sqrt(2)))


def _clipped_moments(g: float, s: float) -> tuple[float, float, float]:
    """Mean, variance and fourth central moment of Y = max(0, g + s Z), Z standard normal.

    With a = g / s: E[Y] = g Phi(a) + s phi(a) and E[Y^2] = (g^2 + s^2) Phi(a) + g s phi(a) (closed forms, from
    integrating (g + s z)^k phi(z) over z > -a); the fourth central moment, which only sizes the tolerance of
    the variance, by quadrature of the same integral.
    """
    a = g / s
    mean = g * _cdf(a) + s * _phi(a)
    var = (g * g + s * s) * _cdf(a) + g * s * _phi(a) - mean * mean
    z = np.linspace(-a, 12.0, 400_001)
    y = g + s * z
    dens = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    # The point mass P(Z <= -a) sits at Y = 0.
    mu4 = float(np.trapezoid((y - mean) ** 4 * dens, z)) + _cdf(-a) * mean**4
    return mean, var, mu4


def _array(g_sides, device, row_tiles, scheme=MappingScheme.DIFFERENTIAL, subtract=Subtract.ANALOG):
    return DenseArray([g_sides], device, scheme, subtract, row_tiles, SEED, LAYER)


def _reference_side(x, g, sigma, v_read, key, row_ids, bounds):
    """Plain-numpy device-mode read of one side, on the kernel's own draws normal(mix(mix(key, row), i), j):
    out[b, j] = V sum_i x[b, i] clip(g[i, j] + sigma[i, j] z_bij), float32 throughout, as the kernel rounds."""
    out = np.zeros((x.shape[0], g.shape[1]), np.float32)
    for b in range(x.shape[0]):
        row_key = np.uint64(mix(key, row_ids[b]))
        for i in range(g.shape[0]):
            if x[b, i] == 0:
                continue
            device_key = np.uint64(mix(row_key, np.uint64(i)))
            for j in range(g.shape[1]):
                value = np.float32(g[i, j] + np.float32(sigma[i, j] * normal(device_key, np.uint64(j))))
                if bounds is not None:
                    value = min(max(value, np.float32(bounds[0])), np.float32(bounds[1]))
                out[b, j] = np.float32(out[b, j] + np.float32(x[b, i] * value))
    return (out.astype(np.float64) * v_read).astype(np.float32)


def _tiny_tile(rng):
    """A differential pair of 7 x 4 devices in [0, 10] uS, a third of them at exactly 0 or 10, on two row tiles,
    and inputs with zeros; read noise of 2 uS (0.2 of the range), so clipping binds often."""
    g = rng.uniform(0.0, 10.0, (2, 7, 4)).astype(np.float32)
    ends = rng.random(g.shape)
    g[ends < 0.2] = 0.0
    g[ends > 0.85] = 10.0
    x = rng.random((6, 7), dtype=np.float32)
    x[x < 0.2] = 0.0
    return [g[0], g[1]], x, [(0, 4), (4, 7)]


# ------------------------------------------------------------------ (a) none is today's read, bit for bit
@pytest.mark.parametrize("config", ["read-device", "read-column"])
def test_read_clip_none_equals_the_golden_logits(config, monkeypatch):
    """The golden logits (tests/golden, made before read_clip existed) with read_clip = none set explicitly."""
    goldens = np.load(Path(__file__).parent / "golden" / "logits.npz")
    original = CONFIGS[config]

    def explicit():
        hw = original()
        return replace(hw, device=replace(hw.device, read_clip="none"))

    monkeypatch.setitem(CONFIGS, config, explicit)
    out, _ = run_case("mlp", config, 0)
    np.testing.assert_array_equal(out, goldens[f"mlp/{config}/0"])


# ------------------------------------------------------------------ (b) the kernel against a numpy loop
@pytest.mark.parametrize("clip", READ_CLIPS)
@pytest.mark.parametrize("mode", list(ReadNoiseMode))
def test_device_read_equals_a_numpy_loop_over_the_same_draws(clip, mode, rng):
    sides, x, row_tiles = _tiny_tile(rng)
    device = Device(g_min_us=0.0, g_max_us=10.0, read_sigma=0.2, read_noise_mode=mode, read_clip=clip)
    array = _array(sides, device, row_tiles)
    row_ids = np.arange(100, 106, dtype=np.uint64)
    partials = [(0, 0, 0, 0), (0, 1, 0, 0)]
    currents, std = array.read(partials, [x], row_ids, True)
    bounds = None if clip == "none" else (0.0, np.inf) if clip == "zero" else (0.0, 10.0)
    sigma = np.full_like(sides[0], 2.0)
    for p, (_, t, _, _) in enumerate(partials):
        r0, r1 = row_tiles[t]
        if mode == ReadNoiseMode.COLUMN and clip == "none":  # no clipping: the column draw, noise-free here
            np.testing.assert_array_equal(currents[p], x[:, r0:r1] @ ((sides[0] - sides[1])[r0:r1] * np.float32(0.1)))
            assert np.all(std[p] > 0)
            continue
        expected = [
            _reference_side(x[:, r0:r1], sides[side][r0:r1], sigma[r0:r1], 0.1,
                            derive_key(PURPOSE_READ, SEED, LAYER, 0, t, 0, 0, side), row_ids, bounds)
            for side in (0, 1)
        ]
        np.testing.assert_array_equal(currents[p], expected[0] - expected[1])
        if mode == ReadNoiseMode.COLUMN:
            assert np.all(std[p] == 0), "a fallen-back read must not draw column noise as well"
        if clip != "none":  # the clipping acted: the same draws unclipped give other currents
            unclipped = [
                _reference_side(x[:, r0:r1], sides[side][r0:r1], sigma[r0:r1], 0.1,
                                derive_key(PURPOSE_READ, SEED, LAYER, 0, t, 0, 0, side), row_ids, None)
                for side in (0, 1)
            ]
            assert not np.array_equal(currents[p], unclipped[0] - unclipped[1])


@pytest.mark.parametrize("g_over_s", [0.0, 0.5, 2.0])
def test_zero_clipped_single_device_matches_the_clipped_normal(g_over_s):
    """n reads of one device at G with read noise s, x = 1 and V = 1 V: each read is max(0, G + s Z).

    Tolerances: the sample mean has standard error sqrt(Var / n); the sample variance sqrt((mu4 - Var^2) / n)
    (its large-n variance), with Var and mu4 of the clipped normal (:func:`_clipped_moments`); EDGE of each.
    """
    n, s = 100_000, 1.0
    g = np.full((1, 1), g_over_s * s, np.float32)
    device = Device(g_min_us=0.0, g_max_us=10.0, v_read_v=1.0, read_sigma=s / 10.0,
                    read_noise_mode=ReadNoiseMode.DEVICE, read_clip="zero")
    array = _array([g], device, [(0, 1)], scheme=MappingScheme.OFFSET)
    currents, _ = array.read([(0, 0, 0, 0)], [np.ones((n, 1), np.float32)], np.arange(n, dtype=np.uint64), True)
    y = currents[0, :, 0].astype(np.float64)
    mean, var, mu4 = _clipped_moments(float(g[0, 0]), s)
    assert y.min() == 0.0 and np.mean(y == 0) == pytest.approx(_cdf(-g_over_s), abs=EDGE * 0.5 / math.sqrt(n))
    assert abs(y.mean() - mean) < EDGE * math.sqrt(var / n)
    assert abs(y.var(ddof=1) - var) < EDGE * math.sqrt((mu4 - var**2) / n)
    # The unclipped Gaussian has mean G: E[Y] - G = s (phi(a) - a Phi(-a)), 0.4 s and 0.20 s for a = 0 and 0.5
    # (over 60 standard errors), 0.008 s for a = 2 (where the point mass at 0, checked above, tells them apart).
    if g_over_s < 1:
        assert abs(y.mean() - g_over_s * s) > 20 * math.sqrt(var / n)


# ------------------------------------------------------------------ (c) range clipping stays in range
def test_range_clipping_never_reads_outside_the_range():
    n = 20_000
    g = np.array([[1.0, 5.0, 9.5, 10.0]], np.float32)  # near g_min, mid-range, near and at g_max
    device = Device(g_min_us=1.0, g_max_us=10.0, v_read_v=1.0, read_sigma=0.3,
                    read_noise_mode=ReadNoiseMode.DEVICE, read_clip="range")
    array = _array([g], device, [(0, 1)], scheme=MappingScheme.OFFSET)
    currents, _ = array.read([(0, 0, 0, 0)], [np.ones((n, 1), np.float32)], np.arange(n, dtype=np.uint64), True)
    y = currents[0]
    assert y.min() == np.float32(1.0) and y.max() == np.float32(10.0)  # both bounds reached, never passed
    # With s = 2.7 uS every device passes a bound often: P > 0.04 for the mid-range one, n P > 800 reads.
    for j in range(4):
        assert np.any(y[:, j] == 1.0) and np.any(y[:, j] == 10.0)


# ------------------------------------------------------------------ (d) the column mode's fallback
def test_column_mode_falls_back_per_row_tile_and_keeps_the_column_draw_far_from_bounds(rng):
    """Row tile 0 has devices at 0 uS (clipping binds), row tile 1 only devices in [60, 90] uS with s = 1 uS,
    60 widths above zero: tile 0 reads as device mode, tile 1 exactly as without clipping."""
    g = rng.uniform(60.0, 90.0, (2, 8, 5)).astype(np.float32)
    g[:, :4][rng.random((2, 4, 5)) < 0.3] = 0.0
    x = rng.random((9, 8), dtype=np.float32)
    row_ids = np.arange(9, dtype=np.uint64)
    partials = [(0, 0, 0, 0), (0, 1, 0, 0)]
    out = {}
    for mode in ReadNoiseMode:
        for clip in ("none", "zero"):
            device = Device(read_sigma=0.01, read_noise_mode=mode, read_clip=clip)
            array = _array([g[0], g[1]], device, [(0, 4), (4, 8)])
            out[mode, clip] = array.read(partials, [x], row_ids, True)
            if clip == "zero":
                assert array.binds == {(0, 0, 0): True, (0, 1, 0): False}
    cur, std = out[ReadNoiseMode.COLUMN, "zero"]
    np.testing.assert_array_equal(cur[0], out[ReadNoiseMode.DEVICE, "zero"][0][0])
    assert np.all(std[0] == 0)
    np.testing.assert_array_equal(cur[1], out[ReadNoiseMode.COLUMN, "none"][0][1])
    np.testing.assert_array_equal(std[1], out[ReadNoiseMode.COLUMN, "none"][1][1])
    assert np.all(std[1] > 0)


def _one_weight_reads(clip, n):
    """n reads of a single weight w = 1 through a differential pair, G+ = 10 uS, G- = 0 uS, s = 0.5 uS:
    y = (clip(G+ + s Z1) - clip(G- + s Z2)) / 10 uS, in column mode."""
    device = Device(g_min_us=0.0, g_max_us=10.0, read_sigma=0.05, read_clip=clip)
    matrix = AnalogMatrix(np.ones((1, 1), np.float32), None, Hardware(device=device), InputRange(1.0, False), 5, 0)
    return matrix, matrix(np.ones((n, 1), np.float32), ReadContext(0, n))[:, 0].astype(np.float64)


def test_column_mode_near_a_bound_gives_the_clipped_statistics():
    """G+ is 20 widths above zero (never clipped), G- = 0 is clipped half the time: E[y] = (10 - s phi(0)) / 10,
    Var[y] = (s^2 + Var max(0, s Z)) / 100. Tolerance on the mean: EDGE standard errors sqrt(Var / n); on the
    variance: EDGE sqrt((m4 - v^2) / n) with the sample's own fourth central moment m4 (its large-n error)."""
    n, s = 20_000, 0.5
    matrix, y = _one_weight_reads("zero", n)
    assert matrix.array.binds == {(0, 0, 0): True}
    mean_neg, var_neg, _ = _clipped_moments(0.0, s)
    mean, var = (10.0 - mean_neg) / 10.0, (s * s + var_neg) / 100.0
    assert abs(y.mean() - mean) < EDGE * math.sqrt(var / n)
    m4 = np.mean((y - y.mean()) ** 4)
    assert abs(y.var(ddof=1) - var) < EDGE * math.sqrt((m4 - y.var() ** 2) / n)
    # Unclipped, the column draw has mean 1 and variance 2 s^2 / 100: 49 standard errors away in the mean.
    _, plain = _one_weight_reads("none", n)
    assert abs(plain.mean() - 1.0) < EDGE * math.sqrt(2 * s * s / 100 / n)
    assert abs(y.mean() - 1.0) > 20 * math.sqrt(var / n)


def test_zero_clipping_far_from_zero_is_todays_column_read(rng):
    """reram's range [50, 225] uS with s = 1.75 uS: every device at least 28 widths above zero."""
    kernel = rng.standard_normal((30, 12)).astype(np.float32)
    x = rng.random((40, 30), dtype=np.float32)
    outs = {}
    for clip in ("none", "zero"):
        hw = resolve("reram", ["device.read_sigma=0.01", f"device.read_clip={clip}"])
        matrix = AnalogMatrix(kernel, None, hw, InputRange(1.0, False), 3, 0)
        if clip == "zero":
            assert matrix.array.binds and not any(matrix.array.binds.values())
        outs[clip] = matrix(x, ReadContext(0, x.shape[0]))
    np.testing.assert_array_equal(outs["zero"], outs["none"])
    # ... while range clipping (devices at g_min and g_max) falls back and reads otherwise.
    hw = resolve("reram", ["device.read_sigma=0.01", "device.read_clip=range"])
    matrix = AnalogMatrix(kernel, None, hw, InputRange(1.0, False), 3, 0)
    assert all(matrix.array.binds.values())
    assert not np.array_equal(matrix(x, ReadContext(0, x.shape[0])), outs["none"])


def test_resistive_wires_refuse_clipping_that_can_bind_and_take_it_where_it_cannot(rng):
    kernel = rng.standard_normal((12, 6)).astype(np.float32)
    wires = Parasitics(r_row_ohm=1.0, r_col_ohm=1.0)
    near = Hardware(device=Device(read_sigma=0.01, read_clip="zero"), parasitics=wires)
    with pytest.raises(ConfigError, match="device.read_clip = 'zero' with resistive wires"):
        AnalogMatrix(kernel, None, near, InputRange(1.0, False), 1, 0)
    x = rng.random((5, 12), dtype=np.float32)
    outs = []
    for clip in ("none", "zero"):
        hw = replace(resolve("reram", ["device.read_sigma=0.01", f"device.read_clip={clip}"]), parasitics=wires)
        outs.append(AnalogMatrix(kernel, None, hw, InputRange(1.0, False), 1, 0)(x, ReadContext(0, 5)))
    np.testing.assert_array_equal(outs[0], outs[1])


# ------------------------------------------------------------------ (e) the same bits on any thread count
@pytest.mark.parametrize("mode", ["column", "device"])
def test_clipped_reads_are_bit_identical_on_one_and_two_threads(mode):
    network = build("mlp", hidden=16, seed=0)
    hw = resolve("paper", ["device.read_sigma=0.1", f"device.read_noise_mode={mode}", "device.read_clip=zero",
                           "dac.bits=6", "adc.bits=6"])
    x = np.random.default_rng(0).random((40, 28, 28), dtype=np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(program(network, hw, seed=4, calibration=x[:8]).forward(x))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    numba.set_num_threads(1)
    try:
        plain = program(network, replace(hw, device=replace(hw.device, read_clip="none")), 4, x[:8]).forward(x)
    finally:
        numba.set_num_threads(before)
    assert not np.array_equal(results[0], plain)


# ------------------------------------------------------------------ (f) configuration
def test_bad_read_clip_is_a_one_line_error():
    with pytest.raises(ConfigError) as info:
        Device(read_clip="sometimes")
    assert str(info.value) == "device.read_clip must be one of none, zero, range, got 'sometimes'"
    with pytest.raises(ConfigError, match="device.read_clip must be one of"):
        resolve("paper", ["device.read_clip=bogus"])
    with pytest.raises(ConfigError, match="device.read_clip: expected a string"):
        resolve("paper", ["device.read_clip=3"])


def test_read_clip_from_toml_and_set(tmp_path):
    path = tmp_path / "hw.toml"
    path.write_text('preset = "paper"\n[device]\nread_sigma = 0.1\nread_clip = "zero"\n')
    assert load_toml(path).device.read_clip == "zero"
    assert resolve("paper", ["device.read_clip=range"]).device.read_clip == "range"
    assert resolve("paper").device.read_clip == "none"
    assert resolve("paper", ["device.read_clip=zero"]).to_dict()["device"]["read_clip"] == "zero"


def test_bad_read_clip_on_the_command_line_is_exit_2_and_one_line(tmp_path):
    weights = io.save(build("mlp", hidden=8, seed=1), tmp_path / "w.h5")
    result = CliRunner().invoke(main, ["run", str(weights), "--hardware", "paper", "--limit", "5",
                                       "--set", "device.read_clip=bogus"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xbar: error: ") and "device.read_clip" in lines[0], lines


def test_mapping_schemes_other_than_analog_pairs_clip_each_device(rng):
    """Digital subtraction and the offset scheme: each ADC input's own devices decide its fallback."""
    kernel = rng.standard_normal((6, 3)).astype(np.float32)
    for mapping in (Mapping(subtract=Subtract.DIGITAL), Mapping(scheme=MappingScheme.OFFSET)):
        hw = Hardware(device=Device(read_sigma=0.05, read_clip="zero"), mapping=mapping, tile=Tile(4, 4))
        matrix = AnalogMatrix(kernel, None, hw, InputRange(1.0, False), 2, 0)
        inputs = matrix.array.inputs_per_tile
        assert set(matrix.array.binds) == {(0, t, o) for t in range(2) for o in range(inputs)}
