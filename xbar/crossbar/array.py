"""Arrays: one tile read, input codes times conductances plus read noise, giving column currents (uA).

This is the one place where the physics of the array itself lives, and where
another solver plugs in: :data:`ARRAY_SOLVERS` maps ``tile.solver`` to a class
with the interface of :class:`DenseArray`. A solver receives the programmed
conductances and answers, for the partial reads a layer asks for, the column
currents and (for column-mode read noise) their spread; if it is linear in its
inputs it also gives its effective weights, which lets a chip with ideal
converters and no read noise fold into one product per layer.

Partial read p = (weight slice s, row tile t, input slice k, ADC input o): the
inputs of input slice k on the rows of tile t, on the devices of ADC input o
(the pair difference G+ - G- with analog subtraction, else each side).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..config import READ_CLIP_SIGMAS, Device, MappingScheme, ReadNoiseMode, Subtract
from ..errors import ConfigError
from ..kernels import convert
from ..kernels.rng import derive_key
from .devices import PURPOSE_READ, has_read_noise, read_sigmas, uniform_read_noise

Partial = tuple[int, int, int, int]
"""(weight slice, row tile, input slice, ADC input)."""


class DenseArray:
    """Ideal wires: a tile read is one matrix product of the inputs with V_read G, plus read noise.

    Read noise, when ``device.read_sigma`` > 0, is either drawn per device per
    read (``device`` mode, the reference: I_j = V sum_i x_i (G_ij + sigma_ij z_ij))
    or per column (``column`` mode: the noise-free current plus one Gaussian of
    variance V^2 sum_i x_i^2 sigma_ij^2, the same distribution at a fraction of
    the draws; drawn by :func:`xbar.kernels.convert.read_out`).

    With ``device.read_clip`` each device's noisy conductance is clipped (at 0, or to [g_min, g_max]) before
    the currents are summed. In column mode an array read (row tile t of weight slice s, on the devices of ADC
    input o) where clipping can bind (:meth:`clip_binds`) takes the device-mode draw instead, on the device
    mode's own streams, and no column noise.

    Parameters
    ----------
    conductances : list over weight slices of lists over sides of float32 (n_rows, n_out), uS
        Held by reference, not copied.
    device : Device
    scheme, subtract : the mapping scheme and where a pair is subtracted
    row_tiles : list of (start, stop) row ranges
    seed, layer : keys of the read-noise streams
    """

    def __init__(
        self,
        conductances: list[list[np.ndarray]],
        device: Device,
        scheme: MappingScheme,
        subtract: Subtract,
        row_tiles: list[tuple[int, int]],
        seed: int,
        layer: int,
    ):
        self.conductances, self.device, self.row_tiles = conductances, device, row_tiles
        self.seed, self.layer = seed, layer
        self.v_read = float(device.v_read_v)
        self.differential = scheme == MappingScheme.DIFFERENTIAL
        self.analog_subtract = self.differential and subtract == Subtract.ANALOG
        self.read_noise = has_read_noise(device)
        self.linear = True
        """Whether the currents are linear in the inputs (then the chip may fold into effective weights)."""
        self.forms: list | None = None
        """Per row tile, (Q_dev, Q_wire) when the dissipation of a read is not the ideal wires' sum x_i^2 G_ij."""
        self.device_mode = self.read_noise and device.read_noise_mode == ReadNoiseMode.DEVICE
        self.uniform_noise = self.read_noise and uniform_read_noise(device)
        self.read_clip = self.read_noise and device.read_clip != "none"
        """Whether noisy reads clip each device's conductance (``device.read_clip``)."""
        self.clip_bounds = (
            float(device.g_min_us) if device.read_clip == "range" else 0.0,
            float(device.g_max_us) if device.read_clip == "range" else float("inf"),
        )
        """(lo, hi) of the read clipping (uS)."""
        self.binds = self._clip_binding() if self.read_clip else {}
        """Per (weight slice, row tile, ADC input), whether read clipping can bind there (:meth:`clip_binds`)."""
        self.tile_starts = np.array([r0 for r0, _ in row_tiles] + [row_tiles[-1][1]], np.int64)

    @property
    def inputs_per_tile(self) -> int:
        """ADC inputs (conversions per column) of one tile read: 2 for digital pair subtraction, else 1."""
        return 1 if self.analog_subtract or not self.differential else 2

    def signs(self) -> tuple[float, ...]:
        """Sign of each ADC input in the output: (1,) for one input, (1, -1) for digitally subtracted sides."""
        return (1.0,) if self.inputs_per_tile == 1 else (1.0, -1.0)

    def operand(self, s: int, o: int) -> np.ndarray:
        """V_read x the conductances of ADC input ``o`` of weight slice ``s`` (uA at full input), float32."""
        row, v_read = self.conductances[s], np.float32(self.v_read)
        if self.analog_subtract:
            return (row[0] - row[1]) * v_read
        return row[o] * v_read

    @cached_property
    def operands(self) -> list[list[np.ndarray]]:
        """:meth:`operand` of every slice and ADC input, kept for the reads (built on first use)."""
        return [[self.operand(s, o) for o in range(self.inputs_per_tile)] for s in range(len(self.conductances))]

    def cached_operand(self, s: int, o: int) -> np.ndarray:
        """:meth:`operand` as kept for the reads."""
        return self.operands[s][o]

    @cached_property
    def _sigmas(self) -> list[list[np.ndarray]]:
        """Read-noise width (uS) of every device, per slice and side (device mode, and column variances)."""
        return [[read_sigmas(g, self.device) for g in row] for row in self.conductances]

    @cached_property
    def _variances(self) -> list[list[np.ndarray | float]]:
        """Per slice and ADC input, the read-noise variance of each device summed over the input's sides (uS^2).

        One number for uniform noise: a column's variance is then that number times sum_i x_i^2.
        """
        sides = 2 if self.analog_subtract else 1
        if self.uniform_noise:
            value = sides * (self.device.read_sigma * self.device.g_range_us) ** 2
            return [[value] * self.inputs_per_tile for _ in self.conductances]
        out: list[list[np.ndarray | float]] = []
        for row in self.conductances:
            sigmas = [read_sigmas(g, self.device) for g in row]
            groups = [sigmas] if self.analog_subtract else [[sigma] for sigma in sigmas]
            out.append([sum(np.square(sigma) for sigma in group) for group in groups])
        return out

    def clip_binds(self, s: int, t: int, o: int) -> bool:
        """Whether read clipping can bind on row tile ``t`` of weight slice ``s``, ADC input ``o``: some device of
        it (either side of an analog pair) has G - 8 sigma(G) < lo or G + 8 sigma(G) > hi (READ_CLIP_SIGMAS;
        a Gaussian passes 8 sigma with probability 6e-16). False without read clipping."""
        return self.binds.get((s, t, o), False)

    def _clip_binding(self) -> dict[tuple[int, int, int], bool]:
        """:attr:`binds`, from the programmed conductances (worked out once, before any read)."""
        lo, hi = self.clip_bounds
        # Per slice and side, per row tile: whether a device of it comes within 8 read-noise widths of a bound.
        near: list[list[list[bool]]] = []
        for row, sigma_row in zip(self.conductances, self._sigmas):
            near.append([])
            for g, sigma in zip(row, sigma_row):  # the widths the device-mode reads draw with, worked out once
                reach = READ_CLIP_SIGMAS * sigma.astype(np.float64)
                g64 = g.astype(np.float64)
                bad = np.any((g64 - reach < lo) | (g64 + reach > hi), axis=1)
                near[-1].append([bool(bad[r0:r1].any()) for r0, r1 in self.row_tiles])
        binds = {}
        for s in range(len(self.conductances)):
            for t in range(len(self.row_tiles)):
                for o in range(self.inputs_per_tile):
                    sides = (0, 1) if self.analog_subtract else (o,)
                    binds[(s, t, o)] = any(near[s][side][t] for side in sides)
        return binds

    def effective_weights(self, factors: list[float], scale: float) -> np.ndarray:
        """sum over slices and ADC inputs of sign c_s scale V_read G (float64 (n_rows, n_out)): the linear read.

        Each operand is formed for the moment only, so a folded chip keeps no copy of it.
        """
        n_rows, n_out = self.conductances[0][0].shape
        weights = np.zeros((n_rows, n_out), np.float64)
        term = np.empty((n_rows, n_out), np.float64)
        for s, factor in enumerate(factors):
            for o, sign in enumerate(self.signs()):
                np.multiply(self.operand(s, o), sign * factor * scale, out=term, dtype=np.float64)
                weights += term
        return weights

    def read(
        self, partials: list[Partial], inputs: list[np.ndarray], row_ids: np.ndarray, noise: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Column currents (uA) of every partial read, and the spread of their column-mode read noise.

        Returns currents (P, n, n_out) float32, read noise included in device
        mode, and std (P, n, w) float32 uA for :func:`~xbar.kernels.convert.read_out`
        (w = 1 for uniform noise, n_out otherwise, 0 when no column noise is to be drawn).
        """
        n, n_out = inputs[0].shape[0], self.conductances[0][0].shape[1]
        currents = np.empty((len(partials), n, n_out), np.float32)
        column_noise = noise and not self.device_mode
        width = (1 if self.uniform_noise else n_out) if column_noise else 0
        std = np.empty((len(partials), n, width), np.float32)
        single_tile = len(self.row_tiles) == 1
        squares: dict = {}
        v_read = np.float32(self.v_read)
        for p, (s, t, k, o) in enumerate(partials):
            r0, r1 = self.row_tiles[t]
            # A column slice is a valid BLAS operand (leading dimension n_in): no copy.
            x_tile = inputs[k] if single_tile else inputs[k][:, r0:r1]
            if noise and (self.device_mode or self.clip_binds(s, t, o)):
                self._device_mode_read(x_tile, s, t, k, o, row_ids, currents[p])
                if column_noise:
                    std[p] = 0.0  # the device-mode draw replaces the column draw of this read
                continue
            np.matmul(x_tile, self.operands[s][o][r0:r1], out=currents[p])
            if not column_noise:
                continue
            # Var(I_j) = V^2 sum_i x_i^2 sigma_ij^2: one number per row for uniform noise.
            var = self._variances[s][o]
            if self.uniform_noise:
                if k not in squares:
                    squares[k] = np.empty((n, len(self.row_tiles)), np.float32)
                    convert.tile_square_sums(inputs[k], self.tile_starts, squares[k])
                variance = squares[k][:, t : t + 1] * np.float32(var)
            else:
                assert isinstance(var, np.ndarray)
                if (t, k) not in squares:
                    squares[(t, k)] = np.square(x_tile)
                variance = squares[(t, k)] @ var[r0:r1]
            np.sqrt(variance, out=std[p])
            std[p] *= v_read
        return currents, std

    def _device_mode_read(self, x_tile, s, t, k, o, row_ids, out) -> None:
        """Reference path: one draw per device per read, each device of a pair on its own stream."""
        r0, r1 = self.row_tiles[t]
        x_tile = np.ascontiguousarray(x_tile)
        sides = (0, 1) if self.analog_subtract else (o,)
        g, sig = self.conductances[s], self._sigmas[s]
        clip = (self.read_clip, np.float32(self.clip_bounds[0]), np.float32(self.clip_bounds[1]))
        convert.device_noise_product(
            x_tile,
            g[sides[0]][r0:r1],
            sig[sides[0]][r0:r1],
            self.v_read,
            derive_key(PURPOSE_READ, self.seed, self.layer, s, t, k, o, 0),
            row_ids,
            *clip,
            out,
        )
        if len(sides) == 2:
            other = np.empty_like(out)
            convert.device_noise_product(
                x_tile,
                g[1][r0:r1],
                sig[1][r0:r1],
                self.v_read,
                derive_key(PURPOSE_READ, self.seed, self.layer, s, t, k, o, 1),
                row_ids,
                *clip,
                other,
            )
            out -= other


ARRAY_SOLVERS: dict[str, type[DenseArray]] = {"dense": DenseArray}
"""Array solvers by the name ``tile.solver`` gives."""


def array_solver(name: str) -> type[DenseArray]:
    """The solver class named ``name``, or a :class:`ConfigError` listing the choices."""
    try:
        return ARRAY_SOLVERS[name]
    except KeyError:
        raise ConfigError(
            f"tile.solver: {name!r} is not an array solver (choose from {', '.join(ARRAY_SOLVERS)})"
        ) from None
