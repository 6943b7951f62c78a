"""Counter-based random numbers: every draw is a pure function of (key, counter).

A key is derived in Python from (seed, purpose, layer, slice, tile, side)
with :func:`derive_key`; inside kernels a draw for (row id, column) or
(row id, device) is ``normal(mix(key, a), b)``. Nothing carries state between
draws, so results are bit-identical for any thread count, batch split or
executor (tests/test_crossbar.py::test_bit_identical_across_threads_and_batches).

The mixer is SplitMix64's finaliser (Steele, Lea, Flood, OOPSLA 2014,
doi:10.1145/2660193.2660195): draw n of a stream is mix64(key + (n + 1) golden),
SplitMix64's own output sequence. Normals come from the ziggurat method, exact
in distribution and free of transcendental functions for 99% of draws: the
Box-Muller transform it replaced cost 27 ns a draw here, the ziggurat 3 to 6.
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


# Ziggurat tables (Marsaglia & Tsang 2000, J. Stat. Softw. 5(8); the ZIGNOR layout of Doornik 2005):
# 128 layers of equal area V under the normal density, base layer edge R.
_ZIG_C, _ZIG_R, _ZIG_V = 128, 3.442619855899, 9.91256303526217e-3


def _ziggurat_tables():
    x = np.zeros(_ZIG_C + 1)
    f = math.exp(-0.5 * _ZIG_R * _ZIG_R)
    x[0], x[1] = _ZIG_V / f, _ZIG_R
    for i in range(2, _ZIG_C):
        x[i] = math.sqrt(-2.0 * math.log(_ZIG_V / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    ratio = x[1:] / x[:-1]
    return x, ratio


_ZIG_X, _ZIG_RATIO = _ziggurat_tables()
_S11 = np.uint64(11)
_LOW7 = np.uint64(127)
_INV_2_53 = 1.0 / 9007199254740992.0


@jit
def _bits(key, counter):
    """64 random bits: SplitMix64's output for state key + (counter + 1) golden (one hash per draw)."""
    return mix64(key + (counter + np.uint64(1)) * _GOLDEN)


@jit
def _unit(h):
    """Uniform in (0, 1] from the top 53 bits of ``h``."""
    return (float(h >> _S11) + 1.0) * _INV_2_53


@jit
def normal(key, counter):
    """Standard normal draw number ``counter`` (uint64) of stream ``key`` (float64), by ziggurat.

    99% of draws cost one hash, one table compare and one multiply; the rest
    are resolved by the method's wedge and tail tests with further hashes of the
    same draw, so the value still depends only on (key, counter). Exact in distribution.
    """
    h = _bits(key, counter)
    extra = np.uint64(0)
    while True:
        u = 2.0 * (float(np.int64(h >> _S11)) * _INV_2_53) - 1.0
        i = np.int64(h & _LOW7)
        if abs(u) < _ZIG_RATIO[i]:
            return u * _ZIG_X[i]
        extra += np.uint64(1)
        if i == 0:
            # Tail beyond R (Marsaglia 1964): x = -ln(u1) / R, accept if -2 ln(u2) > x^2.
            while True:
                a = -math.log(_unit(mix64(h + extra * _GOLDEN))) / _ZIG_R
                b = -math.log(_unit(mix64(h + (extra + np.uint64(1)) * _GOLDEN)))
                extra += np.uint64(2)
                if 2.0 * b > a * a:
                    return -(_ZIG_R + a) if u < 0 else _ZIG_R + a
        # Wedge test of the same sample.
        x = u * _ZIG_X[i]
        f0 = math.exp(-0.5 * (_ZIG_X[i] * _ZIG_X[i] - x * x))
        f1 = math.exp(-0.5 * (_ZIG_X[i + 1] * _ZIG_X[i + 1] - x * x))
        if f1 + _unit(mix64(h + extra * _GOLDEN)) * (f0 - f1) < 1.0:
            return x
        extra += np.uint64(1)
        h = mix64(h + extra * _GOLDEN)


@jit
def normal_fill(key, out):
    """``out[n] = normal(key, n)`` for every n, bit-identical, in two passes.

    The first pass is the ziggurat's fast path alone, which the compiler turns
    into SIMD code (64-bit multiplies and table gathers); the ~1% of draws it
    rejects are then recomputed by :func:`normal`. Measured here: 3.4 ns a
    draw against 5.5 ns for a loop of :func:`normal`.
    """
    n = out.shape[0]
    for j in range(n):
        h = mix64(key + (np.uint64(j) + np.uint64(1)) * _GOLDEN)
        u = 2.0 * (float(np.int64(h >> _S11)) * _INV_2_53) - 1.0
        i = np.int64(h & _LOW7)
        value = u * _ZIG_X[i]
        out[j] = value if abs(u) < _ZIG_RATIO[i] else math.inf
    for j in range(n):
        if out[j] == math.inf:
            out[j] = normal(key, np.uint64(j))


@jit
def uniform(key, counter):
    """Uniform draw in [0, 1) number ``counter`` of stream ``key`` (float64, 53 bits)."""
    return float(_bits(key, counter) >> _S11) * _INV_2_53


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
