"""How many threads xbar's numerical work uses: Numba's (per thread) and BLAS's (per process)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numba

T = TypeVar("T")


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


def block_bounds(n: int, threads: int, least: int) -> list[tuple[int, int]]:
    """Contiguous (start, stop) blocks covering ``range(n)``: as many as ``threads`` allows with at least
    ``least`` items each (one block, ``[(0, n)]``, when ``n`` < 2 ``least`` or ``threads`` is 1)."""
    blocks = max(1, min(threads, n // max(least, 1)))
    return [(n * i // blocks, n * (i + 1) // blocks) for i in range(blocks)]


@functools.cache
def _block_pool(threads: int) -> ThreadPoolExecutor:
    """A persistent pool of ``threads`` threads for :func:`map_blocks` (created once per size)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="xbar-block")


def map_blocks(run: Callable[[int, int], T], bounds: list[tuple[int, int]], threads: int) -> list[T]:
    """``run(start, stop)`` for each block of ``bounds`` on up to ``threads`` threads, results in block order.

    Blocks run side by side, one pool thread each, with serial Numba kernels and one-threaded BLAS: handing
    every GEMM and kernel of a layer to all cores in turn left them waiting on each other (BLAS workers spin
    between calls; docs/performance.md). With one thread (or one block) they run in the calling thread, BLAS
    one-threaded still: OpenBLAS rounds a product differently on two threads than on one (seen in the last
    bit of the shipped MLP's logits), so a block's outputs depend on the block alone, not on the threads.
    """
    with one_threaded_blas():
        threads = min(threads, len(bounds))
        if threads <= 1:
            return [run(*block) for block in bounds]
        return list(_block_pool(threads).map(functools.partial(_serial, run), bounds))


def _serial(run: Callable[[int, int], T], block: tuple[int, int]) -> T:
    numba.set_num_threads(1)  # thread-local in Numba: this pool thread's kernels stay serial
    return run(*block)
