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
# 256 layers of equal area V under the normal density, base layer edge R. With 128 layers 2.8% of
# draws leave the fast path for the ~70 ns tail and wedge tests; with 256, 1.5%.
_ZIG_C, _ZIG_R, _ZIG_V = 256, 3.6541528853610088, 4.92867323399e-3


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
_ZIG_F = np.exp(-0.5 * _ZIG_X * _ZIG_X)
_S11, _S8 = np.uint64(11), np.uint64(8)
_INV_2_23 = 1.0 / 8388608.0
_INV_2_23_F32 = np.float32(_INV_2_23)
_ZIG_X32 = _ZIG_X.astype(np.float32)
_ZIG_RATIO32 = _ZIG_RATIO.astype(np.float32)
_LOW8 = np.uint64(255)
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
def _fast_half(half):
    """Ziggurat fast path on 32 random bits (float32): (value, accepted).

    Bits 0-7 pick the layer, bits 8-31 the abscissa u = k 2^-23 - 1 in [-1, 1),
    exact in float32.
    """
    i = np.int64(half & _LOW8)
    u = np.float32(np.int64(half >> _S8)) * _INV_2_23_F32 - np.float32(1.0)
    return u * _ZIG_X32[i], abs(u) < _ZIG_RATIO32[i]


@jit
def _slow_half(half, h):
    """The ziggurat's tail and wedge tests for a sample whose fast path failed (~1% of draws).

    ``half`` is the rejected sample (its layer and abscissa go on to the tail
    or wedge test, as the method requires); fresh randomness comes from hashes of ``h``.
    """
    i = np.int64(half & _LOW8)
    u = float(np.int64(half >> _S8)) * _INV_2_23 - 1.0
    extra = np.uint64(0)
    while True:
        if i == 0:
            # Tail beyond R (Marsaglia 1964): x = -ln(u1) / R, accept if -2 ln(u2) > x^2.
            while True:
                a = -math.log(_unit(mix64(h + (extra + np.uint64(1)) * _GOLDEN))) / _ZIG_R
                b = -math.log(_unit(mix64(h + (extra + np.uint64(2)) * _GOLDEN)))
                extra += np.uint64(2)
                if 2.0 * b > a * a:
                    return -(_ZIG_R + a) if u < 0 else _ZIG_R + a
        x = u * _ZIG_X[i]
        extra += np.uint64(1)
        # Wedge: accept with f(x_{i+1}) + U (f(x_i) - f(x_{i+1})) < f(x), f(x) = exp(-x^2 / 2).
        if _ZIG_F[i + 1] + _unit(mix64(h + extra * _GOLDEN)) * (_ZIG_F[i] - _ZIG_F[i + 1]) < math.exp(-0.5 * x * x):
            return x
        # Rejected in the wedge: a fresh sample, full precision.
        extra += np.uint64(1)
        g = mix64(h + extra * _GOLDEN)
        u = 2.0 * (float(np.int64(g >> _S11)) * _INV_2_53) - 1.0
        i = np.int64(g & _LOW8)
        if abs(u) < _ZIG_RATIO[i]:
            return u * _ZIG_X[i]


@jit
def normal(key, counter):
    """Standard normal draw number ``counter`` (uint64) of stream ``key``, by ziggurat (float32 value).

    Draws 2m and 2m + 1 use the low and high 32 bits of hash m. 99% of draws
    end in the fast path (one table compare, one multiply); the rest are
    resolved exactly by the tail and wedge tests with further hashes, so the
    value depends only on (key, counter).
    """
    h = _bits(key, counter >> np.uint64(1))
    high = (counter & np.uint64(1)) == np.uint64(1)
    half = (h >> _S32) if high else (h & _LOW32)
    value, accepted = _fast_half(half)
    if accepted:
        return value
    return np.float32(_slow_half(half, h ^ (_GOLDEN if high else np.uint64(0))))


@jit
def normal_fill(key, out):
    """``out[n] = normal(key, n)`` for every n of a float32 array, bit-identical, in two passes.

    The first pass is the fast path alone, two draws per hash, which the
    compiler turns into SIMD code; the ~1% it rejects are then recomputed by
    :func:`normal`.
    """
    n = out.shape[0]
    for m in range(n // 2):
        h = mix64(key + (np.uint64(m) + np.uint64(1)) * _GOLDEN)
        v0, ok0 = _fast_half(h & _LOW32)
        v1, ok1 = _fast_half(h >> _S32)
        out[2 * m] = v0 if ok0 else np.float32(np.inf)
        out[2 * m + 1] = v1 if ok1 else np.float32(np.inf)
    if n % 2:
        out[n - 1] = np.float32(np.inf)
    for j in range(n):
        if out[j] == np.inf:
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
