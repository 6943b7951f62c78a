"""Summary statistics over chip instances."""

from __future__ import annotations

import math

import numpy as np

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (standard tables).
_T975 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def t975(df: int) -> float:
    """t quantile 0.975 with ``df`` degrees of freedom (table to 30, Cornish-Fisher beyond)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def summarize(values) -> dict:
    """Mean, sample std (ddof=1) and 95% confidence interval of the mean of ``values``.

    With one value the std and the interval are None: one sample says nothing of
    the spread, and an interval [x, x] would claim certainty.
    """
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if v.size < 2:
        return {"mean": mean, "std": None, "ci95": None}
    std = float(v.std(ddof=1))
    half = t975(v.size - 1) * std / math.sqrt(v.size)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half]}
