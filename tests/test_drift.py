"""Conductance drift and its compensation (adc.drift_compensation), against closed forms and plain reads."""

import math
from dataclasses import replace

import numpy as np
import pytest

from xbar.config import ADC, DAC, BiasMode, Device, DriftCompensation, Hardware, Mapping, MappingScheme, Tile, resolve
from xbar.crossbar import AnalogMatrix, InputRange, program
from xbar.crossbar.compensation import output_scales
from xbar.nets import Dense, Network

N_IN, N_OUT = 37, 9
T0_S, READ_S, NU = 20.0, 3600.0, 0.05


def _hardware(compensation="none", nu_std=0.0, read_time_s=READ_S, **device) -> Hardware:
    """A differential chip with ideal converters, two row tiles, programming error, and drift."""
    dev = Device(
        g_min_us=0.5,
        g_max_us=25.0,
        prog_sigma=0.02,
        drift_nu_mean=NU,
        drift_nu_std=nu_std,
        drift_t0_s=T0_S,
        read_time_s=read_time_s,
        **device,
    )
    return Hardware(
        device=dev,
        mapping=Mapping(scheme=MappingScheme.DIFFERENTIAL),
        adc=ADC(drift_compensation=DriftCompensation(compensation)),
        tile=Tile(rows=16, cols=256),
    )


def _matrix(hw, kernel, bias, reference=None, seed=3):
    return AnalogMatrix(kernel, bias, hw, InputRange(1.0, False), seed, 0, reference)


@pytest.fixture
def layer(rng):
    kernel = rng.normal(0, 0.3, (N_IN, N_OUT)).astype(np.float32)
    bias = rng.normal(0, 0.1, N_OUT).astype(np.float32)
    x = rng.random((50, N_IN), dtype=np.float32)
    return kernel, bias, x


def test_uniform_drift_is_undone_exactly_by_global_compensation(layer):
    """With every device drifting by the same factor (t / t0)^-nu, G+ - G- scales by it (the bias is digital
    and does not drift); the global scale is its inverse, so the compensated chip reads what the chip read at
    t0, to float32 rounding."""
    kernel, bias, x = layer
    at_t0 = _matrix(_hardware(read_time_s=T0_S), kernel, bias)
    drifted = _matrix(_hardware(), kernel, bias)
    compensated = _matrix(_hardware("global"), kernel, bias, reference=x)
    factor = (READ_S / T0_S) ** -NU
    y0, yt, yc = at_t0(x), drifted(x), compensated(x)
    assert compensated.output_scale == pytest.approx(np.full(N_OUT, 1 / factor), rel=1e-5)
    np.testing.assert_allclose(yt - bias, factor * (y0 - bias), rtol=1e-4, atol=1e-5 * np.abs(y0).max())
    np.testing.assert_allclose(yc, y0, rtol=1e-4, atol=1e-5 * np.abs(y0).max())
    assert np.abs(yt - y0).max() > 0.1 * np.abs(y0).max()  # the drift itself is large: 23% at one hour


@pytest.mark.parametrize("mode", ["global", "column"])
def test_scales_are_the_ratio_of_calibration_reads(layer, mode):
    """alpha from plain reads of the known inputs at t0 and at t (device-to-device nu: no closed form): the ratio
    of magnitudes (global) or the least-squares fit per column; and the compensated chip reads alpha times the
    drifted chip's analog output (here all analog: bias row)."""
    kernel, _, x = layer
    reference = x[:20]
    hw = replace(_hardware(nu_std=0.02), mapping=Mapping(scheme=MappingScheme.DIFFERENTIAL, bias=BiasMode.ROW))
    bias = np.linspace(-0.2, 0.2, N_OUT).astype(np.float32)
    at_t0 = _matrix(replace(hw, device=replace(hw.device, drift_nu_mean=0.0, drift_nu_std=0.0)), kernel, bias)
    drifted = _matrix(hw, kernel, bias)
    compensated = _matrix(replace(hw, adc=ADC(drift_compensation=DriftCompensation(mode))), kernel, bias, reference)
    before, now = at_t0(reference).astype(np.float64), drifted(reference).astype(np.float64)
    if mode == "global":
        alpha = np.full(N_OUT, np.abs(before).sum() / np.abs(now).sum())
    else:  # least squares per column
        alpha = np.array([before[:, j] @ now[:, j] / (now[:, j] @ now[:, j]) for j in range(N_OUT)])
    np.testing.assert_allclose(compensated.output_scale, alpha, rtol=1e-5)
    y = drifted(x)
    np.testing.assert_allclose(compensated(x), y * alpha.astype(np.float32), rtol=1e-5, atol=1e-6 * np.abs(y).max())
    if mode == "column":
        assert np.ptp(alpha) > 0.01  # devices drift differently: the columns' scales differ


