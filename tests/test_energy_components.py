"""The cited-component energy model, the out-of-sample fit of the calibrated one, and energy.model."""

from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from xbar import data, io
from xbar.cli import main
from xbar.config import ADC, DAC, PRESETS, ConfigError, Energy, Hardware, Mapping, Subtract, Tile, load_toml, resolve
from xbar.crossbar import program
from xbar.crossbar.counts import ChipCounts, LayerCounts
from xbar.energy import COMPONENTS, energy_report
from xbar.energy_check import coefficients, fit, predict, values_of
from xbar.nets import Network
from xbar.nets.layers import Dense, Flatten


def _tiny_chip(rng, hw):
    layers = [Flatten(), Dense(kernel=rng.standard_normal((784, 7)).astype(np.float32),
                               bias=rng.standard_normal(7).astype(np.float32), activation="brelu"),
              Dense(kernel=rng.standard_normal((7, 10)).astype(np.float32), bias=None, activation="linear")]
    images, _ = data.load("mnist", "test", limit=3)
    chip = program(Network("tiny", "mnist", (28, 28, 1), 10, layers), hw, 0, images)
    chip.forward(images, 0)
    return chip


def test_calibrated_is_the_default_and_unchanged():
    assert Energy().model == "calibrated"
    for name in ("reram", "sonos", "paper", "pcm"):
        assert PRESETS[name].energy.model == "calibrated"
    # The calibrated constants of docs/energy.md, as they were.
    assert (PRESETS["reram"].energy.read_fixed_pj, PRESETS["reram"].energy.row_pj,
            PRESETS["reram"].energy.adc_fom_fj, PRESETS["reram"].energy.t_read_ns) == (199.0, 0.0616, 46.6, 2.0)
    assert (PRESETS["sonos"].energy.read_fixed_pj, PRESETS["sonos"].energy.row_pj,
            PRESETS["sonos"].energy.adc_fom_fj, PRESETS["sonos"].energy.t_read_ns) == (1012.0, 0.234, 47.2, 10.0)


def test_components_energy_of_a_tiny_chip_by_hand(rng):
    hw = Hardware(device=replace(PRESETS["reram"].device, prog_sigma=0.0), tile=Tile(300, 3),
                  dac=DAC(bits=4, input_slices=2), adc=ADC(bits=6), mapping=Mapping(subtract=Subtract.DIGITAL),
                  energy=replace(PRESETS["reram"].energy, model="components"))
    chip = _tiny_chip(rng, hw)
    counts = chip.operation_counts()
    report = energy_report(counts, hw)
    # The cited constants, written out: Kull et al. ISSCC 2013 (3.1 mW at 1.2 GS/s, 8 bits), ISAAC's DAC
    # (4 mW for 1,024 drivers at one 100 ns read) and read time, no fixed cost, 50 fJ neurons, 0.1 pJ adds.
    e_conv_8b_j, e_row_j, t_read_s = 3.1e-3 / 1.2e9, 4e-3 * 100e-9 / 1024, 100e-9
    assert (COMPONENTS.read_fixed_pj, COMPONENTS.neuron_fj, COMPONENTS.add_fj) == (0.0, 50.0, 100.0)
    v2 = 0.1**2
    expected = dict.fromkeys(report["parts_j"], 0.0)
    for layer in counts.layers:
        expected["array"] += layer.cell_x2g_us * 1e-6 * v2 * t_read_s
        expected["dac"] += layer.rows_driven * e_row_j
        expected["adc"] += layer.conversions * e_conv_8b_j * 2.0 ** (layer.adc_bits - 8)
        expected["neurons"] += layer.neuron_activations * 50e-15
        expected["digital"] += layer.digital_adds * 0.1e-12
    # Counts of test_energy's hand count: 784 -> 7 on 300 x 3 tiles, 2 input slices, pair halves converted apart.
    assert sum(c.rows_driven for c in counts.layers) == 2 * 784 * 3 + 2 * 7 * 4
    assert sum(c.conversions for c in counts.layers) == 2 * 3 * 2 * 7 + 2 * 2 * 10
    for part, value in expected.items():
        assert report["parts_j"][part] == pytest.approx(value, rel=1e-12, abs=1e-30), part
    assert report["total_j"] == pytest.approx(sum(expected.values()), rel=1e-12)
    # The calibrated model prices the same counts differently: the switch acts.
    calibrated = energy_report(counts, replace(hw, energy=replace(hw.energy, model="calibrated")))
    assert calibrated["total_j"] != pytest.approx(report["total_j"], rel=1e-3)


