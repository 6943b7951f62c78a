"""Analytic energy per inference from the operation counts of a programmed chip.

E per inference = sum over array reads of [E_read_fixed + rows driven x E_row
+ conversions x E_adc(bits) + sum over cells (x_i V_read)^2 G_ij t_read]
+ neuron activations x E_neuron + digital additions x E_add  (DESIGN.md section 4).

E_adc(bits) = FOM x 2^bits: a SAR ADC at constant Walden figure of merit.
Counts come from the chip itself (:meth:`xbar.crossbar.ProgrammedNetwork.operation_counts`:
tiles, slices, subtraction scheme, bias mode), so every hardware choice that
changes them changes the energy. Only the cells' read energy depends on the
data (through the inputs x); every other part depends on the network and the
hardware alone. Constants: docs/energy.md.
"""

from __future__ import annotations

from .config import Hardware
from .crossbar.counts import ChipCounts, LayerCounts

PARTS = ("array", "dac", "adc", "neurons", "digital", "wires")
"""array: fixed cost per read plus the cells' read energy; dac: driven rows; adc: conversions;
neurons: hidden activations; digital: additions after the ADC; wires: I^2 R in the row and column wires, the
drivers' and the sense amplifiers' resistances (0 for ideal wires; docs/parasitics.md)."""


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
        "wires": counts.wire_x2g_us * 1e-6 * v_read**2 * e.t_read_ns * 1e-9,
    }


def energy_report(counts: ChipCounts, hw: Hardware) -> dict:
    """Energy per inference (J) of a chip of ``hw`` that did ``counts``: total, by part, by layer. JSON-ready."""
    layers = []
    by_part = dict.fromkeys(PARTS, 0.0)
    for layer in counts.layers:
        parts = layer_energy(layer, hw)
        for part, value in parts.items():
            by_part[part] += value
        layers.append(
            {"layer": layer.name, "total_j": sum(parts.values()), "parts_j": parts, "counts": layer.as_dict()}
        )
    return {"total_j": sum(by_part.values()), "parts_j": by_part, "layers": layers}
