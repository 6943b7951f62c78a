"""Hardware configuration: frozen dataclasses with units in their names, presets, TOML, overrides.

A :class:`Hardware` holds a :class:`Device`, a :class:`Mapping`, a :class:`DAC`,
an :class:`ADC` and a :class:`Tile`. Conductances are in microsiemens (uS),
voltages in volts, currents in microamperes (uS x V = uA), times in seconds.
Relative widths (``prog_sigma``, ``read_sigma``) scale the error model named by
``prog_model`` / ``read_model`` (:mod:`xbar.device_models`): a fraction of the
conductance range (g_max - g_min) for ``additive``, of G for ``proportional``,
and a scale factor on a published sigma(G) fit for the state-dependent models.

Presets (``PRESETS``) and their sources:

- ``ideal``: every non-ideality off; 256 x 256 tiles. Must equal float inference.
- ``paper``: an otherwise ideal differential-pair crossbar with the bias as a
  row and arrays large enough for every layer of the paper's networks to be one
  array (2048 x 2048), so that only the paper's noise knobs (sigma_syn,
  sigma_te) act; ReRAM's energy constants.
- ``reram``: Milo et al., IRPS 2021 (doi:10.1109/IRPS46558.2021.9405119):
  G in [50, 225] uS, programming sigma_G = -0.009107 G + 4.782 uS; 8-bit DAC
  and ADC, 256 x 256 tiles. The source gives no read-noise figure, so none is set.
- ``sonos``: Agrawal et al., IEDM 2022 (via CrossSim's device files): read at
  0.1 V, I_max = 1600 nA (the low end of the reported 1600-3200 nA, so
  g_max = 16 uS), on/off 1e7; programming sigma_I = 19.89 nA (1 - exp(-I / 176.3 nA)),
  read noise sigma_I = 12.58 nA (1 - exp(-I / 215.4 nA)) at every read; 8-bit converters.
- ``pcm``: Joshi et al., Nature Comm. 2020 (doi:10.1038/s41467-020-16108-9),
  as fitted in IBM aihwkit's PCM noise model: G in [0.25, 25] uS, programming
  sigma = 0.26348 + 1.9650 g - 1.1731 g^2 uS with g = G / 25 uS; drift
  G (t / t0)^-nu with t0 = 20 s, nu ~ N(0.05, 0.02) (approximate), read at t = 1 h.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from ._files import read_text
from .device_models import error_model
from .errors import ConfigError, XbarError


class ReadNoiseMode(str, Enum):
    """How read noise is drawn (DESIGN.md section 2)."""

    DEVICE = "device"
    """One draw per device per read: the reference."""
    COLUMN = "column"
    """One draw per column current, exact in distribution for Gaussian device noise."""


class MappingScheme(str, Enum):
    """How a signed weight becomes conductances."""

    DIFFERENTIAL = "differential"
    """Two devices per weight, W proportional to G+ - G-."""
    OFFSET = "offset"
    """One device per weight around mid-range; the reference current is subtracted digitally."""


class BiasMode(str, Enum):
    """Where a layer's bias is added."""

    DIGITAL = "digital"
    """After the ADC, exactly."""
    ROW = "row"
    """As an extra array row driven at full input, subject to device errors."""


class Subtract(str, Enum):
    """Where the two currents of a differential pair are subtracted."""

    ANALOG = "analog"
    """One conversion of I+ - I- per column."""
    DIGITAL = "digital"
    """Each column converted, then subtracted."""


class DACRange(str, Enum):
    """How the DAC's full-scale input x_max of a layer is chosen."""

    FIXED = "fixed"
    """``DAC.x_max``."""
    MAX = "max"
    """The largest |input| over the calibration batch."""
    PERCENTILE = "percentile"
    """``DAC.percentile`` of |input| over the calibration batch."""


