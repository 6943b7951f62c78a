"""Nonlinear devices (I = (G / a) sinh(a V)) on resistive wires, solved per input vector: against a global Newton
solve of the full nodal system with scipy's sparse solver, superposition failing, the linear limit, and a solve
that does not converge reported in one line."""

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xbar.cli import main
from xbar.config import Parasitics
from xbar.crossbar.parasitics import nonlinear_currents, tile_transfer
from xbar.errors import XbarError

ROOT = Path(__file__).resolve().parents[1]
sp = pytest.importorskip("scipy.sparse")
spla = pytest.importorskip("scipy.sparse.linalg")


def reference_currents(g_us, volts, r_row, r_col, r_driver, r_sense, a, drive="left", sense="bottom"):
    """Output currents (uA) of a sinh-device tile for one input vector, by Newton's method on the whole nodal
    system (2 R C unknowns, sparse Jacobian solved by spsolve) until the step is below 1e-14 V. Written from the
    circuit's description alone (docs/parasitics.md); zero driver or sense resistance holds the node."""
    g = np.asarray(g_us, np.float64) * 1e-6
    rows, cols = g.shape
    n = 2 * rows * cols

    def u(i, j):
        return i * cols + j

    def v(i, j):
        return rows * cols + i * cols + j

    drive_col = 0 if drive == "left" else cols - 1
    sense_row = rows - 1 if sense == "bottom" else 0
    wires = sp.lil_matrix((n, n))
    b = np.zeros(n)

    def branch(p, q, conductance):
        wires[p, p] += conductance
        wires[q, q] += conductance
        wires[p, q] -= conductance
        wires[q, p] -= conductance

    for i in range(rows):
        for j in range(cols - 1):
            branch(u(i, j), u(i, j + 1), 1 / r_row)
    for j in range(cols):
        for i in range(rows - 1):
            branch(v(i, j), v(i + 1, j), 1 / r_col)
    fixed = {}
    for i in range(rows):
        if r_driver > 0:
            wires[u(i, drive_col), u(i, drive_col)] += 1 / r_driver
            b[u(i, drive_col)] += volts[i] / r_driver
        else:
            fixed[u(i, drive_col)] = volts[i]
    for j in range(cols):
        if r_sense > 0:
            wires[v(sense_row, j), v(sense_row, j)] += 1 / r_sense
        else:
            fixed[v(sense_row, j)] = 0.0
    wires = wires.tocsr()
    free = np.array([k for k in range(n) if k not in fixed])
    x = np.zeros(n)
    for k, value in fixed.items():
        x[k] = value
    x[: rows * cols][[k for k in range(rows * cols) if k not in fixed]] = np.repeat(volts, cols)[
        [k for k in range(rows * cols) if k not in fixed]
    ]
    cell_u = np.arange(rows * cols)
    cell_v = cell_u + rows * cols
    flat_g = g.ravel()
    for _ in range(100):
        dv = x[cell_u] - x[cell_v]
        current = flat_g / a * np.sinh(a * dv)
        slope = flat_g * np.cosh(a * dv)
        residual = wires @ x - b
        residual[cell_u] += current
        residual[cell_v] -= current
        jacobian = wires + sp.csr_matrix(
            (np.concatenate([slope, -slope, -slope, slope]),
             (np.concatenate([cell_u, cell_u, cell_v, cell_v]), np.concatenate([cell_u, cell_v, cell_u, cell_v]))),
            shape=(n, n))
        step = spla.spsolve(jacobian[free][:, free].tocsc(), -residual[free])
        x[free] += step
        if np.abs(step).max() < 1e-14:
            break
    dv = x[cell_u] - x[cell_v]
    current = (flat_g / a * np.sinh(a * dv)).reshape(rows, cols)
    vv = x[rows * cols:].reshape(rows, cols)
    if r_sense > 0:
        out = vv[sense_row] / r_sense
    else:  # the current arriving at the held node: from the column wire and from the device there
        neighbour = sense_row - 1 if sense == "bottom" else sense_row + 1
        out = (vv[neighbour] - 0.0) / r_col + current[sense_row] if rows > 1 else current[sense_row]
    return out * 1e6


