"""Kernels against plain loops: converter codes exactly, RNG, and hypothesis properties."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.config import Hardware, Tile
from xbar.crossbar import AnalogMatrix, InputRange
from xbar.device_models import error_model
from xbar.kernels import convert, rng
from xbar.kernels.rng import derive_key

from .reference import ref_adc_code, ref_dac_code

ROOT = Path(__file__).resolve().parent.parent


def _adc_codes(currents, i_max, bits, signed):
    """Codes through the kernel: accumulate code x 1 into zeros."""
    currents = np.asarray(currents, np.float32).reshape(1, -1)
    step = i_max / 2 ** (bits - 1) if signed else i_max / (2**bits - 1)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    out = np.zeros_like(currents)
    n = currents.shape[1]
    convert.read_out(currents[None], np.zeros((1, 1, 0), np.float32), np.zeros(1, np.uint64),
                     np.zeros(1, np.uint64), np.full((1, n), 1 / step, np.float32), np.ones((1, n), np.float32),
                     float(lo), float(hi), bits, out)
    return out[0].astype(np.int64), np.float32(1 / step)


@pytest.mark.parametrize("bits", [1, 3, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_adc_codes_equal_loop_reference_including_saturation(bits, signed, rng):
    i_max = 3.0
    currents = np.concatenate([rng.uniform(-2 * i_max, 2 * i_max, 500), [0, i_max, -i_max, 10 * i_max, -10 * i_max]])
    codes, inv_step = _adc_codes(currents, i_max, bits, signed)
    # The reference uses the same float32 reciprocal step, so decisions coincide to the last bit.
    expected = []
    for c in currents.astype(np.float32):
        v = np.float32(c) * inv_step
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        expected.append(min(max(int(np.floor(np.float64(v) + 0.5)), lo), hi))
    np.testing.assert_array_equal(codes, expected)
    # And against the textbook definition (division by the step) away from decision levels.
    textbook = np.array([ref_adc_code(float(c), i_max, bits, signed)[0] for c in currents])
    assert np.mean(codes == textbook) > 0.99
    assert codes.max() <= (2 ** (bits - 1) - 1 if signed else 2**bits - 1)


@pytest.mark.parametrize("bits", [1, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_dac_codes_equal_loop_reference_including_saturation(bits, signed, rng):
    x_max = 1.5
    x = np.concatenate([rng.uniform(-3, 3, 400), [0, x_max, -x_max, 99, -99]]).astype(np.float32).reshape(1, -1)
    codes = np.empty(x.shape, np.int32)
    inv = np.float32(1 / x_max)
    convert.dac_quantize(x, inv, np.float32(2**bits - 1), signed, codes)
    expected = [ref_dac_code(float(np.float32(v) * inv), 1.0, bits, signed) for v in x[0]]
    np.testing.assert_array_equal(codes[0], expected)
    assert codes.max() == 2**bits - 1 and codes.min() == (-(2**bits - 1) if signed else 0)


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 12), signed=st.booleans(), i_max=st.floats(1e-3, 1e3),
       currents=st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=2, max_size=50))
def test_adc_codes_within_range_and_monotonic(bits, signed, i_max, currents):
    ordered = np.sort(np.asarray(currents, np.float32))
    codes, _ = _adc_codes(ordered, i_max, bits, signed)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    assert codes.min() >= lo and codes.max() <= hi
    assert np.all(np.diff(codes) >= 0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 40), cols=st.integers(1, 12),
       tile_rows=st.integers(1, 50), tile_cols=st.integers(1, 15), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_ideal_product_is_linear_and_independent_of_tile_size(seed, rows, cols, tile_rows, tile_cols, a, b):
    gen = np.random.default_rng(seed)
    kernel = gen.standard_normal((rows, cols)).astype(np.float32)
    x, y = gen.standard_normal((2, 3, rows)).astype(np.float32)
    tiled = AnalogMatrix(kernel, None, Hardware(tile=Tile(tile_rows, tile_cols)), InputRange(1.0, True), 0, 0)
    whole = AnalogMatrix(kernel, None, Hardware(tile=Tile(4096, 4096)), InputRange(1.0, True), 0, 0)
    scale = 1e-4 * (1 + np.abs(x).sum() + np.abs(y).sum()) * np.abs(kernel).max() * (1 + abs(a) + abs(b))
    combo = (a * x + b * y).astype(np.float32)
    np.testing.assert_allclose(tiled(combo), a * tiled(x) + b * tiled(y), atol=scale, rtol=0)
    np.testing.assert_allclose(tiled(x), whole(x), atol=scale, rtol=0)
    np.testing.assert_allclose(whole(x), x @ kernel, atol=scale, rtol=0)


def test_python_key_derivation_matches_the_kernel_hash():
    assert derive_key(7) == rng.mix(np.uint64(0), np.uint64(7))
    assert derive_key(7, 9) == rng.mix(np.uint64(rng.mix(np.uint64(0), np.uint64(7))), np.uint64(9))


def test_normal_draws_have_unit_moments():
    key = derive_key(123)
    z = np.array([rng.normal(key, np.uint64(i)) for i in range(100_000)])
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var(ddof=1) - 1) < 5 * np.sqrt(2 / (n - 1))
    u = np.array([rng.uniform(key, np.uint64(i)) for i in range(100_000)])
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n) and u.min() >= 0 and u.max() < 1


@pytest.mark.parametrize("model, g, expected", [
    ("additive", 7.0, 0.5 * (20 - 2)),
    ("proportional", 7.0, 0.5 * 7.0),
    ("reram-program", 100.0, 0.5 * (4.782 - 0.9107)),
    ("sonos-program", 10.0, 0.5 * 19.89 * (1 - np.exp(-1000.0 / 176.3)) / 0.1 * 1e-3),
    ("sonos-read", 10.0, 0.5 * 12.58 * (1 - np.exp(-1000.0 / 215.4)) / 0.1 * 1e-3),
    ("pcm-program", 12.5, 0.5 * (0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25)),
])
def test_state_dependent_sigma_matches_published_fits(model, g, expected):
    got = error_model(model).sigma_us(np.array([g], np.float32), 0.5, 2.0, 20.0, 0.1)
    assert got[0] == pytest.approx(expected, rel=1e-6)


def test_numba_options_live_only_in_jit_module():
    offenders = []
    for path in (ROOT / "xbar").rglob("*.py"):
        if path.name == "_jit.py":
            continue
        if re.search(r"numba\.njit\(|fastmath\s*=|@njit|numba\.jit\(", path.read_text()):
            offenders.append(str(path))
    assert offenders == []


def test_normal_fill_equals_scalar_draws_and_follows_the_normal_cdf():
    import math

    from numba import njit

    @njit
    def fill_rows(key, out):
        for r in range(out.shape[0]):
            rng.normal_fill(rng.mix(key, np.uint64(r)), out[r])

    key = derive_key(2024)
    out = np.empty((2000, 999), np.float32)  # odd length: the unpaired last draw is covered too
    fill_rows(key, out)
    for r in (0, 1, 1999):
        row_key = np.uint64(rng.mix(key, np.uint64(r)))
        np.testing.assert_array_equal(out[r], [rng.normal(row_key, np.uint64(j)) for j in range(999)])
    edges = np.array([-50, -4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 50])
    cdf = np.array([0.5 * (1 + math.erf(e / math.sqrt(2))) for e in edges])
    expected = np.diff(cdf) * out.size
    counts, _ = np.histogram(out, edges)
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 40.79  # chi-square, 17 degrees of freedom, alpha = 0.001


def test_kernel_cache_follows_edits_of_inlined_kernels(tmp_path):
    """An edit of rng.py alone reaches the cached converter kernels that inline it (no stale cache)."""
    package = tmp_path / "kernels_copy"
    package.mkdir()
    for source in (ROOT / "xbar" / "kernels").glob("*.py"):
        (package / source.name).write_text(source.read_text())
    code = ("import numpy as np; from kernels_copy import convert;"
            "c = np.zeros((1, 2, 8), np.float32); s = np.ones((1, 2, 1), np.float32);"
            "out = np.zeros((2, 8), np.float32); one = np.ones((1, 8), np.float32);"
            "ids = np.arange(2, dtype=np.uint64);"
            "convert.read_out(c, s, np.ones(1, np.uint64), ids, one, one, 0.0, 0.0, 0, out);"
            "print(out.tobytes().hex())")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "XBAR_NUMBA_CACHE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)

    def run():
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True, cwd=tmp_path).stdout

    before = run()
    assert run() == before  # loaded from the cache
    rng_source = package / "rng.py"
    edited = rng_source.read_text().replace("_GOLDEN = np.uint64(0x9E3779B97F4A7C15)",
                                            "_GOLDEN = np.uint64(0x9E3779B97F4A7C17)")
    assert edited != rng_source.read_text()
    rng_source.write_text(edited)
    assert run() != before


def test_square_sum_kernels_equal_plain_sums(rng):
    x = rng.standard_normal((7, 23)).astype(np.float32)
    starts = np.array([0, 10, 20, 23], np.int64)
    tiles = np.empty((7, 3), np.float32)
    convert.tile_square_sums(x, starts, tiles)
    for t in range(3):
        expected = [sum(float(v) ** 2 for v in row[starts[t]:starts[t + 1]]) for row in x]
        np.testing.assert_allclose(tiles[:, t], expected, rtol=1e-6)
    columns = np.full(23, 2.0)
    convert.column_square_sums(x, columns)
    np.testing.assert_allclose(columns, 2.0 + np.array([sum(float(v) ** 2 for v in col) for col in x.T]), rtol=1e-12)
