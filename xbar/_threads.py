"""How many threads xbar's numerical work uses: Numba's (per thread) and BLAS's (per process)."""

from __future__ import annotations

import contextlib
import functools

import numba


@functools.lru_cache(maxsize=1)
def _blas_controller():
    # threadpoolctl finds the BLAS that numpy loaded (OpenBLAS or MKL) and sets its threads at run
    # time; environment variables act only before numpy is imported.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_threaded_blas():
    """Context in which BLAS uses one thread (for the whole process)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@contextlib.contextmanager
def one_thread():
    """Context in which this thread's Numba kernels and the process's BLAS use one thread each.

    For work whose parallelism lies outside it (sweep tasks side by side).
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(1)  # thread-local in Numba
    try:
        with one_threaded_blas():
            yield
    finally:
        numba.set_num_threads(previous)
