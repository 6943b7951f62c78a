"""Operation counts: what a programmed chip did per inference, the only input of the energy model."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LayerCounts:
    """Operations of one weight layer for one inference (mean over the images run)."""

    name: str
    vectors: float
    """Input vectors applied (conv output pixels, Mosaic steps, 1 for dense)."""
    array_reads: float
    """Physical arrays activated (one per tile, weight slice and input slice per vector)."""
    rows_driven: float
    """Rows driven over those arrays."""
    conversions: float
    """ADC conversions."""
    adc_bits: int
    """Resolution the conversions are charged at (the nominal one for an ideal ADC)."""
    cell_x2g_us: float
    """Sum over reads and cells of x_i^2 G_ij (x in units of V_read, G in uS); with resistive wires the devices'
    exact dissipation x^T Q_dev x (docs/parasitics.md)."""
    digital_adds: float
    """Digital operations after the ADC: additions of the partial sums of tiles and slices, the digital bias,
    the offset reference, and the drift compensation's multiplies."""
    neuron_activations: float
    """Hidden activations (the layer kind says which count)."""
    wire_x2g_us: float = 0.0
    """Sum over reads of the wires' dissipation x^T Q_wire x (x in units of V_read; 0 for ideal wires)."""

    def as_dict(self) -> dict:
        """The counts without the name, JSON-ready."""
        return {k: v for k, v in asdict(self).items() if k != "name"}


@dataclass(frozen=True)
class ChipCounts:
    """Per-inference operation counts of every weight layer of a chip, over ``n_images`` images."""

    n_images: int
    layers: tuple[LayerCounts, ...]


def per_vector(
    n_rows: int,
    n_out: int,
    row_tiles: int,
    col_tiles: int,
    weight_slices: int,
    input_slices: int,
    adc_inputs: int,
    digital_bias: bool,
    offset_reference: bool,
    output_scale: bool = False,
) -> dict[str, int]:
    """Operations of one weight layer for one input vector (DESIGN.md section 4; docs/energy.md).

    array_reads: physical arrays activated (one per tile, weight slice and input slice); rows_driven:
    rows driven over those arrays; conversions: ADC conversions (``adc_inputs`` per column and tile
    read); digital_adds: additions after the ADC (partial sums of tiles and slices, the digital
    bias, the offset reference) and the drift compensation's multiply per output (``output_scale``),
    charged as one digital operation.
    """
    passes = weight_slices * input_slices
    partials = passes * row_tiles * adc_inputs
    adds = n_out * (partials - 1) + n_out * (int(digital_bias) + int(offset_reference) + int(output_scale))
    return {
        "array_reads": passes * row_tiles * col_tiles,
        "rows_driven": passes * n_rows * col_tiles,
        "conversions": partials * n_out,
        "digital_adds": adds,
    }
