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


def bounded_interval(mean: float, se: float, df: int) -> tuple[float, float]:
    """95% interval of a mean fraction in [0, 1] with standard error ``se`` and ``df`` degrees of freedom.

    The t interval is taken on the logit scale (delta method: se / (m (1 - m))) and mapped back, so it stays
    inside (0, 1) and widens toward the far side of a bound, where a symmetric t interval of a few chip
    instances can pass 100% (a 3-chip interval reached [34.1, 135.7] before). Far from the bounds it equals
    the t interval to first order. A mean of exactly 0 or 1 (every value equal) gives [mean, mean].
    """
    if se == 0.0 or mean <= 0.0 or mean >= 1.0:
        return mean, mean
    centre = math.log(mean / (1.0 - mean))
    half = t975(df) * se / (mean * (1.0 - mean))
    return _expit(centre - half), _expit(centre + half)


def _expit(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def summarize(values) -> dict:
    """Mean, sample std (ddof=1) and 95% confidence interval of the mean of ``values``, fractions in [0, 1].

    The interval is :func:`bounded_interval` (t on the logit scale), inside [0, 1]. With one value the std
    and the interval are None: one sample says nothing of the spread, and an interval [x, x] would claim
    certainty.
    """
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if v.size < 2:
        return {"mean": mean, "std": None, "ci95": None}
    std = float(v.std(ddof=1))
    return {"mean": mean, "std": std, "ci95": list(bounded_interval(mean, std / math.sqrt(v.size), v.size - 1))}


def summarize_nested(groups) -> dict:
    """Mean and 95% interval of fractions observed in ``groups`` (one list per training seed, its chip instances).

    With several groups the unit of replication is the group: the mean is the mean of the group means, and
    the interval is :func:`bounded_interval` of the group means (df = groups - 1), so it covers the spread
    between trained networks as well as between chips (the group means carry the chips' spread divided by
    their number). With one group it is :func:`summarize` of its values: chips only. Returns ``mean``,
    ``std`` (of the group means, or of the values for one group), ``ci95``, ``groups`` and ``n`` (values).
    """
    groups = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not groups:
        raise ValueError("no values")
    n = sum(g.size for g in groups)
    if len(groups) == 1:
        return {**summarize(groups[0]), "groups": 1, "n": n}
    means = np.array([g.mean() for g in groups])
    return {**summarize(means), "groups": len(groups), "n": n}


def paired_difference(a_groups, b_groups) -> dict:
    """Mean and 95% t interval of a - b, observations paired within each group (the same trained network and
    chip instance under two conditions, or two networks' chips with the same index).

    Groups as :func:`summarize_nested`: with several, the per-group mean differences are the replicates
    (df = groups - 1); with one, the paired differences themselves. Differences are not bounded to [0, 1],
    so the interval is the plain t interval. ``std`` and ``ci95`` are None with a single replicate.
    """
    diffs = []
    for a, b in zip(a_groups, b_groups, strict=True):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"unpaired groups of {a.size} and {b.size} values")
        diffs.append(a - b)
    replicates = np.array([d.mean() for d in diffs]) if len(diffs) > 1 else diffs[0]
    mean = float(replicates.mean())
    if replicates.size < 2:
        return {"mean": mean, "std": None, "ci95": None, "df": 0}
    std = float(replicates.std(ddof=1))
    half = t975(replicates.size - 1) * std / math.sqrt(replicates.size)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "df": replicates.size - 1}


def verdict(ci95: list[float] | None, expected_sign: int) -> str:
    """ "holds", "does not hold" or "not resolved": whether a difference's 95% interval lies wholly on the side
    ``expected_sign`` (+1 or -1) of zero, wholly on the other side, or covers zero (or is None)."""
    if ci95 is None:
        return "not resolved"
    low, high = ci95
    if expected_sign * low > 0 and expected_sign * high > 0:
        return "holds"
    if expected_sign * low < 0 and expected_sign * high < 0:
        return "does not hold"
    return "not resolved"
