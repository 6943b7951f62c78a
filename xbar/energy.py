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

from dataclasses import dataclass, fields, replace

from .config import Energy, Hardware
from .crossbar.counts import ChipCounts, LayerCounts

PARTS = ("array", "dac", "adc", "neurons", "digital", "wires")
"""array: fixed cost per read plus the cells' read energy; dac: driven rows; adc: conversions;
neurons: hidden activations; digital: additions after the ADC; wires: I^2 R in the row and column wires, the
drivers' and the sense amplifiers' resistances (0 for ideal wires; docs/parasitics.md)."""


@dataclass(frozen=True)
class ComponentConstants:
    """Per-component constants taken from published sources, none fitted (``energy.model = "components"``).

    Sources (docs/energy.md lists them with what was read; "from memory" marks a value not re-checked
    against the publication here):

    - ``adc_fom_fj``: the 8-bit SAR ADC of L. Kull et al., "A 3.1 mW 8b 1.2 GS/s single-channel
      asynchronous SAR ADC with alternate comparators for enhanced speed in 32 nm digital SOI CMOS",
      ISSCC 2013, pp. 468-469 (doi:10.1109/ISSCC.2013.6487818), an ISSCC entry of B. Murmann's "ADC
      Performance Survey" (github.com/bmurmann/ADC-survey) and the ADC of ISAAC: P / f_s = 3.1 mW /
      1.2 GS/s = 2.58 pJ per conversion (from its title), which at its Walden figure of merit of about
      34 fJ/conv-step (ENOB about 6.2; from memory) is that FOM x 2^ENOB. In this model's form,
      E_adc = adc_fom_fj x 2^bits, that is 2.58 pJ / 2^8 = 10.1 fJ, scaled by 2^bits at other resolutions.
    - ``row_pj``: ISAAC's row driver (A. Shafiee et al., ISCA 2016, doi:10.1109/ISCA.2016.12, Table I,
      from memory): 4 mW for the 8 x 128 1-bit DACs of an in-situ multiply-accumulate unit at one
      100 ns crossbar read, 4 mW x 100 ns / 1024 = 0.39 pJ per row drive (the hwcomponents-library
      port of ISAAC derives 0.33-0.42 pJ from the same table). One drive per row per read, as our
      counts charge it; an 8-bit input applied bit-serially as in ISAAC would cost 8 drives.
    - ``t_read_ns``: ISAAC's 100 ns crossbar read (from memory); it sets the cells' energy
      (x V_read)^2 G t_read, with V_read and G from the device presets.
    - ``read_fixed_pj``: 0. No published fixed per-read periphery cost for these arrays was available
      to cite (sensing is inside the ADC's figure; precharge and control are not counted).
    - ``neuron_fj``: 50 fJ per bounded-ReLU activation, the paper's own figure (its reference [18]).
    - ``add_fj``: a 32-bit integer add at 45 nm, 0.1 pJ (M. Horowitz, "Computing's energy problem (and
      what we can do about it)", ISSCC 2014, doi:10.1109/ISSCC.2014.6757323): partial sums of 8-bit
      conversions across tiles and slices need more than 16 bits.
    """

    read_fixed_pj: float = 0.0
    row_pj: float = 4e-3 * 100e-9 / (8 * 128) * 1e12
    adc_fom_fj: float = 3.1e-3 / 1.2e9 / 2**8 * 1e15
    t_read_ns: float = 100.0
    neuron_fj: float = 50.0
    add_fj: float = 100.0


COMPONENTS = ComponentConstants()
"""The cited constants of the ``components`` energy model (the same for every technology: the device
enters through V_read and G of its preset)."""


def constants(energy: Energy) -> Energy:
    """The constants that price the counts: ``energy`` itself for the calibrated model, else ``energy``
    with the fields of :data:`COMPONENTS` in place of its own."""
    if energy.model == "calibrated":
        return energy
    return replace(energy, **{f.name: getattr(COMPONENTS, f.name) for f in fields(COMPONENTS)})


UNITS = {
    "read_fixed_pj": 1e-12,
    "row_pj": 1e-12,
    "adc_fom_fj": 1e-15,
    "t_read_ns": 1e-9,
    "neuron_fj": 1e-15,
    "add_fj": 1e-15,
}
"""SI value of one unit of each constant of :class:`xbar.config.Energy` that prices the counts."""


def layer_terms(counts: LayerCounts, v_read_v: float) -> list[tuple[str, str, float]]:
    """The energy model of one layer as (part, constant, amount) terms: the layer's energy per inference is the
    sum of amount x the constant's value x :data:`UNITS` of it (J). The energy is linear in the constants, so
    the terms serve both :func:`layer_energy` and a fit of the constants (:mod:`xbar.energy_check`)."""
    # The cells' and the wires' sum of x^2 G (uS, inputs normalised to V_read): x 1e-6 V_read^2 is S V^2 (W),
    # times t_read J.
    return [
        ("array", "read_fixed_pj", counts.array_reads),
        ("array", "t_read_ns", counts.cell_x2g_us * 1e-6 * v_read_v**2),
        ("dac", "row_pj", counts.rows_driven),
        ("adc", "adc_fom_fj", counts.conversions * 2.0**counts.adc_bits),
        ("neurons", "neuron_fj", counts.neuron_activations),
        ("digital", "add_fj", counts.digital_adds),
        ("wires", "t_read_ns", counts.wire_x2g_us * 1e-6 * v_read_v**2),
    ]


def layer_energy(counts: LayerCounts, hw: Hardware) -> dict[str, float]:
    """Energy of one layer per inference by part (J): :func:`layer_terms` priced by the hardware's constants."""
    e = constants(hw.energy)
    parts = dict.fromkeys(PARTS, 0.0)
    for part, name, amount in layer_terms(counts, hw.device.v_read_v):
        parts[part] += amount * getattr(e, name) * UNITS[name]
    return parts


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
