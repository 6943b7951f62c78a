"""Wire resistance: a tile's exact transfer matrix, solved once per programmed tile (docs/parasitics.md).

The circuit of an R x C tile (:class:`~xbar.config.Parasitics`): row node u[i, j] and column node v[i, j] at
every cell, device G_ij between them; r_row between adjacent row nodes, r_col between adjacent column nodes;
row i's source V_i feeds its driven end through r_driver; column j's sensed end reaches the amplifier's virtual
ground (0 V) through r_sense, and the output I_j is the current into the amplifier. With linear devices the
tile is a linear network, so I = V T for an R x C transfer matrix T, which this module computes exactly (to
float64 rounding) once per tile; every read is then one product, as for ideal wires (T = G).

How. Kirchhoff's current law at the row nodes of row i, given its column nodes, is a tridiagonal system: its
solution is u_i = P_i v_i + q_i V_i (:func:`row_response`, a Numba kernel). Put into the column nodes'
equations, it leaves a block-tridiagonal system in the rows, blocks C x C (dense: diag(c_i + G_i) - G_i P_i)
coupled by -g_col I. Block elimination from the far end toward the sensed row, carrying one right-hand side
per driven row, gives the sensed row's voltages for every input at once, and no back substitution is
needed: R C^3 + R^2 C^2 / 2 operations per tile (0.1 s for 256 x 256 here), float64 LAPACK through numpy.
A zero resistance is an ideal connection: its nodes merge (a row or column wire of zero resistance is one
node; a zero driver or sense resistance holds its node at V_i or 0 V).
"""

from __future__ import annotations

import numba
import numpy as np

from .._threads import map_blocks
from ..config import DriveEnd, Parasitics, SenseEnd
from ..errors import XbarError
from ..kernels.parasitics import chain_inverse, nonlinear_tile
from .array import DenseArray, Partial

SIEMENS_PER_US = 1e-6


def row_response(g_row: np.ndarray, g_wire: float, g_driver: float) -> tuple[np.ndarray, np.ndarray]:
    """(P (C, C), q (C,)): the row's node voltages u = P v + q V given its column nodes' v and its source V.

    ``g_row`` (S) are the row's devices, driven at index 0; ``g_wire`` and ``g_driver`` are conductances (S),
    ``inf`` for a zero resistance.
    """
    c = g_row.size
    if np.isinf(g_wire):  # the whole row is one node
        if np.isinf(g_driver):
            return np.zeros((c, c)), np.ones(c)
        total = g_driver + g_row.sum()
        return np.repeat(g_row[None, :] / total, c, axis=0), np.full(c, g_driver / total)
    if np.isinf(g_driver):  # node 0 held at V; nodes 1.. a chain hanging from it
        p, q = np.zeros((c, c)), np.zeros(c)
        q[0] = 1.0
        if c > 1:
            inverse = chain_inverse(g_row[1:].astype(np.float64), g_wire, g_wire)
            p[1:, 1:] = inverse * g_row[None, 1:]
            q[1:] = g_wire * inverse[:, 0]
        return p, q
    inverse = chain_inverse(g_row.astype(np.float64), g_wire, g_driver)
    return inverse * g_row[None, :], g_driver * inverse[:, 0]


def _conductance(resistance_ohm: float) -> float:
    return np.inf if resistance_ohm == 0 else 1.0 / resistance_ohm


def tile_transfer(g_us: np.ndarray, parasitics: Parasitics) -> np.ndarray:
    """The transfer matrix T (uS, float64, (R, C)) of a tile of conductances ``g_us``: I_j = sum_i T_ij V_i.

    All resistances zero gives ``g_us`` itself (as float64).
    """
    g = np.asarray(g_us, np.float64)
    if not parasitics.active:
        return g.copy()
    # Solved with rows driven from column 0 and columns sensed at the last row; other ends are mirror images.
    flip_cols = parasitics.drive_end == DriveEnd.RIGHT
    flip_rows = parasitics.sense_end == SenseEnd.TOP
    g = g[::-1] if flip_rows else g
    g = g[:, ::-1] if flip_cols else g
    transfer = _solve(
        np.ascontiguousarray(g) * SIEMENS_PER_US,
        _conductance(parasitics.r_row_ohm),
        _conductance(parasitics.r_col_ohm),
        _conductance(parasitics.r_driver_ohm),
        _conductance(parasitics.r_sense_ohm),
    )
    transfer = transfer[:, ::-1] if flip_cols else transfer
    transfer = transfer[::-1] if flip_rows else transfer
    return np.ascontiguousarray(transfer) / SIEMENS_PER_US


