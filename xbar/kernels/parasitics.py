"""Wire-resistance kernels: the inverse of a row wire's tridiagonal nodal matrix (:mod:`xbar.crossbar.parasitics`)."""

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
