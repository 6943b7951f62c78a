"""xbar's wire-resistance tile solver against an independent nodal-analysis reference (tests/nodal_reference.py).

The reference builds every node of the tile, merges 0-ohm connections, and solves Kirchhoff's current law with
``scipy.sparse.linalg.spsolve``; it shares no code with xbar. Closed forms (ladder networks, lumped wires) check
both the reference and xbar. Skipped where ``xbar.crossbar.parasitics`` cannot be imported.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pytest

from xbar.config import Parasitics

from .conftest import ROOT
from .nodal_reference import tile_currents, tile_transfer_ref

try:
    from xbar.crossbar.parasitics import tile_transfer
except ImportError:  # the solver is not there yet
    tile_transfer = None

needs_solver = pytest.mark.skipif(tile_transfer is None, reason="xbar.crossbar.parasitics.tile_transfer missing")

TOL = 1e-9
"""Relative agreement asked of xbar's solver: max |T - T_ref| / max |T_ref|."""

SIZES = [(1, 1), (1, 5), (5, 1), (3, 4), (16, 16), (64, 64), (37, 23)]
ENDS = list(itertools.product(["left", "right"], ["bottom", "top"]))
VALUES = (0.0, 0.3, 2.5, 40.0)

# (r_row, r_col, r_driver, r_sense) in ohm.
RESISTANCES = {
    "all-four": (0.3, 2.5, 40.0, 0.3),
    "all-four-strong": (40.0, 40.0, 2.5, 2.5),
    "wires-1-ideal-ends": (1.0, 1.0, 0.0, 0.0),
    "only-col": (0.0, 2.5, 0.0, 0.0),
    "only-row": (2.5, 0.0, 0.0, 0.0),
    "only-driver": (0.0, 0.0, 40.0, 0.0),
    "only-sense": (0.0, 0.0, 0.0, 40.0),
    "row-and-sense": (0.3, 0.0, 0.0, 2.5),
    "col-and-driver": (0.0, 0.3, 2.5, 0.0),
}
_draws = np.random.default_rng(2024).choice(VALUES, size=(40, 4))
for _k, _r in enumerate([r for r in _draws if (r > 0).any()][:4]):
    RESISTANCES[f"random-{_k}"] = tuple(float(x) for x in _r)


def _kwargs(res, drive_end="left", sense_end="bottom"):
    r_row, r_col, r_driver, r_sense = res
    return dict(r_row=r_row, r_col=r_col, r_driver=r_driver, r_sense=r_sense, drive_end=drive_end,
                sense_end=sense_end)


def _parasitics(kw) -> Parasitics:
    return Parasitics(r_row_ohm=kw["r_row"], r_col_ohm=kw["r_col"], r_driver_ohm=kw["r_driver"],
                      r_sense_ohm=kw["r_sense"], drive_end=kw["drive_end"], sense_end=kw["sense_end"])


def _xbar(g, **kw):
    return tile_transfer(np.asarray(g, np.float64), _parasitics(kw))


def _ref(g, **kw):
    return tile_transfer_ref(g, **kw)


def _rel(got, expected):
    return float(np.abs(got - expected).max() / np.abs(expected).max())


@cache
def _tile(shape: tuple[int, int]) -> np.ndarray:
    seed = 100 * shape[0] + shape[1]
    return np.random.default_rng(seed).uniform(1.0, 100.0, shape)


@cache
def _cached_ref(shape, res, drive_end, sense_end):
    return tile_transfer_ref(_tile(shape), **_kwargs(res, drive_end, sense_end))


SOLVERS = {"reference": _ref, "xbar": _xbar}


def _solvers():
    return [pytest.param("reference"), pytest.param("xbar", marks=needs_solver)]


# ------------------------------------------------------------------ 1. against the nodal reference
@needs_solver
@pytest.mark.parametrize("ends", ENDS, ids=["-".join(e) for e in ENDS])
@pytest.mark.parametrize("name", list(RESISTANCES))
@pytest.mark.parametrize("shape", SIZES, ids=[f"{r}x{c}" for r, c in SIZES])
def test_transfer_matches_nodal_reference(shape, name, ends):
    res = RESISTANCES[name]
    g = _tile(shape)
    expected = _cached_ref(shape, res, *ends)
    got = tile_transfer(g.copy(), _parasitics(_kwargs(res, *ends)))
    assert got.shape == g.shape and got.dtype == np.float64
    assert _rel(got, expected) <= TOL
    # A resistance that is in the circuit loses current: the reference must not be the ideal G.
    r_row, r_col, r_driver, r_sense = res
    if r_driver > 0 or r_sense > 0 or (r_row > 0 and shape[1] > 1) or (r_col > 0 and shape[0] > 1):
        assert _rel(expected, g) > 1e-6
    else:  # a 1-column tile has no row wire, a 1-row tile no column wire
        assert np.array_equal(got, g) or _rel(got, g) <= 1e-15