class DriftCompensation(str, Enum):
    """How outputs are rescaled for conductance drift at read time (a digital multiply after the ADC)."""

    NONE = "none"
    GLOBAL = "global"
    """One scale per layer: sum |y(t0)| / sum |y(t)| over a calibration read of known inputs (as aihwkit's
    global drift compensation)."""
    COLUMN = "column"
    """One scale per output column from the same calibration read: the least-squares fit of y(t0) by
    alpha y(t), sum y(t0) y(t) / sum y(t)^2."""


IV_MODELS = ("linear", "sinh")
"""Device current-voltage laws (:attr:`Device.iv_model`)."""

READ_CLIPS = ("none", "zero", "range")
"""Where a noisy read conductance is clipped (:attr:`Device.read_clip`)."""

READ_CLIP_SIGMAS = 8.0
"""Column-mode read noise is kept on an array only where every device is at least this many read-noise widths
inside each active clip bound (:attr:`Device.read_clip`): P(Z > 8) = 6e-16 per device read."""

TABLE_READ_MODEL = "table"
"""``device.read_model`` taking read noise from the device table's ``read_sigma_us`` column."""


class ADCRange(str, Enum):
    """How the ADC's full-scale current I_max of each tile is chosen."""

    MAX = "max"
    """The largest current the tile can produce for inputs in the DAC range (never clips)."""
    CALIBRATED = "calibrated"
    """``ADC.percentile`` of |column current| seen on the calibration batch."""
    FIXED = "fixed"
    """``ADC.i_max_ua``."""


