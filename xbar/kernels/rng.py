"""Counter-based random numbers: every draw is a pure function of (key, counter).

A key is derived in Python from (seed, purpose, layer, slice, tile, side)
with :func:`derive_key`; inside kernels a draw for (row id, column) or
(row id, device) is ``normal(mix(key, a), b)``. Nothing carries state between
draws, so results are bit-identical for any thread count, batch split or
executor (tests/test_crossbar.py::test_bit_identical_across_threads_and_batches).

The mixer is SplitMix64's finaliser (Steele, Lea, Flood, OOPSLA 2014,
doi:10.1145/2660193.2660195); normals come from the Box-Muller transform of
two 32-bit uniforms taken from one 64-bit hash (tails to 6.66 sigma).
"""

import math

import numpy as np

from ._jit import jit

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO_PI = 2.0 * math.pi
_INV_2_32 = 1.0 / 4294967296.0
_MASK64 = (1 << 64) - 1


@jit
def mix64(z):
    """SplitMix64 finaliser of a uint64 (a bijection with full avalanche)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit
def mix(key, value):
    """Hash of (key, value), both uint64."""
    return mix64(key ^ mix64(value + _GOLDEN))


@jit
def normal(key, counter):
    """Standard normal draw number ``counter`` (uint64) of stream ``key`` (float64)."""
    h = mix(key, counter)
    u1 = (float(h >> _S32) + 1.0) * _INV_2_32
    u2 = float(h & _LOW32) * _INV_2_32
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


@jit
def uniform(key, counter):
    """Uniform draw in [0, 1) number ``counter`` of stream ``key`` (float64, 53 bits)."""
    h = mix(key, counter)
    return float(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def _mix64_py(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def derive_key(*parts: int) -> np.uint64:
    """A stream key from integers (seed, purpose, layer, ...), the same hash chain as :func:`mix`."""
    key = 0
    for part in parts:
        key = _mix64_py(key ^ _mix64_py((int(part) + 0x9E3779B97F4A7C15) & _MASK64))
    return np.uint64(key)