@needs_solver
@pytest.mark.parametrize("ends", ENDS, ids=["-".join(e) for e in ENDS])
@pytest.mark.parametrize("name", ["all-four", "wires-1-ideal-ends", "only-col", "only-row", "random-0"])
@pytest.mark.parametrize("shape", [(3, 4), (16, 16), (37, 23)], ids=["3x4", "16x16", "37x23"])
def test_random_inputs_match_a_direct_solve(shape, name, ends):
    """I = V @ T against the reference's direct solve with non-unit, mixed-sign source voltages."""
    rng = np.random.default_rng(7)
    kw = _kwargs(RESISTANCES[name], *ends)
    g = _tile(shape)
    v = np.concatenate([rng.uniform(0.0, 1.0, (shape[0], 1)), rng.uniform(-1.0, 1.0, (shape[0], 3))], axis=1)
    direct = tile_currents(g, v, **kw)  # (4, C)
    got = v.T @ _xbar(g, **kw)
    scale = np.abs(v.T) @ np.abs(_cached_ref(shape, RESISTANCES[name], *ends))  # no cancellation in the scale
    assert np.abs(got - direct).max() <= TOL * scale.max()
    assert _rel(got[0], direct[0]) <= TOL  # the nonnegative vector, relative to itself


# ------------------------------------------------------------------ 2. closed forms
def _column_ladder_current(n_rows, g_us, r_col):
    """Total current of one column of ``n_rows`` identical devices G, every row driven at 1 V through ideal
    drivers, column wire r between adjacent cells, sensed at one end through r_sense = 0.

    With w_i = V - v_i (v_i the column node of row i, counted from the far end), KCL gives the homogeneous
    second-order recurrence w_{i+1} - (2 + G r) w_i + w_{i-1} = 0 of a uniform resistive ladder (e.g. Weinberg,
    "Network Analysis and Synthesis", uniform ladder networks; the discrete cable equation), solved by
    w_i = A cosh((i + 1/2) theta) with cosh(theta) = 1 + G r / 2: the half-step shift makes the open far end
    (G w_0 = (w_1 - w_0) / r) hold, and w_{R-1} = V fixes A. The current is the sum of the device currents,
    I = G V sum_i cosh((i + 1/2) theta) / cosh((R - 1/2) theta) = G V sinh(R theta) / (2 sinh(theta / 2)
    cosh((R - 1/2) theta)), which is R G V as r -> 0.
    """
    theta = np.arccosh(1.0 + g_us * 1e-6 * r_col / 2.0)
    return g_us * np.sinh(n_rows * theta) / (2.0 * np.sinh(theta / 2.0) * np.cosh((n_rows - 0.5) * theta))


def _row_ladder_transfer(n_cols, g_us, r_row):
    """T of one row of ``n_cols`` identical devices G driven at column 0 through r_driver = 0, row wire r,
    every column held at 0 V (r_col is irrelevant for one row; r_sense = 0). The same recurrence on the row
    nodes, u_{j+1} - (2 + G r) u_j + u_{j-1} = 0, with u_0 = V and an open far end, where
    (u_{C-2} - u_{C-1}) / r = G u_{C-1} puts the mirror point at j = C - 1/2:
    u_j = V cosh((C - 1/2 - j) theta) / cosh((C - 1/2) theta), so T_0j = G u_j / V, cosh(theta) = 1 + G r / 2
    (two cells: u_1 = V / (1 + G r), the divider)."""
    theta = np.arccosh(1.0 + g_us * 1e-6 * r_row / 2.0)
    j = np.arange(n_cols)
    return g_us * np.cosh((n_cols - 0.5 - j) * theta) / np.cosh((n_cols - 0.5) * theta)


@pytest.mark.parametrize("solver", _solvers())
@pytest.mark.parametrize("n_rows", [1, 2, 7, 64, 256])
@pytest.mark.parametrize("r_col", [0.3, 2.5, 40.0])
@pytest.mark.parametrize("sense_end", ["bottom", "top"])
def test_single_column_ladder_closed_form(solver, n_rows, r_col, sense_end):
    g_us = 73.0
    expected = _column_ladder_current(n_rows, g_us, r_col)
    kw = dict(r_row=5.0, r_col=r_col, r_driver=0.0, r_sense=0.0, drive_end="left", sense_end=sense_end)
    t = SOLVERS[solver](np.full((n_rows, 1), g_us), **kw)  # r_row: no row wire in one column
    total = float(np.ones(n_rows) @ t[:, 0])
    assert abs(total - expected) <= TOL * expected
    if n_rows > 1:
        assert total < n_rows * g_us * (1 - 1e-7)  # the IR drop is there


