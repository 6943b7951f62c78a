"""Wire-resistance kernels (:mod:`xbar.crossbar.parasitics`): the inverse of a row wire's tridiagonal nodal matrix
(linear devices), and a tile of sinh devices solved per input vector (nonlinear devices)."""

import math

import numpy as np

from ._jit import jit


@jit
def chain_inverse(g_devices, g_wire, g_end):
    """Inverse (float64 (n, n)) of the nodal matrix of a chain of n nodes: node k has a device g_devices[k] to a
    fixed node, a wire g_wire to nodes k - 1 and k + 1 where they exist, and node 0 also g_end to a fixed node.

    The matrix is symmetric, tridiagonal and diagonally dominant; its inverse is formed column by column by the
    Thomas algorithm (one factorisation, n right-hand sides), n^2 operations.
    """
    n = g_devices.size
    diagonal = np.empty(n)
    for k in range(n):
        neighbours = (k > 0) + (k < n - 1)
        diagonal[k] = g_devices[k] + g_wire * neighbours
    diagonal[0] += g_end
    # Forward elimination of the sub-diagonal (-g_wire): pivots d_k and multipliers m_k.
    pivot = np.empty(n)
    multiplier = np.zeros(n)
    pivot[0] = diagonal[0]
    for k in range(1, n):
        multiplier[k] = -g_wire / pivot[k - 1]
        pivot[k] = diagonal[k] - multiplier[k] * -g_wire
    out = np.zeros((n, n))
    column = np.empty(n)
    for j in range(n):
        # Solve for the unit vector e_j: forward (L y = e_j), then backward (U x = y).
        for k in range(n):
            column[k] = 1.0 if k == j else 0.0
        for k in range(max(j, 1), n):
            column[k] -= multiplier[k] * column[k - 1]
        column[n - 1] /= pivot[n - 1]
        for k in range(n - 2, -1, -1):
            column[k] = (column[k] + g_wire * column[k + 1]) / pivot[k]
        for k in range(n):
            out[k, j] = column[k]
    return out


@jit
def _sinh_current(g, a, dv):
    """Device current (A) of a device of small-signal conductance g (S) at voltage dv (V): (g / a) sinh(a dv)."""
    return g / a * math.sinh(a * dv)


@jit
def _newton_line(n, fixed_first, g_wire, g_ends, g_dev, a, other, sign, source, x, diag, rhs, tolerance, work, steps):
    """Newton on one wire given the other wire's node voltages: KCL at its n nodes
    g_wire (x[k-1] - x[k]) + g_wire (x[k+1] - x[k]) + g_ends[k] (source[k] - x[k]) - sign I(sign (x[k] - other[k])) = 0,
    with x[0] held at source[0] when ``fixed_first``; at most ``steps`` Newton steps (the sweeps that follow
    finish the job). Returns the largest Newton step of the last iteration."""
    step = 0.0
    for _ in range(steps):
        start = 1 if fixed_first else 0
        m = n - start
        for k in range(start, n):
            dv = sign * (x[k] - other[k])
            # sinh and cosh from one expm1 (the transcendental functions are most of the work), exact for small
            # a dv too: with e = expm1(a dv), expm1(-a dv) = -e / (1 + e).
            up = math.expm1(a * dv)
            down = -up / (1.0 + up)
            current = g_dev[k] / a * 0.5 * (up - down)
            slope = g_dev[k] * (1.0 + 0.5 * (up + down))
            residual = g_ends[k] * (source[k] - x[k]) - sign * current
            neighbours = 0
            if k > 0:
                residual += g_wire * (x[k - 1] - x[k])
                neighbours += 1
            if k < n - 1:
                residual += g_wire * (x[k + 1] - x[k])
                neighbours += 1
            diag[k - start] = g_wire * neighbours + g_ends[k] + slope
            rhs[k - start] = residual
        # Solve J dx = residual (J = tridiag(-g_wire, diag, -g_wire), the negated Jacobian of the residual).
        c = work
        c[0] = -g_wire / diag[0]
        rhs[0] = rhs[0] / diag[0]
        for k in range(1, m):
            denominator = diag[k] + g_wire * c[k - 1]
            c[k] = -g_wire / denominator
            rhs[k] = (rhs[k] + g_wire * rhs[k - 1]) / denominator
        for k in range(m - 2, -1, -1):
            rhs[k] -= c[k] * rhs[k + 1]
        step = 0.0
        for k in range(m):
            x[k + start] += rhs[k]
            step = max(step, abs(rhs[k]))
        if step <= tolerance:
            break
    return step


