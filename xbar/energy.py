"""Analytic energy per inference from the operation counts of a programmed network.

E per inference = sum over array reads of [E_read_fixed + rows driven x E_row
+ conversions x E_adc(bits) + sum over cells (x_i V_read)^2 G_ij t_read]
+ neuron activations x E_neuron + digital additions x E_add  (DESIGN.md section 4).

E_adc(bits) = FOM x 2^bits: a SAR ADC at constant Walden figure of merit.
Counts come from the chip itself (tiles, slices, subtraction scheme, bias
mode), so every hardware choice that changes them changes the energy. Only the
cells' read energy depends on the data (through the inputs x); every other part
depends on the network and the hardware alone. Constants: docs/energy.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from . import data, io
from .config import PRESETS, BiasMode, Hardware, Tile
from .crossbar import ProgrammedNetwork, program
from .nets.layers import Mosaic

PARTS = ("array", "dac", "adc", "neurons", "digital")
"""array: fixed cost per read plus the cells' read energy; dac: driven rows; adc: conversions;
neurons: hidden activations; digital: additions after the ADC."""


@dataclass(frozen=True)
class LayerCounts:
    """Operations of one weight layer for one inference (mean over the images run)."""

    name: str
    vectors: float
    """Input vectors applied (conv output pixels, Mosaic steps, 1 for dense)."""
    array_reads: float
    rows_driven: float
    conversions: float
    adc_bits: int
    cell_x2g_us: float
    """Sum over reads and cells of x_i^2 G_ij (x in units of V_read, G in uS)."""
    digital_adds: float
    neuron_activations: float


def neuron_activations(layer, output_shape: tuple[int, ...]) -> int:
    """Hidden bounded-ReLU activations of one layer per inference.

    Dense and conv: every output. Mosaic: the D_hl fed-back neurons at each of
    the t steps, as the paper counts them (189 x 7 = 1,323 at t = 7: its 66 pJ).
    The logits (linear) count none.
    """
    if layer.activation != "brelu":
        return 0
    if isinstance(layer, Mosaic):
        return layer.feedback * layer.timesteps
    total = 1
    for d in output_shape:
        total *= d
    return total


def count_operations(chip: ProgrammedNetwork, n_images: int) -> list[LayerCounts]:
    """Per-inference operation counts of each weight layer, from what ``chip`` did on ``n_images`` images."""
    if n_images < 1:
        raise ValueError("count_operations needs at least one image run through the chip")
    network = chip.network
    out_shapes = {id(layer): shape for layer, shape in zip(network.layers, network.shapes[1:])}
    counts = []
    for index, (layer, matrix) in enumerate(zip(network.weight_layers, chip.matrices)):
        vectors = matrix.vectors_read / n_images
        per_vector = matrix.counts_per_vector()
        bits = chip.hw.adc.bits or chip.hw.energy.nominal_bits
        counts.append(LayerCounts(
            name=f"{index:02d}_{layer.kind}",
            vectors=vectors,
            array_reads=vectors * per_vector["array_reads"],
            rows_driven=vectors * per_vector["rows_driven"],
            conversions=vectors * per_vector["conversions"],
            adc_bits=bits,
            cell_x2g_us=matrix.cell_x2g_sum / n_images,
            digital_adds=vectors * per_vector["digital_adds"],
            neuron_activations=neuron_activations(layer, out_shapes[id(layer)]),
        ))
    return counts


def layer_energy(counts: LayerCounts, hw: Hardware) -> dict[str, float]:
    """Energy of one layer per inference by part (J)."""
    e, v_read = hw.energy, hw.device.v_read_v
    cells_j = counts.cell_x2g_us * 1e-6 * v_read**2 * e.t_read_ns * 1e-9
    return {
        "array": counts.array_reads * e.read_fixed_pj * 1e-12 + cells_j,
        "dac": counts.rows_driven * e.row_pj * 1e-12,
        "adc": counts.conversions * e.adc_fom_fj * 2.0**counts.adc_bits * 1e-15,
        "neurons": counts.neuron_activations * e.neuron_fj * 1e-15,
        "digital": counts.digital_adds * e.add_fj * 1e-15,
    }


def energy_report(chip: ProgrammedNetwork, n_images: int) -> dict:
    """Energy per inference (J): total, by part, by layer (with its counts). JSON-ready."""
    layers = []
    by_part = dict.fromkeys(PARTS, 0.0)
    for counts in count_operations(chip, n_images):
        parts = layer_energy(counts, chip.hw)
        for part, value in parts.items():
            by_part[part] += value
        layers.append({"layer": counts.name, "total_j": sum(parts.values()), "parts_j": parts,
                       "counts": {k: v for k, v in counts.__dict__.items() if k != "name"}})
    return {"total_j": sum(by_part.values()), "parts_j": by_part, "layers": layers}


#: The paper's Table III: energy per inference (J), total and neurons.
PAPER_TABLE3 = {
    ("mlp", "reram"): (4.24e-9, 15e-12), ("rnn", "reram"): (35.6e-9, 66e-12),
    ("cnn", "reram"): (480e-9, 358e-12), ("mlp", "sonos"): (6.04e-9, 15e-12),
    ("rnn", "sonos"): (42.7e-9, 66e-12), ("cnn", "sonos"): (2.084e-6, 358e-12),
}


def paper_layout(hw: Hardware) -> Hardware:
    """``hw`` with the paper's layouts: every layer one array (2048 x 2048 tiles), the bias as a row."""
    return replace(hw, tile=Tile(2048, 2048), mapping=replace(hw.mapping, bias=BiasMode.ROW))


def table3(weights_dir, n_images: int = 200) -> list[dict]:
    """Our Table III beside the paper's: the shipped MNIST networks in the paper's layouts.

    Returns one dict per (network, technology) with our total, VMM (total less
    neurons) and neuron energies and the paper's total and neurons (J), and the
    relative difference of the totals.
    """
    images, _ = data.load("mnist", "test", limit=n_images)
    names = {"mlp": "mlp-mnist.h5", "rnn": "rnn-mnist-t7.h5", "cnn": "cnn-mnist.h5"}
    rows = []
    for tech in ("reram", "sonos"):
        hw = paper_layout(PRESETS[tech])
        for arch, name in names.items():
            network = io.load(Path(weights_dir) / name)
            chip = program(network, hw, 0, images[:hw.calibration_images])
            chip.forward(images, 0)
            report = energy_report(chip, len(images))
            paper_total, paper_neurons = PAPER_TABLE3[(arch, tech)]
            neurons = report["parts_j"]["neurons"]
            rows.append({"system": f"{arch.upper()} {tech.upper()}", "total_j": report["total_j"],
                         "vmm_j": report["total_j"] - neurons, "neurons_j": neurons,
                         "paper_total_j": paper_total, "paper_neurons_j": paper_neurons,
                         "relative_difference": report["total_j"] / paper_total - 1})
    return rows
