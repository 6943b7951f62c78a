"""An independent nodal-analysis reference for one crossbar tile with wire resistance (IR drop).

Shares no code with :mod:`xbar`: the circuit is written down node by node and solved with
``scipy.sparse.linalg.spsolve``. Units: conductances in microsiemens (uS), resistances in ohm,
voltages in volts, currents in microamperes (uS x V = uA); a resistance r ohm is a conductance
1e6 / r uS.

The circuit of an R x C tile:

- a row node ``u[i, j]`` and a column node ``v[i, j]`` at every cell; device (i, j) is the
  conductance ``G[i, j]`` between them;
- row wire: ``r_row`` between ``u[i, j]`` and ``u[i, j + 1]``;
- row i's driver: an ideal source ``V_i`` (a fixed node ``s_i``) in series with ``r_driver`` into
  the driven end, ``u[i, 0]`` (``drive_end="left"``) or ``u[i, C - 1]`` (``"right"``);
- column wire: ``r_col`` between ``v[i, j]`` and ``v[i + 1, j]``;
- column j's sense amplifier: a fixed node ``a_j`` at 0 V (its virtual ground) reached from the
  sensed end, ``v[R - 1, j]`` (``sense_end="bottom"``) or ``v[0, j]`` (``"top"``), through
  ``r_sense``. ``I_j`` is the current flowing into ``a_j``.

Every amplifier gets its own 0 V node so that each column's current can be read off as the sum of
the currents of the branches that end on it. A resistance of exactly 0 is an ideal connection: its
two nodes are merged (connected components of the 0-ohm branches) before the matrix is built, so a merged
group holding ``s_i`` is held at ``V_i`` and one holding ``a_j`` at 0 V. No two fixed nodes can ever merge (devices are
never ideal), and every node reaches a fixed node through wires, so the reduced matrix is
nonsingular even where devices are 0.

Kirchhoff's current law at every free group k: sum over branches (k, m) of g_km (V_k - V_m) = 0,
i.e. ``A V_free = B V_fixed`` with A the (symmetric, diagonally dominant) conductance matrix of the
free groups and B the conductances from free to fixed groups.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components


def tile_currents(g_us, v_rows, r_row=0.0, r_col=0.0, r_driver=0.0, r_sense=0.0,
                  drive_end="left", sense_end="bottom") -> np.ndarray:
    """Sense-amplifier currents (uA) of the tile ``g_us`` (R, C) for row source voltages ``v_rows`` (V).

    ``v_rows``: (R,) or (R, m), m input vectors solved at once. Returns (C,) or (m, C).
    """
    g = np.asarray(g_us, dtype=np.float64)
    R, C = g.shape
    vin = np.asarray(v_rows, dtype=np.float64)
    single = vin.ndim == 1
    vin = vin.reshape(R, -1)
    m = vin.shape[1]
    if drive_end not in ("left", "right") or sense_end not in ("bottom", "top"):
        raise ValueError(f"bad ends {drive_end!r}, {sense_end!r}")

    # Node numbering: u[i, j] and v[i, j] interleaved cell by cell (a banded matrix), then the sources s_i,
    # then the amplifier grounds a_j.
    u = 2 * np.arange(R * C).reshape(R, C)
    v = u + 1
    s = 2 * R * C + np.arange(R)
    a = 2 * R * C + R + np.arange(C)
    n_nodes = 2 * R * C + R + C
    jd = 0 if drive_end == "left" else C - 1
    ie = R - 1 if sense_end == "bottom" else 0

    # Every branch: two node arrays and a resistance (ohm); devices are conductances, never ideal.
    wires = [
        (u[:, :-1].ravel(), u[:, 1:].ravel(), float(r_row)),  # row wires
        (v[:-1, :].ravel(), v[1:, :].ravel(), float(r_col)),  # column wires
        (s, u[:, jd], float(r_driver)),  # drivers
        (v[ie, :], a, float(r_sense)),  # sense amplifiers
    ]

    # Merge the ideal (0 ohm) connections: each connected component of them is one node.
    ideal = [(p, q) for p, q, r in wires if r == 0.0 and p.size]
    if ideal:
        p = np.concatenate([x[0] for x in ideal])
        q = np.concatenate([x[1] for x in ideal])
        graph = sp.coo_matrix((np.ones(p.size), (p, q)), shape=(n_nodes, n_nodes))
        _, group = connected_components(graph, directed=False)
    else:
        group = np.arange(n_nodes)
    n_groups = group.max() + 1

    # Fixed groups and their voltages, one column per input vector.
    fixed = np.zeros(n_groups, bool)
    fixed_v = np.zeros((n_groups, m))
    for nodes, values in ((s, vin), (a, np.zeros((C, m)))):
        if fixed[group[nodes]].any() or np.unique(group[nodes]).size != nodes.size:
            raise AssertionError("two fixed nodes merged")
        fixed[group[nodes]] = True
        fixed_v[group[nodes]] = values
    amp_of = np.full(n_groups, -1)
    amp_of[group[a]] = np.arange(C)

    # Finite branches between distinct groups, as conductances (uS): devices, then non-ideal wires.
    ends_p = [u.ravel()] + [p for p, q, r in wires if r > 0.0]
    ends_q = [v.ravel()] + [q for p, q, r in wires if r > 0.0]
    conds = [g.ravel()] + [np.full(p.size, 1e6 / r) for p, q, r in wires if r > 0.0]
    gp, gq, cond = group[np.concatenate(ends_p)], group[np.concatenate(ends_q)], np.concatenate(conds)
    keep = (gp != gq) & (cond != 0.0)
    gp, gq, cond = gp[keep], gq[keep], cond[keep]

    # KCL at the free groups: A x = rhs.
    index = np.cumsum(~fixed) - 1  # position of each free group among the unknowns
    n = int((~fixed).sum())
    volts = fixed_v.copy()
    if n:
        fp, fq = ~fixed[gp], ~fixed[gq]
        both = fp & fq
        rows = np.concatenate([index[gp[fp]], index[gq[fq]], index[gp[both]], index[gq[both]]])
        cols = np.concatenate([index[gp[fp]], index[gq[fq]], index[gq[both]], index[gp[both]]])
        vals = np.concatenate([cond[fp], cond[fq], -cond[both], -cond[both]])
        a_mat = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))  # duplicates are summed
        rhs = np.zeros((n, m))
        only_p, only_q = fp & ~fq, fq & ~fp
        np.add.at(rhs, index[gp[only_p]], cond[only_p, None] * fixed_v[gq[only_p]])
        np.add.at(rhs, index[gq[only_q]], cond[only_q, None] * fixed_v[gp[only_q]])
        x = np.asarray(spla.spsolve(a_mat, rhs, permc_spec="MMD_AT_PLUS_A"), dtype=np.float64).reshape(n, m)
        volts[~fixed] = x

    # I_j: the current into a_j's group through every finite branch that ends on it.
    out = np.zeros((C, m))
    into_q, into_p = amp_of[gq] >= 0, amp_of[gp] >= 0
    np.add.at(out, amp_of[gq[into_q]], cond[into_q, None] * (volts[gp[into_q]] - volts[gq[into_q]]))
    np.add.at(out, amp_of[gp[into_p]], cond[into_p, None] * (volts[gq[into_p]] - volts[gp[into_p]]))
    return out[:, 0] if single else out.T


def tile_transfer_ref(g_us, **parasitics) -> np.ndarray:
    """The transfer matrix T (R, C) in uS: ``I = V @ T``; row k of T is the output for row k at 1 V, others 0."""
    g = np.asarray(g_us, dtype=np.float64)
    return tile_currents(g, np.eye(g.shape[0]), **parasitics)