@jit
def nonlinear_tile(g, v_in, g_row, g_col, g_driver, g_sense, a, tolerance, max_sweeps, out):
    """Output currents (A) into ``out`` of a tile of sinh devices (small-signal conductances ``g`` (R, C), S),
    rows driven at column 0 with inputs ``v_in`` (V), columns sensed at the last row; ``g_driver`` / ``g_sense``
    inf for a zero resistance. Nonlinear line Gauss-Seidel: every row wire solved by Newton given the column
    nodes, then every column wire given the row nodes, until no node moves by more than ``tolerance`` (V).
    Returns (sweeps, largest KCL residual over the devices' scale): the caller checks convergence."""
    n_rows, n_cols = g.shape
    u = np.empty((n_rows, n_cols))
    v = np.zeros((n_rows, n_cols))
    for i in range(n_rows):
        for j in range(n_cols):
            u[i, j] = v_in[i]
    size = max(n_rows, n_cols)
    diag = np.empty(size)
    rhs = np.empty(size)
    work = np.empty(size)
    row_line = np.empty(n_cols)
    row_other = np.empty(n_cols)
    row_source = np.zeros(n_cols)
    row_ends = np.zeros(n_cols)
    row_dev = np.empty(n_cols)
    col_line = np.empty(n_rows)
    col_other = np.empty(n_rows)
    col_source = np.zeros(n_rows)
    col_ends = np.zeros(n_rows)
    col_dev = np.empty(n_rows)
    driver_fixed = np.isinf(g_driver)
    sense_fixed = np.isinf(g_sense)
    if not driver_fixed:
        row_ends[0] = g_driver
    if not sense_fixed:
        col_ends[n_rows - 1] = g_sense
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        change = 0.0
        for i in range(n_rows):
            for j in range(n_cols):
                row_line[j] = u[i, j]
                row_other[j] = v[i, j]
                row_dev[j] = g[i, j]
            row_source[0] = v_in[i]
            if driver_fixed:
                row_line[0] = v_in[i]
            _newton_line(
                n_cols,
                driver_fixed,
                g_row,
                row_ends,
                row_dev,
                a,
                row_other,
                1.0,
                row_source,
                row_line,
                diag,
                rhs,
                tolerance,
                work,
                2,
            )
            for j in range(n_cols):
                change = max(change, abs(row_line[j] - u[i, j]))
                u[i, j] = row_line[j]
        for j in range(n_cols):
            # Reversed, so that a fixed sensed node comes first: index r = n_rows - 1 - i.
            for r in range(n_rows):
                i = n_rows - 1 - r
                col_line[r] = v[i, j]
                col_other[r] = u[i, j]
                col_dev[r] = g[i, j]
                col_ends[r] = g_sense if (r == 0 and not sense_fixed) else 0.0
            if sense_fixed:
                col_line[0] = 0.0
            _newton_line(
                n_rows,
                sense_fixed,
                g_col,
                col_ends,
                col_dev,
                a,
                col_other,
                -1.0,
                col_source,
                col_line,
                diag,
                rhs,
                tolerance,
                work,
                2,
            )
            for r in range(n_rows):
                i = n_rows - 1 - r
                change = max(change, abs(col_line[r] - v[i, j]))
                v[i, j] = col_line[r]
        if change <= tolerance:
            break
    # Outputs, and the largest KCL residual at the column nodes (the row nodes' are solved exactly last).
    worst = 0.0
    scale = 0.0
    for j in range(n_cols):
        for i in range(n_rows):
            current = _sinh_current(g[i, j], a, u[i, j] - v[i, j])
            scale = max(scale, abs(current))
            if sense_fixed and i == n_rows - 1:
                continue
            residual = current
            if i > 0:
                residual += g_col * (v[i - 1, j] - v[i, j])
            if i < n_rows - 1:
                residual += g_col * (v[i + 1, j] - v[i, j])
            if i == n_rows - 1:
                residual -= g_sense * v[i, j]
            worst = max(worst, abs(residual))
        if sense_fixed:
            out[j] = (
                g_col * v[n_rows - 2, j] + _sinh_current(g[n_rows - 1, j], a, u[n_rows - 1, j])
                if n_rows > 1
                else _sinh_current(g[0, j], a, u[0, j])
            )
        else:
            out[j] = g_sense * v[n_rows - 1, j]
    return sweeps, worst / max(scale, 1e-300)


@jit
def chain_solve(g_devices, g_wire, g_end, rhs, out):
    """Solve the chain's nodal system of :func:`chain_inverse` for every column of ``rhs`` (n, m) into ``out``
    (n, m), by the Thomas algorithm: n m operations, where forming the inverse first costs n^2 m."""
    n, m = rhs.shape
    pivot = np.empty(n)
    multiplier = np.zeros(n)
    for k in range(n):
        pivot[k] = g_devices[k] + g_wire * ((k > 0) + (k < n - 1))
    pivot[0] += g_end
    for k in range(1, n):
        multiplier[k] = -g_wire / pivot[k - 1]
        pivot[k] = pivot[k] - multiplier[k] * -g_wire
    for c in range(m):
        out[0, c] = rhs[0, c]
        for k in range(1, n):
            out[k, c] = rhs[k, c] - multiplier[k] * out[k - 1, c]
        out[n - 1, c] /= pivot[n - 1]
        for k in range(n - 2, -1, -1):
            out[k, c] = (out[k, c] + g_wire * out[k + 1, c]) / pivot[k]