def _solve(g: np.ndarray, g_row: float, g_col: float, g_driver: float, g_sense: float) -> np.ndarray:
    """T (S) for rows driven at column 0 and columns sensed at row R-1, conductances in S (inf: a short)."""
    n_rows, n_cols = g.shape
    responses = [row_response(g[i], g_row, g_driver) for i in range(n_rows)]
    # Column-node equations of row i: diag(c_i + G_i) v_i - G_i u_i - g_col (v_{i-1} + v_{i+1}) = 0, and
    # G_i u_i = G_i P_i v_i + G_i q_i V_i: the block A_i = diag(c_i + G_i) - G_i P_i and right-hand side G_i q_i.
    rhs = [g[i] * responses[i][1] for i in range(n_rows)]
    transfer = np.empty((n_rows, n_cols))
    if np.isinf(g_col):  # every column wire is one node
        if np.isinf(g_sense):  # held at 0 V: each device's current goes straight to the amplifier
            return np.array(rhs)
        block = np.diag(g.sum(axis=0) + g_sense) - sum(g[i][:, None] * responses[i][0] for i in range(n_rows))
        v = np.linalg.solve(block, np.array(rhs).T)  # (C, R): the column nodes for each driven row
        return (g_sense * v).T
    # Free rows of column nodes: all, or all but the sensed row when the amplifier holds it at 0 V.
    free = n_rows if not np.isinf(g_sense) else n_rows - 1
    if free < n_rows:  # the sensed row's own devices feed the amplifier directly; its source reaches no free node
        transfer[n_rows - 1] = rhs[n_rows - 1]
    if free == 0:
        return transfer
    carried = np.zeros((n_cols, free))  # one right-hand side per driven row, eliminated down to the current row
    inverse = np.empty((n_cols, n_cols))
    for i in range(free):
        neighbours = (i > 0) + (i < n_rows - 1)
        diagonal = g[i] + g_col * neighbours + (g_sense if i == n_rows - 1 else 0.0)
        block = np.diag(diagonal) - g[i][:, None] * responses[i][0]
        if i > 0:
            block -= g_col * g_col * inverse
            carried[:, :i] = g_col * (inverse @ carried[:, :i])
        carried[:, i] = rhs[i]
        inverse = np.linalg.inv(block)
    v_last = inverse @ carried  # (C, free): the last free row's column nodes for each driven row
    # Into the amplifier: through r_sense from the sensed node, or (held at 0 V) from the last free row above it.
    transfer[:free] = ((g_col if free < n_rows else g_sense) * v_last).T
    return transfer


