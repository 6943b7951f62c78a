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
needed: R C^3 + R^2 C^2 / 2 operations per tile (1.5 s for 256 x 256 on one core here), float64 LAPACK
through numpy.
A zero resistance is an ideal connection: its nodes merge (a row or column wire of zero resistance is one
node; a zero driver or sense resistance holds its node at V_i or 0 V).
"""

from __future__ import annotations

import numba
import numpy as np

from .._threads import map_blocks
from ..config import DriveEnd, Parasitics, SenseEnd
from ..errors import ConfigError, XbarError
from ..kernels.parasitics import chain_inverse, chain_solve, nonlinear_tile
from .array import DenseArray, Partial

SIEMENS_PER_US = 1e-6

POWER_MEMORY_BYTES = 256 * 2**20
"""Memory the dissipation forms of one tile may use before :func:`tile_power` recomputes rather than keeps."""


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


def _conductances(parasitics: Parasitics) -> tuple[float, float, float, float]:
    """(g_row, g_col, g_driver, g_sense) in S, ``inf`` for a zero resistance."""
    return (
        _conductance(parasitics.r_row_ohm),
        _conductance(parasitics.r_col_ohm),
        _conductance(parasitics.r_driver_ohm),
        _conductance(parasitics.r_sense_ohm),
    )


def _flips(parasitics: Parasitics) -> tuple[bool, bool]:
    """(rows, columns) to mirror: the solvers drive rows from column 0 and sense columns at the last row, and
    the other ends are mirror images of that."""
    return parasitics.sense_end == SenseEnd.TOP, parasitics.drive_end == DriveEnd.RIGHT


def _oriented_siemens(g_us: np.ndarray, parasitics: Parasitics) -> np.ndarray:
    """A tile's conductances in S (float64, C-contiguous), mirrored into the solvers' orientation."""
    flip_rows, flip_cols = _flips(parasitics)
    g = np.asarray(g_us, np.float64)
    g = g[::-1] if flip_rows else g
    return np.ascontiguousarray(g[:, ::-1] if flip_cols else g) * SIEMENS_PER_US


def _column_block(g_row: np.ndarray, p: np.ndarray, i: int, n_rows: int, g_col: float, g_sense: float) -> np.ndarray:
    """Row i's block of the column-node equations once its row nodes are eliminated: diag(c_i + G_i) - G_i P_i,
    c_i the column wire to each neighbouring row and, on the sensed row, the sense resistor."""
    diagonal = g_row + g_col * ((i > 0) + (i < n_rows - 1)) + (g_sense if i == n_rows - 1 else 0.0)
    return np.diag(diagonal) - g_row[:, None] * p


def _one_node_columns(g: np.ndarray, responses: list, g_sense: float) -> np.ndarray:
    """The column nodes' equations when every column wire is one node (zero r_col): (C, C)."""
    return np.diag(g.sum(axis=0) + g_sense) - sum(g[i][:, None] * responses[i][0] for i in range(g.shape[0]))


def tile_transfer(g_us: np.ndarray, parasitics: Parasitics) -> np.ndarray:
    """The transfer matrix T (uS, float64, (R, C)) of a tile of conductances ``g_us``: I_j = sum_i T_ij V_i.

    All resistances zero gives ``g_us`` itself (as float64).
    """
    g = np.asarray(g_us, np.float64)
    if not parasitics.active:
        return g.copy()
    flip_rows, flip_cols = _flips(parasitics)
    transfer = _solve(_oriented_siemens(g, parasitics), *_conductances(parasitics))
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
        v = np.linalg.solve(_one_node_columns(g, responses, g_sense), np.array(rhs).T)  # (C, R): per driven row
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
        block = _column_block(g[i], responses[i][0], i, n_rows, g_col, g_sense)
        if i > 0:
            block -= g_col * g_col * inverse
            carried[:, :i] = g_col * (inverse @ carried[:, :i])
        carried[:, i] = rhs[i]
        inverse = np.linalg.inv(block)
    v_last = inverse @ carried  # (C, free): the last free row's column nodes for each driven row
    # Into the amplifier: through r_sense from the sensed node, or (held at 0 V) from the last free row above it.
    transfer[:free] = ((g_col if free < n_rows else g_sense) * v_last).T
    return transfer


