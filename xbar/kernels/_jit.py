"""The only place Numba options live (STYLE.md section 2).

``contract`` is left out of the fast-math flags on purpose: fusing x * a + b
into an FMA changes the last bit of DAC and ADC rounding, and the tests hold
converter codes exactly against plain numpy (tests/test_kernels.py). ``nnan``
and ``ninf`` are never set: NaN must propagate so that it can be caught.
"""

import functools
import os

import numba

FASTMATH = {"nsz", "arcp", "afn", "reassoc"}
CACHE = os.environ.get("XBAR_NUMBA_CACHE", "1") != "0"

jit = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH, nogil=True)
"""Serial kernel."""

pjit = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH, nogil=True, parallel=True)
"""Parallel driver (``prange`` over an independent axis)."""

prange = numba.prange