@dataclass(frozen=True)
class Device:
    """A memory device: conductance range, levels, and its static and dynamic errors."""

    g_min_us: float = 0.0
    """Lowest programmable conductance (uS)."""
    g_max_us: float = 100.0
    """Highest programmable conductance (uS)."""
    v_read_v: float = 0.1
    """Read voltage at full input (V)."""
    levels: int = 0
    """Programmable states per device, evenly spaced in [g_min, g_max]; 0 = continuous."""
    prog_model: str = "additive"
    """Programming error model, a name in :data:`xbar.device_models.ERROR_MODELS` (static: drawn once per chip)."""
    prog_sigma: float = 0.0
    """Programming error width (fraction; see the module docstring)."""
    read_model: str = "additive"
    """Read noise model, a name in :data:`xbar.device_models.ERROR_MODELS` (dynamic: drawn at every array read)."""
    read_sigma: float = 0.0
    """Read noise width (fraction; see the module docstring)."""
    read_noise_mode: ReadNoiseMode = ReadNoiseMode.COLUMN
    """Draw read noise per device (reference) or per column (fast, same distribution)."""
    read_clip: str = "none"
    """Clipping of each device's noisy conductance at a read: ``none`` (G + sigma z as drawn, possibly below
    zero), ``zero`` (max(0, G + sigma z), as CrossSim) or ``range`` (clipped to [g_min_us, g_max_us]); each
    device is clipped before the currents are summed. A clipped sum has no closed-form Gaussian, so with
    ``read_noise_mode = "column"`` each array read (a row tile of a weight slice, on the devices of one ADC
    input) keeps the column draw only where every device's programmed conductance G has G - 8 sigma(G) >= the
    lower bound (and, for ``range``, G + 8 sigma(G) <= g_max_us), :data:`READ_CLIP_SIGMAS` = 8, so that
    clipping binds with probability below 1e-15 per device read; every other array is read with the
    device-mode draw. Acts only on reads with read noise (``read_sigma`` > 0)."""
    stuck_on: float = 0.0
    """Fraction of devices stuck at g_max."""
    stuck_off: float = 0.0
    """Fraction of devices stuck at g_min."""
    drift_nu_mean: float = 0.0
    """Mean drift exponent nu in G (t / t0)^-nu (dimensionless)."""
    drift_nu_std: float = 0.0
    """Device-to-device std of nu."""
    drift_t0_s: float = 1.0
    """Reference time t0 of the drift law (s)."""
    read_time_s: float = 1.0
    """Time since programming at which the chip is read (s)."""
    clip: bool = True
    """Clip programmed conductances to [g_min, g_max]."""
    table: str = ""
    """A measured device table, CSV (docs/devices.md); empty: none. It sets the levels (its targets), g_min_us
    and g_max_us (its first and last), each level's programming error (its mean and sigma, or its raw samples)
    and, where it has a ``nu`` column, each level's drift; read noise from it with ``read_model = "table"``.
    In a hardware TOML a relative path is relative to the TOML file."""
    iv_model: str = "linear"
    """Device current-voltage law: ``linear`` (I = G V) or ``sinh`` (I = (G / a) sinh(a V), a common ReRAM and
    selector form with small-signal conductance G), which is solved per input vector with resistive wires
    (docs/parasitics.md)."""
    iv_a_per_v: float = 2.0
    """a of the ``sinh`` law (1/V): the larger, the more nonlinear at a given voltage."""
    table_sha256: str = field(default="", init=False)
    """SHA-256 of the table file (set from it; recorded with results, so a changed table shows)."""

    def __post_init__(self):
        for name in ("prog_model", "read_model"):
            if name == "read_model" and self.read_model == TABLE_READ_MODEL:
                continue
            try:
                error_model(getattr(self, name))
            except ConfigError as exc:
                also = f", or {TABLE_READ_MODEL!r} with a device table" if name == "read_model" else ""
                raise ConfigError(f"device.{name}: {str(exc).rstrip(')')}{also})") from None
        if self.table:
            self._take_table()
        else:
            _check(
                self.read_model != TABLE_READ_MODEL,
                f"device.read_model = {TABLE_READ_MODEL!r} needs a device.table with a read_sigma_us column",
            )
        _check(
            self.iv_model in IV_MODELS, f"device.iv_model must be one of {', '.join(IV_MODELS)}, got {self.iv_model!r}"
        )
        _check(
            self.read_clip in READ_CLIPS,
            f"device.read_clip must be one of {', '.join(READ_CLIPS)}, got {self.read_clip!r}",
        )
        _check(
            math.isfinite(self.iv_a_per_v) and self.iv_a_per_v > 0,
            f"device.iv_a_per_v must be a finite number > 0, got {self.iv_a_per_v}",
        )
        _check(self.g_min_us >= 0, f"device.g_min_us must be >= 0, got {self.g_min_us}")
        _check(
            self.g_min_us < self.g_max_us,
            f"device.g_min_us ({self.g_min_us}) must be < device.g_max_us ({self.g_max_us})",
        )
        _check(self.v_read_v > 0, f"device.v_read_v must be > 0, got {self.v_read_v}")
        _check(self.levels == 0 or self.levels >= 2, f"device.levels must be 0 or >= 2, got {self.levels}")
        for name in ("prog_sigma", "read_sigma", "drift_nu_std", "drift_nu_mean"):
            _check(getattr(self, name) >= 0, f"device.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("stuck_on", "stuck_off"):
            _check(0 <= getattr(self, name) <= 1, f"device.{name} must be in [0, 1], got {getattr(self, name)}")
        _check(self.stuck_on + self.stuck_off <= 1, "device.stuck_on + device.stuck_off must be <= 1")
        _check(self.drift_t0_s > 0, f"device.drift_t0_s must be > 0, got {self.drift_t0_s}")
        _check(
            self.read_time_s >= self.drift_t0_s,
            f"device.read_time_s ({self.read_time_s}) must be >= device.drift_t0_s ({self.drift_t0_s})",
        )

    def _take_table(self) -> None:
        """Levels and range from ``table``; the settings the table replaces must be left at zero."""
        table = self.device_table
        assert table is not None
        _check(
            self.prog_sigma == 0,
            f"device.prog_sigma must be 0 with device.table ({self.table}): the table's levels carry the "
            "programming error",
        )
        if table.nu is not None:
            _check(
                self.drift_nu_mean == 0 and self.drift_nu_std == 0,
                f"device.drift_nu_mean and drift_nu_std must be 0 with device.table ({self.table}): its nu "
                "column sets each level's drift",
            )
        _check(
            self.read_model != TABLE_READ_MODEL or table.read_sigma_us is not None,
            f"device.read_model = {TABLE_READ_MODEL!r}: {self.table} has no read_sigma_us column",
        )
        # Derived from the file, on a frozen instance: set here, so that every copy (replace) re-derives them.
        object.__setattr__(self, "g_min_us", float(table.g_min_us))
        object.__setattr__(self, "g_max_us", float(table.g_max_us))
        object.__setattr__(self, "levels", int(table.n_levels))
        object.__setattr__(self, "table_sha256", table.sha256)

    @property
    def device_table(self):
        """The :class:`xbar.device_table.DeviceTable` of ``table`` (read once per process), or None."""
        if not self.table:
            return None
        from .device_table import load_table

        return load_table(self.table)

    @property
    def drifts(self) -> bool:
        """Whether conductances drift (a drift exponent, or a table's nu column) between programming and the read."""
        if self.drift_nu_mean > 0 or self.drift_nu_std > 0:
            return True
        table = self.device_table
        return table is not None and table.nu is not None

    @property
    def g_range_us(self) -> float:
        """g_max - g_min (uS)."""
        return self.g_max_us - self.g_min_us


@dataclass(frozen=True)
class Mapping:
    """How weights become conductances."""

    scheme: MappingScheme = MappingScheme.DIFFERENTIAL
    bias: BiasMode = BiasMode.DIGITAL
    subtract: Subtract = Subtract.ANALOG
    """Where a differential pair's currents are subtracted (ignored by the offset scheme)."""
    clip_percentile: float = 100.0
    """w_scale = this percentile of |W| (100 = max |W|); larger weights are clipped."""
    weight_slices: int = 1
    """Device pairs per weight, each holding one base-``levels`` digit, recombined digitally."""

    def __post_init__(self):
        _check(
            0 < self.clip_percentile <= 100, f"mapping.clip_percentile must be in (0, 100], got {self.clip_percentile}"
        )
        _check(self.weight_slices >= 1, f"mapping.weight_slices must be >= 1, got {self.weight_slices}")


@dataclass(frozen=True)
class DAC:
    """The input digital-to-analog converters of every row."""

    bits: int = 0
    """Resolution; inputs are quantized to 2^bits - 1 steps of the range; 0 = ideal (no clipping either)."""
    range: DACRange = DACRange.MAX
    x_max: float = 1.0
    """Full-scale input for the ``fixed`` policy (input units)."""
    percentile: float = 99.99
    """Percentile for the ``percentile`` policy."""
    input_slices: int = 1
    """Bit-serial input: bits / input_slices bits per array read, shift-added after the ADC."""

    def __post_init__(self):
        _check(0 <= self.bits <= 24, f"dac.bits must be in [0, 24], got {self.bits}")
        _check(self.x_max > 0, f"dac.x_max must be > 0, got {self.x_max}")
        _check(0 < self.percentile <= 100, f"dac.percentile must be in (0, 100], got {self.percentile}")
        _check(self.input_slices >= 1, f"dac.input_slices must be >= 1, got {self.input_slices}")
        _check(
            self.input_slices == 1 or (self.bits > 0 and self.bits % self.input_slices == 0),
            f"dac.input_slices ({self.input_slices}) must divide dac.bits ({self.bits})",
        )


@dataclass(frozen=True)
class ADC:
    """The column analog-to-digital converters."""

    bits: int = 0
    """Resolution: 2^bits levels over the range; 0 = ideal (no clipping either)."""
    range: ADCRange = ADCRange.MAX
    i_max_ua: float = 100.0
    """Full-scale current for the ``fixed`` policy (uA)."""
    percentile: float = 99.99
    """Percentile of |current| for the ``calibrated`` policy."""
    drift_compensation: DriftCompensation = DriftCompensation.NONE
    """Rescale each layer's outputs for drift (docs/devices.md): ``none``, ``global`` or ``column``."""

    def __post_init__(self):
        _check(0 <= self.bits <= 24, f"adc.bits must be in [0, 24], got {self.bits}")
        _check(self.i_max_ua > 0, f"adc.i_max_ua must be > 0, got {self.i_max_ua}")
        _check(0 < self.percentile <= 100, f"adc.percentile must be in (0, 100], got {self.percentile}")


@dataclass(frozen=True)
class Tile:
    """The largest array: a layer is split into tiles of at most rows x cols devices (or pairs)."""

    rows: int = 256
    cols: int = 256
    solver: str = "dense"
    """How a tile read is computed (:data:`xbar.crossbar.array.ARRAY_SOLVERS`): ``dense`` is ideal wires,
    one matrix product per tile with read noise per device or per column."""

    def __post_init__(self):
        _check(self.rows >= 1 and self.cols >= 1, f"tile.rows and tile.cols must be >= 1, got {self.rows}x{self.cols}")


class DriveEnd(str, Enum):
    """The end of every row wire its driver feeds: the side of column 0 (``left``) or of the last column."""

    LEFT = "left"
    RIGHT = "right"


class SenseEnd(str, Enum):
    """The end of every column wire its sense amplifier reads: the side of the last row (``bottom``) or row 0."""

    BOTTOM = "bottom"
    TOP = "top"


@dataclass(frozen=True)
class Parasitics:
    """Resistances of a tile's wires and of its drivers and sense amplifiers (docs/parasitics.md).

    Row i is driven by an ideal voltage source through ``r_driver_ohm`` into the row wire at its driven end; the
    row wire has ``r_row_ohm`` between adjacent cells. Column j's wire has ``r_col_ohm`` between adjacent cells,
    and its sensed end reaches the sense amplifier's virtual ground (0 V) through ``r_sense_ohm``. All zero (the
    default) is the ideal array, computed as before, bit for bit; any one above zero solves every tile's
    circuit (:mod:`xbar.crossbar.parasitics`).
    """

    r_row_ohm: float = 0.0
    """Row wire resistance between adjacent cells (ohm)."""
    r_col_ohm: float = 0.0
    """Column wire resistance between adjacent cells (ohm)."""
    r_driver_ohm: float = 0.0
    """Output resistance of each row driver (ohm)."""
    r_sense_ohm: float = 0.0
    """Input resistance of each column's sense amplifier to its virtual ground (ohm)."""
    drive_end: DriveEnd = DriveEnd.LEFT
    sense_end: SenseEnd = SenseEnd.BOTTOM
    tolerance_v: float = 1e-12
    """Nonlinear devices: the solve per input vector stops when no node moves by more than this (V)."""
    max_sweeps: int = 10_000
    """Nonlinear devices: sweeps over the tile's wires before a solve is declared not converged (an error)."""

    def __post_init__(self):
        for name in ("r_row_ohm", "r_col_ohm", "r_driver_ohm", "r_sense_ohm"):
            value = getattr(self, name)
            _check(math.isfinite(value) and value >= 0, f"parasitics.{name} must be a finite number >= 0, got {value}")
        _check(self.tolerance_v > 0, f"parasitics.tolerance_v must be > 0, got {self.tolerance_v}")
        _check(self.max_sweeps >= 1, f"parasitics.max_sweeps must be >= 1, got {self.max_sweeps}")

    @property
    def active(self) -> bool:
        """Whether any resistance is above zero (then tiles are solved as circuits)."""
        return any(v > 0 for v in (self.r_row_ohm, self.r_col_ohm, self.r_driver_ohm, self.r_sense_ohm))


ENERGY_MODELS = ("calibrated", "components")
"""Values of :attr:`Energy.model`."""


@dataclass(frozen=True)
class Energy:
    """Constants of the analytic energy model (DESIGN.md section 4; docs/energy.md).

    E = sum over array reads [read_fixed + rows driven x row + conversions x E_adc(bits)
    + sum over cells (x_i V_read)^2 G t_read] + neuron activations x neuron + digital additions x add.
    """

    read_fixed_pj: float = 0.0
    """Fixed cost of one array read: precharge, sense and control periphery (pJ)."""
    row_pj: float = 0.0
    """Cost of driving one row for one read: DAC and row driver (pJ)."""
    adc_fom_fj: float = 0.0
    """SAR ADC Walden figure of merit: one conversion costs adc_fom_fj x 2^bits (fJ)."""
    nominal_bits: int = 8
    """Resolution at which an ideal (bits = 0) ADC is charged (bits)."""
    t_read_ns: float = 10.0
    """Duration of one array read, for the cells' own read energy (ns)."""
    neuron_fj: float = 50.0
    """One hidden activation (the paper's 50 fJ per neuron) (fJ)."""
    add_fj: float = 30.0
    """One digital addition after the ADC (a 16-bit add, about 30 fJ at 45 nm) (fJ)."""
    model: str = "calibrated"
    """Which constants price the counts: ``calibrated`` (the fields above) or ``components`` (the cited
    per-component constants of :data:`xbar.energy.COMPONENTS`, which then replace read_fixed_pj, row_pj,
    adc_fom_fj, t_read_ns, neuron_fj and add_fj; docs/energy.md)."""

    def __post_init__(self):
        for name in ("read_fixed_pj", "row_pj", "adc_fom_fj", "t_read_ns", "neuron_fj", "add_fj"):
            _check(getattr(self, name) >= 0, f"energy.{name} must be >= 0, got {getattr(self, name)}")
        _check(1 <= self.nominal_bits <= 24, f"energy.nominal_bits must be in [1, 24], got {self.nominal_bits}")
        _check(
            self.model in ENERGY_MODELS,
            f"energy.model must be one of {', '.join(ENERGY_MODELS)}, got {self.model!r}",
        )


MAX_WEIGHT_STATE_BITS = 32
"""Most states a sliced weight may have, as bits: levels^weight_slices <= 2^32."""


@dataclass(frozen=True)
class Hardware:
    """A whole crossbar chip description."""

    name: str = "custom"
    device: Device = field(default_factory=Device)
    mapping: Mapping = field(default_factory=Mapping)
    dac: DAC = field(default_factory=DAC)
    adc: ADC = field(default_factory=ADC)
    tile: Tile = field(default_factory=Tile)
    parasitics: Parasitics = field(default_factory=Parasitics)
    energy: Energy = field(default_factory=Energy)
    calibration_images: int = 256
    """Images (the first of the evaluated set) used to calibrate converter ranges."""

    def __post_init__(self):
        _check(self.calibration_images >= 1, f"calibration_images must be >= 1, got {self.calibration_images}")
        _check(
            self.device.iv_model == "linear" or (self.parasitics.r_row_ohm > 0 and self.parasitics.r_col_ohm > 0),
            f"device.iv_model = {self.device.iv_model!r} is solved with resistive wires: it needs "
            "parasitics.r_row_ohm > 0 and parasitics.r_col_ohm > 0",
        )
        _check(
            self.mapping.weight_slices == 1 or self.device.levels >= 2,
            "mapping.weight_slices > 1 needs device.levels >= 2",
        )
        # The slices' digits recombine in float arithmetic: past 2^32 states the extra precision is
        # below float32 weights' own and levels^slices soon overflows a float.
        _check(
            self.mapping.weight_slices == 1
            or self.mapping.weight_slices * math.log2(self.device.levels) <= MAX_WEIGHT_STATE_BITS,
            f"device.levels^mapping.weight_slices ({self.device.levels}^{self.mapping.weight_slices}) must be at "
            f"most 2^{MAX_WEIGHT_STATE_BITS} weight states",
        )

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (enums as their strings)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=lambda e: e.value))