def tile_power(g_us: np.ndarray, parasitics: Parasitics) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic forms of a tile's dissipation (S, float64 (R, R)): a read with row voltages V (V) dissipates
    V Q_dev V in its devices and V Q_wire V in its wires, drivers and sense resistors (W).

    Every node's voltage for every driven row comes from the same elimination as :func:`tile_transfer`, run
    forward and then back, with checkpoints every sqrt(R) rows so that memory stays at about 2 sqrt(R) (C^2 + C R)
    numbers; the forms sum g (difference of the node voltages)^2 over every device and wire segment.
    """
    q_dev, q_wire = _power(_oriented_siemens(g_us, parasitics), *_conductances(parasitics))
    if _flips(parasitics)[0]:  # the inputs are the rows: reorder both axes of the forms
        q_dev, q_wire = q_dev[::-1, ::-1], q_wire[::-1, ::-1]
    return np.ascontiguousarray(q_dev), np.ascontiguousarray(q_wire)


def _row_volts(g_row, response, column_volts, row, g_wire, g_driver) -> np.ndarray:
    """The row's node voltages (C, R) for every driven row, given its column nodes' (``column_volts``, (C, R)):
    u = P v + q V, solved on the row's chain (n R operations) rather than multiplied by the dense P."""
    p, q = response
    n_cols, n_inputs = column_volts.shape
    if np.isinf(g_wire) or (np.isinf(g_driver) and n_cols == 1):
        u = p @ column_volts
    elif np.isinf(g_driver):  # node 0 held: the rest is a chain hanging from it
        u = np.zeros((n_cols, n_inputs))
        chain_solve(g_row[1:], g_wire, g_wire, g_row[1:, None] * column_volts[1:], u[1:])
    else:
        u = np.empty((n_cols, n_inputs))
        chain_solve(g_row, g_wire, g_driver, g_row[:, None] * column_volts, u)
    u[:, row] += q
    return u


def _row_power(g_row, response, column_volts, row, g_wire, g_driver, q_dev, q_wire) -> None:
    """Add row ``row``'s device, row-wire and driver dissipation to the forms, given its column nodes' voltages
    for every driven row (``column_volts``, (C, R))."""
    u = _row_volts(g_row, response, column_volts, row, g_wire, g_driver)
    across = (u - column_volts) * np.sqrt(g_row)[:, None]
    q_dev += across.T @ across
    if not np.isinf(g_wire) and u.shape[0] > 1:
        step = np.diff(u, axis=0)
        q_wire += g_wire * (step.T @ step)
    if not np.isinf(g_driver):
        source = -u[0]
        source[row] += 1.0
        q_wire += g_driver * np.outer(source, source)


def _power(g, g_row, g_col, g_driver, g_sense) -> tuple[np.ndarray, np.ndarray]:
    """(Q_dev, Q_wire) for rows driven at column 0 and columns sensed at row R-1 (conductances in S)."""
    n_rows, n_cols = g.shape
    responses = [row_response(g[i], g_row, g_driver) for i in range(n_rows)]
    rhs = [g[i] * responses[i][1] for i in range(n_rows)]
    q_dev, q_wire = np.zeros((n_rows, n_rows)), np.zeros((n_rows, n_rows))
    if np.isinf(g_col):  # every column wire is one node, the same voltages on every row
        if np.isinf(g_sense):
            volts = np.zeros((n_cols, n_rows))
        else:
            volts = np.linalg.solve(_one_node_columns(g, responses, g_sense), np.array(rhs).T)
            q_wire += g_sense * (volts.T @ volts)
        for i in range(n_rows):
            _row_power(g[i], responses[i], volts, i, g_row, g_driver, q_dev, q_wire)
        return q_dev, q_wire
    free = n_rows if not np.isinf(g_sense) else n_rows - 1
    if free < n_rows:  # the sensed row is held at 0 V
        _row_power(
            g[n_rows - 1], responses[n_rows - 1], np.zeros((n_cols, n_rows)), n_rows - 1, g_row, g_driver, q_dev, q_wire
        )
    if free == 0:
        return q_dev, q_wire

    def forward(i: int, inverse_before, carried_before):
        """Row i of the elimination: (D_i^-1, Y_i), the Y of every driven row as columns (C, R)."""
        a = _column_block(g[i], responses[i][0], i, n_rows, g_col, g_sense)
        carried = np.zeros((n_cols, n_rows))
        if i > 0:
            a -= g_col * g_col * inverse_before
            carried[:, :i] = g_col * (inverse_before @ carried_before[:, :i])
        carried[:, i] = rhs[i]
        return np.linalg.inv(a), carried

    # Every row's (D^-1, Y) kept while they fit in POWER_MEMORY_BYTES; else kept every sqrt(R) rows and the rows
    # between recomputed on the way back.
    span = free if 8 * free * (n_cols * n_cols + n_cols * n_rows) <= POWER_MEMORY_BYTES else int(np.ceil(np.sqrt(free)))
    checkpoints = {}
    state = (None, None)
    for i in range(free):
        if i % span == 0:
            checkpoints[i] = state
        state = forward(i, *state)
    below = np.zeros((n_cols, n_rows))  # the column nodes of the row after the current one (0 V past the end)
    for start in sorted(checkpoints, reverse=True):
        stop = min(start + span, free)
        states, state = [], checkpoints[start]
        for i in range(start, stop):
            state = forward(i, *state)
            states.append(state)
        for i in range(stop - 1, start - 1, -1):
            inverse, carried = states[i - start]
            volts = inverse @ (carried + g_col * below) if i < free - 1 else inverse @ carried
            _row_power(g[i], responses[i], volts, i, g_row, g_driver, q_dev, q_wire)
            step = volts - below if i < n_rows - 1 else volts
            if i < n_rows - 1:  # the segment to the row below (held at 0 V when that row is sensed and held)
                q_wire += g_col * (step.T @ step)
            else:  # the sense resistor
                q_wire += g_sense * (volts.T @ volts)
            below = volts
    return q_dev, q_wire