@pytest.mark.parametrize("solver", _solvers())
@pytest.mark.parametrize("n_cols", [1, 2, 9, 64, 256])
@pytest.mark.parametrize("r_row", [0.3, 2.5, 40.0])
@pytest.mark.parametrize("drive_end", ["left", "right"])
def test_single_row_ladder_closed_form(solver, n_cols, r_row, drive_end):
    g_us = 41.0
    expected = _row_ladder_transfer(n_cols, g_us, r_row)
    expected = expected if drive_end == "left" else expected[::-1]
    kw = dict(r_row=r_row, r_col=7.0, r_driver=0.0, r_sense=0.0, drive_end=drive_end, sense_end="bottom")
    t = SOLVERS[solver](np.full((1, n_cols), g_us), **kw)
    assert _rel(t[0], expected) <= TOL


@pytest.mark.parametrize("solver", _solvers())
def test_one_cell_is_three_resistors_in_series(solver):
    for g_us, r_driver, r_sense in [(50.0, 100.0, 200.0), (1.0, 40.0, 0.0), (225.0, 0.0, 0.3)]:
        kw = dict(r_row=3.0, r_col=9.0, r_driver=r_driver, r_sense=r_sense, drive_end="right", sense_end="top")
        expected = 1e6 / (1e6 / g_us + r_driver + r_sense)
        got = SOLVERS[solver](np.array([[g_us]]), **kw)[0, 0]
        assert abs(got - expected) <= TOL * expected


@pytest.mark.parametrize("solver", _solvers())
@pytest.mark.parametrize("shape", [(5, 1), (16, 16), (37, 23)])
def test_lumped_driver_and_sense_closed_forms(solver, shape):
    """Ideal wires: each row is one node behind r_driver, each column one node in front of r_sense.

    Only r_driver: u_i = V_i g_d / (g_d + sum_j G_ij), so T_ij = G_ij g_d / (g_d + sum_j G_ij).
    Only r_sense: v_j = sum_i G_ij V_i / (g_s + sum_i G_ij), so T_ij = G_ij g_s / (g_s + sum_i G_ij).
    """
    g = _tile(shape)
    for drive_end, sense_end in ENDS:
        gd = 1e6 / 2.5
        t = SOLVERS[solver](g, **_kwargs((0.0, 0.0, 2.5, 0.0), drive_end, sense_end))
        assert _rel(t, g * gd / (gd + g.sum(axis=1, keepdims=True))) <= TOL
        gs = 1e6 / 40.0
        t = SOLVERS[solver](g, **_kwargs((0.0, 0.0, 0.0, 40.0), drive_end, sense_end))
        assert _rel(t, g * gs / (gs + g.sum(axis=0, keepdims=True))) <= TOL


# ------------------------------------------------------------------ 3. zero resistances
@needs_solver
@pytest.mark.parametrize("ends", ENDS, ids=["-".join(e) for e in ENDS])
def test_zero_resistance_is_exactly_g(ends):
    g = _tile((37, 23))
    par = Parasitics(drive_end=ends[0], sense_end=ends[1])
    assert not par.active
    t = tile_transfer(g, par)
    assert t.dtype == np.float64 and np.array_equal(t, g)
    assert np.array_equal(tile_transfer(g.astype(np.float32), par), g.astype(np.float32).astype(np.float64))
    # The reference merges every node: nothing left to solve, the same numbers.
    assert np.array_equal(tile_transfer_ref(g, **_kwargs((0.0,) * 4, *ends)), g)


@pytest.mark.parametrize("solver", _solvers())
def test_tiny_resistances_approach_g(solver):
    g = _tile((16, 16))
    t = SOLVERS[solver](g, **_kwargs((1e-7, 1e-7, 1e-7, 1e-7), "right", "top"))
    assert 0 < _rel(t, g) < 1e-7


# ------------------------------------------------------------------ 4. monotonic in wire resistance
@pytest.mark.parametrize("solver", _solvers())
@pytest.mark.parametrize("which", ["wires", "all-four"])
@pytest.mark.parametrize("ends", ENDS, ids=["-".join(e) for e in ENDS])
def test_total_current_falls_as_resistance_grows(solver, which, ends):
    rng = np.random.default_rng(11)
    g = _tile((16, 16))
    v = rng.uniform(0.0, 1.0, 16)
    totals = [float(v @ g.sum(axis=1))]  # ideal wires
    for r in [0.01, 0.1, 1.0, 10.0, 100.0]:
        res = (r, r, 0.0, 0.0) if which == "wires" else (r, r, r, r)
        totals.append(float((v @ SOLVERS[solver](g, **_kwargs(res, *ends))).sum()))
    assert all(b < a for a, b in zip(totals, totals[1:])), totals