def describe_errors(hw: Hardware) -> str:
    """One line naming what makes ``hw`` differ from ideal float inference, for run headers.

    Device errors that act (with their model and width), levels, weight slices,
    converter bits and ranges; ``ideal`` when nothing acts.
    """
    device, parts = hw.device, []
    table = device.device_table
    if table is not None:
        parts.append(f"device table {Path(table.path).name} ({table.kind}, {table.n_levels} levels)")
    if device.prog_sigma > 0:
        parts.append(f"programming error {device.prog_model} x{device.prog_sigma:g}")
    if device.read_sigma > 0:
        clip = "" if device.read_clip == "none" else f", clipped {'at 0' if device.read_clip == 'zero' else 'to range'}"
        parts.append(f"read noise {device.read_model} x{device.read_sigma:g} ({device.read_noise_mode.value}{clip})")
    if device.stuck_on > 0 or device.stuck_off > 0:
        parts.append(f"stuck on {device.stuck_on:g} / off {device.stuck_off:g}")
    if device.drift_nu_mean > 0 or device.drift_nu_std > 0:
        parts.append(f"drift nu {device.drift_nu_mean:g} +- {device.drift_nu_std:g} read at {device.read_time_s:g} s")
    elif device.drifts:
        parts.append(f"drift per level read at {device.read_time_s:g} s")
    if device.drifts and hw.adc.drift_compensation != DriftCompensation.NONE:
        parts.append(f"{hw.adc.drift_compensation.value} drift compensation")
    if device.levels and table is None:
        parts.append(
            f"{device.levels} levels"
            + (f" x {hw.mapping.weight_slices} slices" if hw.mapping.weight_slices > 1 else "")
        )
    if hw.dac.bits:
        parts.append(f"DAC {hw.dac.bits} b ({hw.dac.range.value})")
    if hw.adc.bits:
        parts.append(f"ADC {hw.adc.bits} b ({hw.adc.range.value})")
    if hw.mapping.bias is BiasMode.ROW:
        parts.append("bias as a row")
    if hw.energy.model != "calibrated":
        parts.append(f"{hw.energy.model} energy model")
    return ", ".join(parts) or "ideal devices and converters"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# Energy constants calibrated against the paper's Table III (docs/energy.md): with t_read fixed by
