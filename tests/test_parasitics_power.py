"""Dissipation of a tile with resistive wires (the quadratic forms behind the energy of every read), against the
node voltages of a direct dense solve of the full nodal system, and energy conservation."""

import itertools

import numpy as np
import pytest

from xbar.config import Parasitics
from xbar.crossbar.parasitics import tile_power, tile_transfer


def dissipation(g_us, volts, r_row, r_col, r_driver, r_sense, drive="left", sense="bottom"):
    """(devices, wires) power (W) of one read with row voltages ``volts``: every node voltage from a dense solve
    of Kirchhoff's current law (zero driver or sense resistance: the node is held), then g (difference)^2 summed
    over the devices, and over the wire segments, drivers and sense resistors. Wire resistances must be > 0."""
    g = np.asarray(g_us, np.float64) * 1e-6
    rows, cols = g.shape
    n = 2 * rows * cols
    u = lambda i, j: i * cols + j  # noqa: E731
    v = lambda i, j: rows * cols + i * cols + j  # noqa: E731
    a, b = np.zeros((n, n)), np.zeros(n)
    branches = []  # (node, node or None for a fixed voltage, conductance, fixed voltage, is a device)

    def add(p, q, conductance, fixed=0.0, device=False):
        branches.append((p, q, conductance, fixed, device))
        a[p, p] += conductance
        if q is None:
            b[p] += conductance * fixed
        else:
            a[q, q] += conductance
            a[p, q] -= conductance
            a[q, p] -= conductance

    drive_col = 0 if drive == "left" else cols - 1
    sense_row = rows - 1 if sense == "bottom" else 0
    held = {}
    for i in range(rows):
        for j in range(cols):
            add(u(i, j), v(i, j), g[i, j], device=True)
            if j < cols - 1:
                add(u(i, j), u(i, j + 1), 1 / r_row)
        if r_driver > 0:
            add(u(i, drive_col), None, 1 / r_driver, volts[i])
        else:
            held[u(i, drive_col)] = volts[i]
    for j in range(cols):
        for i in range(rows - 1):
            add(v(i, j), v(i + 1, j), 1 / r_col)
        if r_sense > 0:
            add(v(sense_row, j), None, 1 / r_sense, 0.0)
        else:
            held[v(sense_row, j)] = 0.0
    x = np.zeros(n)
    for k, value in held.items():
        x[k] = value
    free = [k for k in range(n) if k not in held]
    fixed = list(held)
    x[free] = np.linalg.solve(a[np.ix_(free, free)], b[free] - a[np.ix_(free, fixed)] @ x[fixed])
    devices = wires = 0.0
    for p, q, conductance, fixed_volts, device in branches:
        drop = x[p] - (fixed_volts if q is None else x[q])
        if device:
            devices += conductance * drop**2
        else:
            wires += conductance * drop**2
    return devices, wires


RESISTANCES = [(1.0, 1.0, 0.0, 0.0), (0.3, 2.5, 40.0, 0.3), (40.0, 0.3, 2.5, 40.0), (2.0, 5.0, 0.0, 7.0),
               (3.0, 1.0, 9.0, 0.0)]


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (3, 5), (7, 6), (12, 12)])
@pytest.mark.parametrize("resistances", RESISTANCES)
def test_dissipation_forms_match_a_direct_solve(shape, resistances):
    rng = np.random.default_rng(sum(shape))
    g = rng.uniform(1, 100, shape)
    for drive, sense in itertools.product(("left", "right"), ("bottom", "top")):
        q_dev, q_wire = tile_power(g, Parasitics(*resistances, drive_end=drive, sense_end=sense))
        assert np.allclose(q_dev, q_dev.T, rtol=1e-12, atol=0) and np.allclose(q_wire, q_wire.T, rtol=1e-12, atol=0)
        for _ in range(3):
            volts = rng.uniform(-0.2, 0.2, shape[0])
            devices, wires = dissipation(g, volts, *resistances, drive, sense)
            assert abs(volts @ q_dev @ volts - devices) <= 1e-9 * devices
            assert abs(volts @ q_wire @ volts - wires) <= 1e-9 * max(wires, 1e-30) + 1e-24