def _synthetic(name, reads, rows, conversions, bits, x2g, neurons, adds, wire=0.0):
    layer = LayerCounts(name=name, vectors=1.0, array_reads=reads, rows_driven=rows, conversions=conversions,
                        adc_bits=bits, cell_x2g_us=x2g, digital_adds=adds, neuron_activations=neurons,
                        wire_x2g_us=wire)
    return ChipCounts(n_images=1, layers=(layer,))


def test_out_of_sample_fit_recovers_known_constants_exactly():
    truth = Energy(read_fixed_pj=123.0, row_pj=0.5, adc_fom_fj=37.0, t_read_ns=4.0, neuron_fj=50.0, add_fj=30.0)
    hw = Hardware(energy=truth)
    nets = [_synthetic("a", 2, 1086, 310, 8, 3e6, 300, 12, wire=1e4),
            _synthetic("b", 8, 2508, 2810, 8, 1.2e7, 1323, 0),
            _synthetic("c", 1962, 47338, 7166, 6, 3.2e6, 7156, 500)]
    coefs = [coefficients(c, hw) for c in nets]
    totals = [energy_report(c, hw)["total_j"] for c in nets]
    for coef, total in zip(coefs, totals):  # the linear form is the model
        assert predict(coef, values_of(truth)) == pytest.approx(total, rel=1e-13)
    # Every other constant held at the truth (the row cost too), the fixed cost and the FOM fitted on two
    # networks predict the third exactly.
    for held in range(3):
        train = [i for i in range(3) if i != held]
        fitted = fit([coefs[i] for i in train], [totals[i] for i in train], values_of(truth))
        assert fitted["read_fixed_pj"] == pytest.approx(123.0, rel=1e-9)
        assert fitted["adc_fom_fj"] == pytest.approx(37.0, rel=1e-9)
        assert predict(coefs[held], fitted) == pytest.approx(totals[held], rel=1e-9)
    # A wrong held constant shows up as a prediction error, not as a silent fit.
    wrong = {**values_of(truth), "row_pj": 5.0}
    fitted = fit(coefs[:2], totals[:2], wrong)
    assert abs(predict(coefs[2], fitted) / totals[2] - 1) > 0.01


@pytest.mark.parametrize("model", ["bogus", "Components", ""])
def test_unknown_energy_model_is_a_one_line_error(model):
    with pytest.raises(ConfigError, match="energy.model must be one of calibrated, components") as info:
        resolve("reram", [f"energy.model={model}"])
    assert "\n" not in str(info.value)


def test_energy_model_from_toml_and_set(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('preset = "sonos"\n[energy]\nmodel = "components"\n')
    assert load_toml(path).energy.model == "components"
    assert resolve("reram", ["energy.model=components"]).energy.model == "components"
    path.write_text('preset = "sonos"\n[energy]\nmodel = "bogus"\n')
    with pytest.raises(ConfigError, match="energy.model must be one of"):
        load_toml(path)


def test_cli_energy_model_bogus_one_line(tmp_path, shipped_weights):
    result = CliRunner().invoke(main, ["energy", str(shipped_weights / "mlp-mnist.h5"), "--hardware", "reram",
                                       "--set", "energy.model=bogus", "--images", "2"])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "energy.model" in result.stderr


def test_components_model_on_a_shipped_network(shipped_weights):
    hw = replace(resolve("paper"), energy=replace(PRESETS["reram"].energy, model="components"))
    images, _ = data.load("mnist", "test", limit=5)
    chip = program(io.load(shipped_weights / "mlp-mnist.h5"), hw, 0, images)
    chip.forward(images, 0)
    report = energy_report(chip.operation_counts(), hw)
    # MLP in one array per layer: 785 + 301 rows, 300 + 10 conversions, no fixed cost.
    assert report["parts_j"]["dac"] == pytest.approx(1086 * COMPONENTS.row_pj * 1e-12)
    assert report["parts_j"]["adc"] == pytest.approx(310 * 3.1e-3 / 1.2e9)
    assert report["parts_j"]["neurons"] == pytest.approx(300 * 50e-15)