# assumption, the fixed, per-row and per-conversion costs solve the three VMM energies of each
# technology exactly for the paper's layouts and the shipped MNIST networks.
RERAM_ENERGY = Energy(read_fixed_pj=199.0, row_pj=0.0616, adc_fom_fj=46.6, t_read_ns=2.0)
SONOS_ENERGY = Energy(read_fixed_pj=1012.0, row_pj=0.234, adc_fom_fj=47.2, t_read_ns=10.0)

PRESETS: dict[str, Hardware] = {
    "ideal": Hardware(name="ideal"),
    "paper": Hardware(
        name="paper",
        mapping=Mapping(bias=BiasMode.ROW),
        tile=Tile(rows=2048, cols=2048),
        energy=RERAM_ENERGY,
    ),
    "reram": Hardware(
        name="reram",
        device=Device(g_min_us=50.0, g_max_us=225.0, v_read_v=0.1, prog_model="reram-program", prog_sigma=1.0),
        dac=DAC(bits=8),
        adc=ADC(bits=8, range=ADCRange.CALIBRATED),
        tile=Tile(256, 256),
        energy=RERAM_ENERGY,
    ),
    "sonos": Hardware(
        name="sonos",
        device=Device(
            g_min_us=16.0e-7,
            g_max_us=16.0,
            v_read_v=0.1,
            prog_model="sonos-program",
            prog_sigma=1.0,
            read_model="sonos-read",
            read_sigma=1.0,
        ),
        dac=DAC(bits=8),
        adc=ADC(bits=8, range=ADCRange.CALIBRATED),
        tile=Tile(256, 256),
        energy=SONOS_ENERGY,
    ),
    "pcm": Hardware(
        name="pcm",
        device=Device(
            g_min_us=0.25,
            g_max_us=25.0,
            v_read_v=0.2,
            prog_model="pcm-program",
            prog_sigma=1.0,
            drift_nu_mean=0.05,
            drift_nu_std=0.02,
            drift_t0_s=20.0,
            read_time_s=3600.0,
        ),
        dac=DAC(bits=8),
        adc=ADC(bits=8, range=ADCRange.CALIBRATED),
        tile=Tile(256, 256),
        energy=RERAM_ENERGY,  # no published periphery numbers for this chip: ReRAM's, not calibrated
    ),
}


