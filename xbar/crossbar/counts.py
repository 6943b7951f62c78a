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
    """Sum over reads and cells of x_i^2 G_ij (x in units of V_read, G in uS)."""
    digital_adds: float
    """Additions after the ADC: partial sums of tiles and slices, the digital bias, the offset reference."""
    neuron_activations: float
    """Hidden activations (the layer kind says which count)."""

    def as_dict(self) -> dict:
        """The counts without the name, JSON-ready."""
        return {k: v for k, v in asdict(self).items() if k != "name"}


@dataclass(frozen=True)
class ChipCounts:
    """Per-inference operation counts of every weight layer of a chip, over ``n_images`` images."""

    n_images: int
    layers: tuple[LayerCounts, ...]
