"""The only place Numba options live (STYLE.md section 2).

``contract`` is left out of the fast-math flags on purpose: fusing x * a + b
into an FMA changes the last bit of DAC and ADC rounding, and the tests hold
converter codes exactly against plain numpy (tests/test_kernels.py). ``nnan``
and ``ninf`` are never set: NaN must propagate so that it can be caught.
"""

import hashlib
import os
from pathlib import Path
from typing import Any

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

# Numba checks a cached kernel against its own source file only, but our kernels inline functions
# of other files (every noise kernel inlines rng.py): after an edit of rng.py alone, the cached
# converter kernels kept the old generator (seen here). So the cache lives in a folder named by a
# hash of all the kernels' sources, and any edit starts a fresh one.
SOURCES_DIGEST = hashlib.sha256(
    b"".join(path.read_bytes() for path in sorted(Path(__file__).parent.glob("*.py")))
).hexdigest()[:16]
_NUMBA_CONFIG: Any = numba.config  # its settings are set at import from the environment: no static attributes
CACHE_DIR = os.path.join(
    _NUMBA_CONFIG.CACHE_DIR or os.path.join(os.path.dirname(__file__), "__pycache__"), f"xbar-kernels-{SOURCES_DIGEST}"
)


def _compiler(**options):
    def decorate(function):
        if not CACHE:
            return numba.njit(function, **options)
        # Numba picks a kernel's cache folder when it is decorated: set ours for that moment only.
        previous, _NUMBA_CONFIG.CACHE_DIR = _NUMBA_CONFIG.CACHE_DIR, CACHE_DIR
        try:
            return numba.njit(function, cache=True, **options)
        finally:
            _NUMBA_CONFIG.CACHE_DIR = previous

    return decorate


jit = _compiler(fastmath=FASTMATH, nogil=True)
"""Serial kernel."""

pjit = _compiler(fastmath=FASTMATH, nogil=True, parallel=True)
"""Parallel driver (``prange`` over an independent axis)."""

prange = numba.prange