MAX_INT_VALUE = 2**31 - 1
"""Largest integer any hardware field accepts from TOML or ``--set``."""


def _coerce(value: Any, typ: Any, key: str):
    """Check/convert a TOML or command-line value to the field type ``typ``."""
    if isinstance(typ, str):  # postponed annotations
        typ = {"float": float, "int": int, "bool": bool, "str": str}.get(typ) or globals()[typ]
    if isinstance(typ, type) and issubclass(typ, Enum):
        try:
            return typ(value)
        except ValueError:
            choices = ", ".join(m.value for m in typ)
            raise ConfigError(f"{key}: {value!r} is not one of {choices}") from None
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            # Kernels take int64 (and sizes far below): refuse what no field can mean before it overflows.
            if abs(value) > MAX_INT_VALUE:
                raise ConfigError(f"{key}: {value} is out of range (at most {MAX_INT_VALUE:,} in magnitude)")
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: cannot set a field of type {typ}")


_SECTIONS = {
    "device": Device,
    "mapping": Mapping,
    "dac": DAC,
    "adc": ADC,
    "tile": Tile,
    "parasitics": Parasitics,
    "energy": Energy,
}


def apply_overrides(hw: Hardware, overrides: dict[str, Any]) -> Hardware:
    """Return ``hw`` with dotted keys replaced, e.g. ``{"adc.bits": 6, "device.prog_sigma": 0.02}``.

    Values must already have their TOML types (see :func:`parse_assignment` for strings).
    """
    changes: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if not name:
            known = {f.name: f.type for f in fields(Hardware) if f.name not in _SECTIONS}
            if section not in known:
                raise ConfigError(f"unknown hardware key {key!r}")
            top[section] = _coerce(value, known[section], key)
            continue
        if section not in _SECTIONS:
            raise ConfigError(f"unknown hardware section {section!r} in {key!r} (choose from {', '.join(_SECTIONS)})")
        known = {f.name: f.type for f in fields(_SECTIONS[section]) if f.init}
        if name not in known:
            raise ConfigError(f"unknown hardware key {key!r} (known: {', '.join(f'{section}.{n}' for n in known)})")
        changes.setdefault(section, {})[name] = _coerce(value, known[name], key)
    parts = {section: replace(getattr(hw, section), **values) for section, values in changes.items()}
    return replace(hw, **parts, **top)


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` from the command line; the value is read as a TOML value, else as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


MAX_TOML_BYTES = 4 * 2**20
"""Largest hardware or sweep TOML file read (bytes): far above any real one, and it bounds parsing."""


def read_toml(path: str | Path) -> dict:
    """The table of a TOML file, or a one-line :class:`ConfigError` naming the file and the problem."""
    try:
        text = read_text(path, max_bytes=MAX_TOML_BYTES)
    except XbarError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({str(exc).splitlines()[0] if str(exc) else 'nested too deep'})"
        ) from None


def load_toml(path: str | Path) -> Hardware:
    """Read a hardware TOML file: optional ``preset = "name"`` to start from, then sections
    ``[device]``, ``[mapping]``, ``[dac]``, ``[adc]``, ``[tile]``, ``[energy]`` overriding its fields."""
    path = Path(path)
    table = read_toml(path)
    device = table.get("device")
    if isinstance(device, dict) and isinstance(device.get("table"), str) and device["table"]:
        device["table"] = str(path.parent / device["table"])  # relative to the TOML (absolute paths stay)
    try:
        base = preset(table.pop("preset", "ideal"))
        hw = apply_overrides(base, _flatten(table))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return hw if "name" in table else replace(hw, name=path.stem)


def preset(name: str) -> Hardware:
    """The named preset, or :class:`ConfigError` listing the choices."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown hardware preset {name!r} (choose from {', '.join(PRESETS)})") from None


def resolve(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> Hardware:
    """A preset name or a TOML file path, then ``key=value`` overrides."""
    hw = load_toml(spec) if spec.endswith(".toml") else preset(spec)
    return apply_overrides(hw, dict(parse_assignment(text) for text in overrides))