CASES = [
    ((5, 4), (2.0, 1.5, 3.0, 0.7), ("left", "bottom")),
    ((8, 8), (1.0, 1.0, 0.0, 0.0), ("right", "top")),
    ((16, 12), (3.0, 0.5, 10.0, 0.0), ("left", "top")),
    ((24, 24), (0.5, 2.0, 0.0, 5.0), ("right", "bottom")),
    ((64, 64), (1.0, 1.0, 0.0, 0.0), ("left", "bottom")),
]


@pytest.mark.parametrize(("shape", "resistances", "ends"), CASES)
def test_nonlinear_tile_matches_a_newton_solve_of_the_full_system(shape, resistances, ends):
    rng = np.random.default_rng(shape[0])
    g = rng.uniform(20, 200, shape)
    volts = rng.uniform(0.0, 0.3, (2, shape[0]))
    parasitics = Parasitics(*resistances, drive_end=ends[0], sense_end=ends[1], tolerance_v=1e-13)
    ours = nonlinear_currents(g, volts, parasitics, 3.0)
    for b in range(2):
        expected = reference_currents(g, volts[b], *resistances, 3.0, *ends)
        difference = np.abs(ours[b] - expected).max() / np.abs(expected).max()
        print(f"{shape} {resistances} {ends}: max relative difference {difference:.1e}")
        assert difference <= 1e-6
    linear = volts @ tile_transfer(g, parasitics)
    assert np.abs(ours - linear).max() > 1e-4 * np.abs(linear).max()  # the nonlinearity shows at 0.3 V, a = 3


def test_superposition_fails_for_nonlinear_devices_and_the_linear_limit_holds():
    rng = np.random.default_rng(2)
    g = rng.uniform(50, 225, (20, 16))
    x1, x2 = rng.uniform(0, 0.1, (2, 20))
    parasitics = Parasitics(1.0, 1.0)
    both = nonlinear_currents(g, np.stack([x1, x2, x1 + x2]), parasitics, 3.0)
    gap = np.abs(both[2] - both[0] - both[1]).max() / np.abs(both[2]).max()
    assert gap > 1e-4  # sinh(a (x1 + x2)) is not sinh(a x1) + sinh(a x2): measured 2e-2 here
    # a -> 0: the sinh law is the linear one, and the solve gives the transfer matrix's currents.
    nearly_linear = nonlinear_currents(g, np.stack([x1, x2]), parasitics, 1e-7)
    expected = np.stack([x1, x2]) @ tile_transfer(g, parasitics)
    assert np.abs(nearly_linear - expected).max() <= 1e-9 * np.abs(expected).max()
    assert math.isfinite(gap)


def test_a_solve_that_does_not_converge_names_the_tile_and_the_residual(tmp_path):
    g = np.full((32, 32), 200.0)
    with pytest.raises(XbarError, match=r"did not converge in 2 sweeps \(KCL residual .* of the largest"):
        nonlinear_currents(g, np.full((1, 32), 0.2), Parasitics(10.0, 10.0, max_sweeps=2), 3.0, "layer 0")
    result = CliRunner().invoke(main, [
        "run", str(ROOT / "data" / "weights" / "mlp-mnist.h5"), "--hardware", "reram", "--limit", "4", "--quiet",
        "--set", "parasitics.r_row_ohm=5", "--set", "parasitics.r_col_ohm=5", "--set", "device.iv_model=sinh",
        "--set", "tile.rows=32", "--set", "tile.cols=32", "--set", "parasitics.max_sweeps=2",
    ])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "layer 0, weight slice 0" in lines[0] and "did not converge" in lines[0]