class NodalArray(DenseArray):
    """Resistive wires: every (row tile x column tile) block of every slice and side is solved as a circuit
    once (:func:`tile_transfer`), and a read is the product of the inputs with V_read T, as for ideal wires.

    A differential pair's G+ and G- sit in two arrays of the block's shape, each solved on its own. Read noise
    is drawn at the outputs, per column, with the variance V^2 sum_i x_i^2 sigma_ij^2 of the devices
    (``device.read_noise_mode = "device"`` included: a per-device draw would need every node's voltage at every
    read). Takes the :class:`DenseArray` arguments, and ``parasitics`` and the column tiles. So read clipping
    (``device.read_clip``) is taken only where it cannot bind (:meth:`DenseArray.clip_binds`); elsewhere it is
    a :class:`ConfigError`.
    """

    def __init__(self, *args, parasitics: Parasitics, col_tiles: list[tuple[int, int]]):
        super().__init__(*args)
        bound = [key for key, binds in self.binds.items() if binds]
        if bound:
            s, t, _ = bound[0]
            r0, r1 = self.row_tiles[t]
            raise ConfigError(
                f"device.read_clip = {self.device.read_clip!r} with resistive wires: clipping can bind on layer "
                f"{self.layer} (weight slice {s}, rows {r0}-{r1 - 1}: a device within 8 read-noise widths of a bound) "
                "and needs a per-device read, which the nodal solver does not draw; use device.read_clip = none"
            )
        self.parasitics, self.col_tiles = parasitics, col_tiles
        self.device_mode = False
        self.linear = self.device.iv_model == "linear"
        self.forms = [(np.zeros((r1 - r0, r1 - r0)), np.zeros((r1 - r0, r1 - r0))) for r0, r1 in self.row_tiles]
        """Per row tile, the dissipation forms (Q_dev, Q_wire) (uS, float64) summed over its arrays: a read of
        normalised inputs x on the tile dissipates V_read^2 x^T Q x in devices and in wires (:func:`tile_power`)."""
        self.transfer = [[self._solve_blocks(g, col_tiles) for g in row] for row in self.conductances]
        """Per weight slice and side, float32 (n_rows, n_out): T of each block in place of G (uS); for nonlinear
        devices, of their small-signal conductances (the ADC's ``max`` range is worked out from it)."""

    def _solve_blocks(self, g: np.ndarray, col_tiles: list[tuple[int, int]]) -> np.ndarray:
        """T of every block of ``g``, and its dissipation forms added to :attr:`forms`; the blocks solved side by
        side on the Numba threads (each independent)."""
        out = np.empty(g.shape, np.float32)
        blocks = [(t, (r0, r1), cols) for t, (r0, r1) in enumerate(self.row_tiles) for cols in col_tiles]

        def solve(first: int, stop: int) -> list:
            forms = []
            for t, (r0, r1), (c0, c1) in blocks[first:stop]:
                out[r0:r1, c0:c1] = tile_transfer(g[r0:r1, c0:c1], self.parasitics)
                forms.append((t, tile_power(g[r0:r1, c0:c1], self.parasitics)))
            return forms

        assert self.forms is not None
        for forms in map_blocks(solve, [(b, b + 1) for b in range(len(blocks))], numba.get_num_threads()):
            for t, (q_dev, q_wire) in forms:  # summed here, in block order: the same bits on any thread count
                self.forms[t][0][...] += q_dev / SIEMENS_PER_US
                self.forms[t][1][...] += q_wire / SIEMENS_PER_US
        return out

    def dissipation(self, inputs: list[np.ndarray], scale: float = 1.0) -> tuple[float, float]:
        """(devices, wires): sum over the batch, the input slices and the row tiles of x^T Q x (uS, x the
        normalised inputs of each input slice, (n, n_rows), in units of V_read), for inputs given as ``scale``
        times x (float32).

        The forms are dense (the currents of all rows share the column wires), so this is the inputs' Gram matrix
        per row tile, n R^2 operations: about as much as the read's own product for a square tile.
        """
        assert self.forms is not None
        devices = wires = 0.0
        for x in inputs:
            for (r0, r1), (q_dev, q_wire) in zip(self.row_tiles, self.forms):
                part = x[:, r0:r1]  # a view: BLAS takes its row stride as is
                gram = (part.T @ part).astype(np.float64)  # float32 products, traces in float64
                devices += float(np.vdot(q_dev, gram))
                wires += float(np.vdot(q_wire, gram))
        return devices / scale**2, wires / scale**2

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
    flip_rows, flip_cols = _flips(parasitics)
    g = _oriented_siemens(g_us, parasitics)
    out = np.empty((volts.shape[0], g.shape[1]))
    args = (
        *_conductances(parasitics),
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
