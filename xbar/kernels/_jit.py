"""The only place Numba options live (STYLE.md section 2).

``contract`` is left out of the fast-math flags on purpose: fusing x * a + b
into an FMA changes the last bit of DAC and ADC rounding, and the tests hold
converter codes exactly against plain numpy (tests/test_kernels.py). ``nnan``
and ``ninf`` are never set: NaN must propagate so that it can be caught.
"""

import functools
import os

import numba

# Between our parallel kernels sit BLAS products with OpenBLAS's own threads; OpenMP workers that
# spin while idle fight those for the cores. Measured on 2 cores (bench/, docs/performance.md): a
# 1000 x 300 ADC pass took 8 ms with spinning OpenMP workers, 0.19 ms with passive ones and 0.13 ms
# with the "workqueue" layer, whose kernels however ran 1.5x slower than OpenMP's. So: OpenMP,
# passive. libgomp reads the variable when numba first starts its workers, after this import;
# a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FASTMATH = {"nsz", "arcp", "afn", "reassoc"}
CACHE = os.environ.get("XBAR_NUMBA_CACHE", "1") != "0"

jit = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH, nogil=True)
"""Serial kernel."""

pjit = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH, nogil=True, parallel=True)
"""Parallel driver (``prange`` over an independent axis)."""

prange = numba.prange