class NodalArray(DenseArray):
    """Resistive wires: every (row tile x column tile) block of every slice and side is solved as a circuit
    once (:func:`tile_transfer`), and a read is the product of the inputs with V_read T, as for ideal wires.

    A differential pair's G+ and G- sit in two arrays of the block's shape, each solved on its own. Read noise
    is drawn at the outputs, per column, with the variance V^2 sum_i x_i^2 sigma_ij^2 of the devices
    (``device.read_noise_mode = "device"`` included: a per-device draw would need every node's voltage at every
    read). Takes the :class:`DenseArray` arguments, and ``parasitics`` and the column tiles.
    """

    def __init__(self, *args, parasitics: Parasitics, col_tiles: list[tuple[int, int]]):
        super().__init__(*args)
        self.parasitics, self.col_tiles = parasitics, col_tiles
        self.device_mode = False
        self.linear = self.device.iv_model == "linear"
        self.transfer = [[self._transfer(g, col_tiles) for g in row] for row in self.conductances]
        """Per weight slice and side, float32 (n_rows, n_out): T of each block in place of G (uS); for nonlinear
        devices, of their small-signal conductances (the ADC's ``max`` range is worked out from it)."""

    def _transfer(self, g: np.ndarray, col_tiles: list[tuple[int, int]]) -> np.ndarray:
        """T of every block of ``g``, the blocks solved side by side on the Numba threads (each independent)."""
        out = np.empty(g.shape, np.float32)
        blocks = [(rows, cols) for rows in self.row_tiles for cols in col_tiles]

        def solve(first: int, stop: int) -> None:
            for (r0, r1), (c0, c1) in blocks[first:stop]:
                out[r0:r1, c0:c1] = tile_transfer(g[r0:r1, c0:c1], self.parasitics)

        map_blocks(solve, [(b, b + 1) for b in range(len(blocks))], numba.get_num_threads())
        return out

    def operand(self, s: int, o: int) -> np.ndarray:
        """V_read x the transfer matrices of ADC input ``o`` of weight slice ``s`` (uA at full input), float32."""
        row, v_read = self.transfer[s], np.float32(self.v_read)
        if self.analog_subtract:
            return (row[0] - row[1]) * v_read
        return row[o] * v_read

    def read(
        self, partials: list[Partial], inputs: list[np.ndarray], row_ids: np.ndarray, noise: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`DenseArray.read`; for nonlinear devices every input vector's currents are the circuit's, solved
        per vector (:func:`nonlinear_currents`), the read-noise spread as for linear ones."""
        currents, std = super().read(partials, inputs, row_ids, noise)
        if self.linear:
            return currents, std
        for p, (s, t, k, o) in enumerate(partials):
            r0, r1 = self.row_tiles[t]
            volts = inputs[k][:, r0:r1].astype(np.float64) * self.v_read
            sides = ((0, 1.0), (1, -1.0)) if self.analog_subtract else ((o, 1.0),)
            total = np.zeros(currents[p].shape)
            for side, sign in sides:
                g = self.conductances[s][side]
                for c0, c1 in self.col_tiles:
                    where = (
                        f"layer {self.layer}, weight slice {s}, side {side}, rows {r0}-{r1 - 1}, columns {c0}-{c1 - 1}"
                    )
                    total[:, c0:c1] += sign * nonlinear_currents(
                        g[r0:r1, c0:c1], volts, self.parasitics, self.device.iv_a_per_v, where
                    )
            currents[p] = total
        return currents, std


def nonlinear_currents(
    g_us: np.ndarray, volts: np.ndarray, parasitics: Parasitics, a_per_v: float, where: str = "a tile"
) -> np.ndarray:
    """Output currents (uA, float64 (n, C)) of a tile of sinh devices, I = (G / a) sinh(a V), with small-signal
    conductances ``g_us`` (R, C) for each row of ``volts`` (n, R), by Newton line relaxation per input vector to
    ``parasitics.tolerance_v``. Not converged in ``parasitics.max_sweeps`` sweeps: an :class:`XbarError` naming
    ``where`` and the residual. Needs r_row and r_col above zero (the configuration checks it)."""
    g = np.asarray(g_us, np.float64) * SIEMENS_PER_US
    flip_cols = parasitics.drive_end == DriveEnd.RIGHT
    flip_rows = parasitics.sense_end == SenseEnd.TOP
    g = g[::-1] if flip_rows else g
    g = np.ascontiguousarray(g[:, ::-1] if flip_cols else g)
    out = np.empty((volts.shape[0], g.shape[1]))
    args = (
        1.0 / parasitics.r_row_ohm,
        1.0 / parasitics.r_col_ohm,
        _conductance(parasitics.r_driver_ohm),
        _conductance(parasitics.r_sense_ohm),
        float(a_per_v),
        float(parasitics.tolerance_v),
        int(parasitics.max_sweeps),
    )
    for b in range(volts.shape[0]):
        v_in = np.ascontiguousarray(volts[b, ::-1] if flip_rows else volts[b], dtype=np.float64)
        sweeps, residual = nonlinear_tile(g, v_in, *args, out[b])
        if sweeps >= parasitics.max_sweeps:
            raise XbarError(
                f"the nonlinear solve of {where} did not converge in {sweeps} sweeps (KCL residual {residual:.2e} of "
                "the largest device current); raise parasitics.max_sweeps or parasitics.tolerance_v"
            )
    out = out[:, ::-1] if flip_cols else out
    return np.ascontiguousarray(out) / SIEMENS_PER_US