def test_scales_without_drift_or_outputs():
    """No drift: alpha = 1; a column whose outputs are all zero keeps alpha = 1; none gives no scale."""
    x = np.ones((4, 3))
    weights = np.array([[1.0, 0.0], [2.0, 0.0], [0.5, 0.0]])
    same = output_scales(DriftCompensation.COLUMN, x, (weights, None), (weights, None))
    assert same.tolist() == [1.0, 1.0]
    halved = output_scales(DriftCompensation.GLOBAL, x, (weights, None), (weights / 2, None))
    assert halved.tolist() == [2.0, 2.0]
    # A column whose read flipped sign is restored by the least-squares alpha -2; a ratio of magnitudes
    # would give +2 and keep the wrong sign.
    flipped = output_scales(DriftCompensation.COLUMN, x, (weights, None), (-weights / 2, None))
    assert flipped.tolist()[0] == -2.0 and flipped.tolist()[1] == 1.0
    assert output_scales(DriftCompensation.NONE, x, (weights, None), (weights, None)) is None


def test_compensation_is_counted_as_one_digital_operation_per_output(layer):
    kernel, bias, x = layer
    plain = _matrix(_hardware(), kernel, bias).counts_per_vector()
    compensated = _matrix(_hardware("global"), kernel, bias, reference=x).counts_per_vector()
    assert compensated["digital_adds"] == plain["digital_adds"] + N_OUT
    assert {k: v for k, v in compensated.items() if k != "digital_adds"} == {
        k: v for k, v in plain.items() if k != "digital_adds"
    }


def test_no_drift_means_no_compensation_and_same_bits(layer):
    """A chip that does not drift has no output scale: its reads are the uncompensated chip's, bit for bit."""
    kernel, bias, x = layer
    still = replace(_hardware("column").device, drift_nu_mean=0.0)
    hw = replace(_hardware("column"), device=still, dac=DAC(bits=6))
    plain = replace(hw, adc=ADC())
    compensated = _matrix(hw, kernel, bias, reference=x)
    assert compensated.output_scale is None
    assert np.array_equal(compensated(x), _matrix(plain, kernel, bias)(x))


def test_pcm_chip_recovers_with_global_compensation(rng):
    """End to end through program(): a small network on the pcm preset read after one hour with identical
    drift exponents (nu_std 0) gives, compensated, the logits of the chip read at t0 (float32 rounding)."""
    kernel = rng.normal(0, 0.2, (20, 10)).astype(np.float32)
    network = Network("toy", "synthetic", (20,), 10, [Dense(kernel=kernel, bias=None, activation="linear")])
    x = rng.random((64, 20), dtype=np.float32)
    pcm = resolve("pcm", ["device.drift_nu_std=0", "dac.bits=0", "adc.bits=0"])
    t0 = resolve("pcm", ["device.drift_nu_std=0", "dac.bits=0", "adc.bits=0", f"device.read_time_s={20.0}"])
    compensated = replace(pcm, adc=replace(pcm.adc, drift_compensation=DriftCompensation.GLOBAL))
    y0 = program(network, t0, 1, x).forward(x)
    yt = program(network, pcm, 1, x).forward(x)
    yc = program(network, compensated, 1, x).forward(x)
    scale = np.abs(y0).max()
    assert np.abs(yt - y0).max() > 0.05 * scale
    np.testing.assert_allclose(yc, y0, rtol=1e-4, atol=1e-5 * scale)
    assert math.isfinite(float(yc.sum()))


def test_scale_acts_after_the_adc_in_the_converter_path(layer):
    """With real converters (no linear fold) the scale multiplies the ADC's digital output: the compensated
    chip's analog part is alpha times the uncompensated chip's, the digital bias added after."""
    kernel, bias, x = layer
    hw = replace(_hardware(nu_std=0.02), dac=DAC(bits=6))
    hw = replace(hw, adc=ADC(bits=8))
    drifted = _matrix(hw, kernel, bias)
    compensated = _matrix(replace(hw, adc=ADC(bits=8, drift_compensation=DriftCompensation.COLUMN)), kernel, bias, x)
    assert drifted.linear is None and compensated.linear is None
    alpha = compensated.output_scale
    assert alpha is not None and np.ptp(alpha) > 0.01
    expected = (drifted(x) - bias) * alpha + bias
    np.testing.assert_allclose(compensated(x), expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_known_inputs_are_those_each_read_saw_even_from_a_reused_buffer():
    """The Mosaic core feeds its product the same buffer at every step: the recorder keeps each step's values
    (for the DAC range and the compensation's known inputs), not the last step's many times."""
    from xbar.crossbar.periphery import InputRecorder

    recorder = InputRecorder(lambda z: z)
    buffer = np.zeros((2, 3), np.float32)
    for step in range(3):
        buffer[:] = step + 1
        recorder(buffer)
    assert [float(x.max()) for x in recorder.inputs] == [1.0, 2.0, 3.0]
    assert recorder.reference_inputs().tolist() == [[1.0] * 3] * 2 + [[2.0] * 3] * 2 + [[3.0] * 3] * 2