def test_energy_is_conserved_and_ideal_wires_dissipate_in_the_devices_alone():
    """What the sources deliver, V (I_in), is what the devices and wires dissipate; the forms fall to
    diag(sum_j G_ij) and 0 as the wires' resistance goes to 0."""
    rng = np.random.default_rng(5)
    g = rng.uniform(10, 200, (9, 7))
    q_dev, q_wire = tile_power(g, Parasitics(1e-9, 1e-9, 1e-9, 1e-9))
    ideal = np.diag(g.sum(axis=1)) * 1e-6
    assert np.abs(q_dev - ideal).max() <= 1e-6 * ideal.max()
    assert np.abs(q_wire).max() <= 1e-6 * ideal.max()
    q_dev, q_wire = tile_power(g, Parasitics(2.0, 2.0, 5.0, 5.0))
    assert np.all(np.linalg.eigvalsh(q_dev) > 0) and np.all(np.linalg.eigvalsh(q_wire) >= -1e-18)
    # The devices dissipate less than with ideal wires (their voltages drop), the wires dissipate more than 0.
    volts = rng.uniform(0, 0.2, 9)
    assert volts @ q_dev @ volts < volts @ ideal @ volts and volts @ q_wire @ volts > 0
    # Transfer and power agree on the output: with r_sense the sense resistors dissipate (I_j)^2 r_sense, part of
    # the wires' share, so the wires' form is at least that.
    currents = volts @ tile_transfer(g, Parasitics(2.0, 2.0, 5.0, 5.0)) * 1e-6
    assert volts @ q_wire @ volts >= 5.0 * (currents**2).sum()


@pytest.mark.parametrize("converters", [["dac.bits=0", "adc.bits=0"], ["dac.bits=6", "adc.bits=8"]])
def test_a_chips_energy_counts_are_the_dissipation_of_its_reads(converters):
    """Counted per inference through the chip (the folded linear read, and the read with converters): the devices'
    and the wires' dissipation of every read equal the direct solve's, summed over the reads and both arrays of
    the pairs, in units of V_read^2 uS."""
    from xbar.config import resolve
    from xbar.crossbar import program
    from xbar.nets import Dense, Network

    rng = np.random.default_rng(8)
    kernel = rng.normal(0, 0.4, (12, 7)).astype(np.float32)
    network = Network("one", "test", (12,), 7, [Dense(kernel=kernel, bias=None, activation="linear")])
    x = rng.uniform(0.05, 1.0, (5, 12)).astype(np.float32)
    resistances = (2.0, 3.0, 5.0, 7.0)
    wires = [f"parasitics.r_row_ohm={resistances[0]}", f"parasitics.r_col_ohm={resistances[1]}",
             f"parasitics.r_driver_ohm={resistances[2]}", f"parasitics.r_sense_ohm={resistances[3]}"]
    hw = resolve("reram", ["tile.rows=16", "tile.cols=16", "device.prog_sigma=0.5", *converters, *wires])
    chip = program(network, hw, 2, x)
    chip.forward(x)
    counts = chip.operation_counts().layers[0]
    matrix = chip.matrices[0]
    folded = converters[0] == "dac.bits=0"
    assert (matrix.linear is not None) == folded
    devices = wires_total = 0.0
    for image in x:
        drive = image / matrix.x_scale
        if not folded:  # the DAC's codes drive the rows
            levels = 2**6 - 1
            drive = np.floor(np.clip(drive, 0, 1) * levels + 0.5) / levels
        volts = drive.astype(np.float64) * matrix.v_read
        for side in matrix.conductances[0]:
            d, w = dissipation(side.astype(np.float64), volts, *resistances)
            devices += d
            wires_total += w
    unit = matrix.v_read**2 * 1e-6  # W per (V_read^2 uS)
    assert counts.cell_x2g_us == pytest.approx(devices / unit / len(x), rel=1e-6)
    assert counts.wire_x2g_us == pytest.approx(wires_total / unit / len(x), rel=1e-6)
    assert counts.wire_x2g_us > 0
    from xbar.energy import energy_report

    report = energy_report(chip.operation_counts(), hw)
    expected = wires_total / len(x) * hw.energy.t_read_ns * 1e-9
    assert report["parts_j"]["wires"] == pytest.approx(expected, rel=1e-6)