# ------------------------------------------------------------------ 5. superposition
@needs_solver
@pytest.mark.parametrize("name", ["all-four", "only-row", "random-1"])
def test_superposition(name):
    rng = np.random.default_rng(5)
    shape = (37, 23)
    g = _tile(shape)
    kw = _kwargs(RESISTANCES[name], "right", "bottom")
    t = _xbar(g, **kw)
    v1, v2 = rng.uniform(0.0, 1.0, shape[0]), rng.uniform(-0.5, 1.0, shape[0])
    scale = float(np.abs(v1 + v2) @ np.abs(t).max(axis=1)) + float(np.abs(v1) @ np.abs(t).max(axis=1))
    eps = 64 * np.finfo(np.float64).eps * shape[0]
    assert np.abs((v1 + v2) @ t - (v1 @ t + v2 @ t)).max() <= eps * scale  # linear by construction
    # The circuit itself is linear: the direct solves add up, and agree with T.
    i1, i2, i12 = (tile_currents(g, v, **kw) for v in (v1, v2, v1 + v2))
    assert np.abs(i12 - (i1 + i2)).max() <= 1e-12 * np.abs(i12).max()
    assert np.abs((v1 + v2) @ t - i12).max() <= TOL * np.abs(i12).max()


# ------------------------------------------------------------------ 6. sign and bounds
@pytest.mark.parametrize("solver", _solvers())
@pytest.mark.parametrize("name", list(RESISTANCES))
@pytest.mark.parametrize("ends", ENDS, ids=["-".join(e) for e in ENDS])
def test_transfer_is_nonnegative_and_only_loses_current(solver, name, ends):
    """Node voltages lie between 0 and the one 1 V source (maximum principle), so no amplifier current is
    negative, row i's total current is at most sum_j G_ij, and column j's (all rows at 1 V) at most sum_i G_ij.
    Some devices are 0 here (no device, or stuck off): the circuit stays solvable."""
    rng = np.random.default_rng(3)
    g = _tile((16, 16)) * (rng.random((16, 16)) > 0.3)
    t = SOLVERS[solver](g, **_kwargs(RESISTANCES[name], *ends))
    slack = 1e-12 * g.max()
    assert (t >= -slack).all()
    assert (t.sum(axis=1) <= g.sum(axis=1) + slack).all()
    assert (t.sum(axis=0) <= g.sum(axis=0) + slack).all()
    assert t.sum() < g.sum() * (1 - 1e-7)


def test_reference_ends_are_mirror_images():
    """Driving from the right is driving the column-mirrored tile from the left; sensing at the top likewise
    for rows (a check of the reference's own end handling)."""
    g = _tile((37, 23))
    res = RESISTANCES["all-four"]
    base = tile_transfer_ref(g, **_kwargs(res))
    right = tile_transfer_ref(g[:, ::-1], **_kwargs(res, "right", "bottom"))[:, ::-1]
    top = tile_transfer_ref(g[::-1], **_kwargs(res, "left", "top"))[::-1]
    assert _rel(right, base) < 1e-12 and _rel(top, base) < 1e-12
    assert _rel(tile_transfer_ref(g, **_kwargs(res, "right", "bottom")), base) > 1e-4


# ------------------------------------------------------------------ the public API
def _mlp_logits(overrides, n_images=64):
    from xbar import data, io
    from xbar.config import resolve
    from xbar.crossbar import program

    images, _ = data.load("mnist", "test", limit=n_images)
    network = io.load(ROOT / "data" / "weights" / "mlp-mnist.h5")
    hw = resolve("reram", ["tile.rows=64", "tile.cols=64", *overrides])
    chip = program(network, hw, 3, images[:32])
    return chip.forward(images, 0)


@needs_solver
def test_chip_with_zero_parasitics_is_bit_identical():
    default = _mlp_logits([])
    zero = _mlp_logits(["parasitics.r_row_ohm=0.0", "parasitics.drive_end=right", "parasitics.sense_end=top"])
    assert np.array_equal(default, zero)


@needs_solver
def test_chip_with_wire_resistance_differs_but_stays_close():
    """1 ohm per cell on 64 x 64 tiles of 50-225 uS devices (G r C^2 / 2 ~ 0.3 along a row): measured, the
    logits shrink (least-squares scale 0.84, largest change 0.16 of the largest logit) while all 64 predicted
    classes stay."""
    ideal = _mlp_logits([])
    wired = _mlp_logits(["parasitics.r_row_ohm=1.0", "parasitics.r_col_ohm=1.0"])
    assert not np.array_equal(ideal, wired)
    rel = float(np.abs(wired - ideal).max()) / float(np.abs(ideal).max())
    assert 1e-3 < rel < 0.8, rel
    scale = float((ideal * wired).sum() / (ideal * ideal).sum())
    assert 0.3 < scale < 1.0, scale  # IR drop only loses current
    assert np.mean(ideal.argmax(1) == wired.argmax(1)) >= 0.9
