"""The only place Numba options live (STYLE.md section 2).

``contract`` is left out of the fast-math flags on purpose: fusing x * a + b
into an FMA changes the last bit of DAC and ADC rounding, and the tests hold
converter codes exactly against plain numpy (tests/test_kernels.py). ``nnan``
and ``ninf`` are never set: NaN must propagate so that it can be caught.
"""

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numba
import numba.core.event

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
_PACKAGE = __name__.rpartition(".")[0]
_NUMBA_CONFIG: Any = numba.config  # its settings are set at import from the environment: no static attributes


def _writable(folder: str) -> bool:
    """Whether ``folder`` exists or can be made, and takes a file (numba's own test)."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False


def _user_cache_root() -> str:
    home = os.environ.get("XBAR_HOME")
    return os.path.join(home, "numba") if home else os.path.join(os.path.expanduser("~"), ".cache", "xbar", "numba")


def _choose_cache_dir() -> tuple[str, bool]:
    """(folder of the on-disk kernel cache, whether caching is on).

    ``$NUMBA_CACHE_DIR/xbar-kernels-<digest>`` if that is set; else beside the kernels, in
    ``__pycache__/xbar-kernels-<digest>``; where the package cannot be written (a system-wide
    install), ``$XBAR_HOME/numba/xbar-kernels-<digest>`` (default ``~/.cache/xbar/numba/...``).
    Numba would fall back on its own to a folder not keyed by our digest (stale kernels, see
    above), so when no folder of ours can be written the cache is off and every run compiles.
    """
    name = f"xbar-kernels-{SOURCES_DIGEST}"
    if _NUMBA_CONFIG.CACHE_DIR:
        folder = os.path.join(_NUMBA_CONFIG.CACHE_DIR, name)
        return folder, CACHE and _writable(folder)
    in_package = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__", name)
    if not CACHE or _writable(in_package):
        return in_package, CACHE
    fallback = os.path.join(_user_cache_root(), name)
    return fallback, _writable(fallback)


CACHE_DIR, CACHING = _choose_cache_dir()
"""Folder of the on-disk kernel cache, and whether kernels are cached there (XBAR_NUMBA_CACHE=0 or no
writable folder: compiled afresh in every process)."""


def cache_dir() -> str:
    """Folder of the kernels' on-disk cache for these sources (see ``_choose_cache_dir``)."""
    return CACHE_DIR


def cache_is_warm() -> bool:
    """Whether compiled kernels for these very sources are on disk, so that a run loads them.

    True when caching is on and the cache folder holds numba index files (``*.nbi``) for this
    Python. Numba writes them below ``CACHE_DIR`` in one folder per source folder. A kernel that
    earlier runs never needed still compiles on first use (a second or two each); the long
    compilation of a first crossbar run (10-30 s) is what this tells.
    """
    if not CACHING or not os.path.isdir(CACHE_DIR):
        return False
    suffix = f".py{sys.version_info[0]}{sys.version_info[1]}.nbi"
    return any(path.name.endswith(suffix) for path in Path(CACHE_DIR).glob("*/*.nbi"))


def compile_notice() -> str:
    """The one line to print on stderr when the kernels are about to compile."""
    if not CACHING:
        return "xbar: compiling the crossbar kernels (10-30 s; not cached: XBAR_NUMBA_CACHE=0 or no writable folder)"
    return f"xbar: compiling the crossbar kernels (once, up to 30 s; cached in {CACHE_DIR})"


class _CompileAnnouncer(numba.core.event.Listener):
    def __init__(self, announce: Callable[[str], None]):
        self.announce: Callable[[str], None] | None = announce

    def on_start(self, event):
        dispatcher = event.data.get("dispatcher") if isinstance(event.data, dict) else None
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if self.announce is not None and module.startswith(_PACKAGE + "."):
            announce, self.announce = self.announce, None
            announce(compile_notice())

    def on_end(self, event):
        pass


@contextlib.contextmanager
def announce_compilation(announce: Callable[[str], None]) -> Iterator[None]:
    """Within the block, call ``announce(compile_notice())`` once, as one of our kernels starts compiling.

    Exact where :func:`cache_is_warm` guesses: numba raises its compile event only for a kernel
    that it does not find in the on-disk cache, so a run whose kernels are all cached says
    nothing. Only compilations in this process are seen (not those of sweep workers).
    """
    with numba.core.event.install_listener("numba:compile", _CompileAnnouncer(announce)):
        yield


def _compiler(**options):
    def decorate(function):
        if not CACHING:
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
