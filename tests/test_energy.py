"""The energy model: hand-counted operations, Table III, and properties."""

from dataclasses import replace

import numpy as np
import pytest

from xbar import data
from xbar.config import ADC, DAC, Energy, Hardware, Mapping, Subtract, Tile, resolve
from xbar.crossbar import program
from xbar.energy import PARTS, energy_report
from xbar.energy_check import paper_counts, table3
from xbar.nets import Network, build
from xbar.nets.layers import Dense, Flatten

ROUND_ENERGY = Energy(read_fixed_pj=100.0, row_pj=1.0, adc_fom_fj=10.0, t_read_ns=5.0, neuron_fj=50.0,
                      add_fj=30.0)


def _tiny_network(rng):
    layers = [Flatten(), Dense(kernel=rng.standard_normal((784, 7)).astype(np.float32),
                               bias=rng.standard_normal(7).astype(np.float32), activation="brelu"),
              Dense(kernel=rng.standard_normal((7, 10)).astype(np.float32), bias=None, activation="linear")]
    return Network("tiny", "mnist", (28, 28, 1), 10, layers)


def _run(network, hw, n=3, seed=0):
    images, _ = data.load("mnist", "test", limit=n)
    chip = program(network, hw, seed, images)
    chip.forward(images, 0)
    return chip, n


@pytest.mark.parametrize("subtract, operands", [(Subtract.ANALOG, 1), (Subtract.DIGITAL, 2)])
def test_counts_of_a_small_network_by_hand(subtract, operands, rng):
    hw = Hardware(tile=Tile(300, 3), dac=DAC(bits=4, input_slices=2), adc=ADC(bits=6),
                  mapping=Mapping(subtract=subtract), energy=ROUND_ENERGY)
    chip, n = _run(_tiny_network(rng), hw)
    first, second = chip.operation_counts().layers
    # Layer 1: 784 rows -> row tiles 300, 300, 184; 7 columns -> column tiles 3, 3, 1; 2 input slices.
    assert first.vectors == 1
    assert first.array_reads == 2 * 3 * 3
    assert first.rows_driven == 2 * 784 * 3
    assert first.conversions == 2 * 3 * operands * 7
    assert first.digital_adds == 7 * (2 * 3 * operands - 1) + 7  # partial sums, then the digital bias
    assert first.neuron_activations == 7 and first.adc_bits == 6
    # Layer 2: 7 rows (one row tile), 10 columns -> 4 column tiles; no bias; logits count no neuron.
    assert (second.array_reads, second.rows_driven, second.conversions) == (2 * 4, 2 * 7 * 4, 2 * operands * 10)
    assert second.digital_adds == 10 * (2 * operands - 1) and second.neuron_activations == 0
    # Energy from those counts, by hand.
    parts = energy_report(chip.operation_counts(), hw)["layers"][1]["parts_j"]
    assert parts["dac"] == pytest.approx(2 * 7 * 4 * 1e-12)
    assert parts["adc"] == pytest.approx(2 * operands * 10 * 10e-15 * 2**6)
    assert parts["digital"] == pytest.approx(10 * (2 * operands - 1) * 30e-15)


def test_conv_and_mosaic_vectors_per_image():
    hw = replace(resolve("paper"), energy=ROUND_ENERGY)
    chip, n = _run(build("cnn", seed=0), hw)
    counts = chip.operation_counts().layers
    assert [c.vectors for c in counts] == [784, 784, 196, 196, 1, 1]
    assert sum(c.array_reads for c in counts) == 1962  # NOTES.md: 1,962 small VMMs per image
    assert sum(c.neuron_activations for c in counts) == 28 * 28 * 3 * 2 + 14 * 14 * 6 * 2 + 100
    chip, n = _run(build("rnn", timesteps=7, seed=0), hw)
    core, readout = chip.operation_counts().layers
    assert (core.vectors, core.rows_driven, core.conversions) == (7, 7 * 301, 7 * 400)
    assert core.neuron_activations == 189 * 7 and readout.rows_driven == 401


def test_table_iii_reproduced(shipped_weights):
    rows = table3(paper_counts(shipped_weights, n_images=100))
    assert len(rows) == 6
    for row in rows:
        assert abs(row["relative_difference"]) < 0.10, row
        assert round(row["neurons_j"] * 1e12) == round(row["paper_neurons_j"] * 1e12), row


def test_energy_positive_and_additive_over_layers_and_parts(rng):
    chip, n = _run(build("cnn", seed=1), resolve("sonos"))
    report = energy_report(chip.operation_counts(), chip.hw)
    assert report["total_j"] > 0 and all(v >= 0 for v in report["parts_j"].values())
    assert report["total_j"] == pytest.approx(sum(layer["total_j"] for layer in report["layers"]))
    assert report["total_j"] == pytest.approx(sum(report["parts_j"].values()))
    for part in PARTS:
        assert report["parts_j"][part] == pytest.approx(sum(layer["parts_j"][part] for layer in report["layers"]))


@pytest.mark.parametrize("key, values", [
    ("adc.bits", [2, 4, 6, 8, 10]),
    ("dac.input_slices", [1, 2, 4, 8]),
    ("mapping.weight_slices", [1, 2, 3]),
])
def test_energy_grows_with_bits_and_slices(key, values):
    network = build("mlp", hidden=20, seed=2)
    totals = []
    for value in values:
        hw = resolve("reram", [f"{key}={value}", "device.levels=4", "dac.bits=8"])
        chip, n = _run(network, hw)
        totals.append(energy_report(chip.operation_counts(), hw)["total_j"])
    assert all(b > a for a, b in zip(totals, totals[1:])), totals


def test_only_the_cells_energy_depends_on_the_data():
    network = build("mlp", hidden=20, seed=3)
    hw = resolve("sonos")
    images, _ = data.load("mnist", "test", limit=40)
    reports = []
    for batch in (images[:20], images[20:]):
        chip = program(network, hw, 0, images[:8])
        chip.forward(batch, 0)
        assert chip.operation_counts().n_images == len(batch)
        reports.append(energy_report(chip.operation_counts(), hw))
    a, b = reports
    for part in ("dac", "adc", "neurons", "digital"):
        assert a["parts_j"][part] == b["parts_j"][part]
    assert a["parts_j"]["array"] != b["parts_j"]["array"]
    fresh = program(network, hw, 0, images[:8])
    # Nothing counted before inference: calibration is not charged.
    assert fresh.images_read == 0 and all(r.vectors == 0 and r.cell_x2g_us == 0 for r in fresh.reads)
    with pytest.raises(ValueError):
        fresh.operation_counts()


def test_run_json_carries_energy(shipped_weights):
    import json

    from click.testing import CliRunner

    from xbar.cli import main

    result = CliRunner().invoke(main, ["run", str(shipped_weights / "mlp-mnist.h5"), "--hardware", "paper",
                                       "--limit", "100", "--json"])
    report = json.loads(result.stdout)
    assert report["energy_per_inference_j"] == pytest.approx(4.24e-9, rel=0.1)
    assert set(report["energy_breakdown"]) == set(PARTS)
    result = CliRunner().invoke(main, ["energy", str(shipped_weights / "rnn-mnist-t7.h5"), "--hardware", "sonos",
                                       "--images", "20", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_j"] > 0
