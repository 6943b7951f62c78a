"""What the reproduction says: its tables in markdown, and the paper's claims tested on the sweeps' rows.

Every number comes from the rows of the CSVs that :mod:`xbar.reproduce` writes (one per chip instance). Accuracy
cells are :func:`xbar.stats.summarize_nested` over training seeds (seed 0 is the shipped file, 1 and 2 the
``-s1``/``-s2`` files) and their chip instances: the interval covers both. A claim is a signed difference between
two cells, tested with :func:`xbar.stats.paired_difference` (the same network and chip instance under two
conditions, or two networks' chips of the same index and training seed) and judged by
:func:`xbar.stats.verdict`: "holds" when its 95% interval lies on the paper's side of zero, "does not hold" on
the other side, and "not resolved" when it covers zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .stats import paired_difference, summarize_nested, verdict


def _key(value: object) -> str:
    try:
        return repr(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)


class Results:
    """Accuracies of the rows of one or more sweeps, by weights file name, parameters and chip index."""

    DEFAULTS: dict[str, object] = {"syn_mode": "static", "sigma_syn": 0.0, "sigma_te": 0.0}
    """The value of a parameter where a sweep did not vary it."""

    def __init__(self, rows: Iterable[dict]):
        self._acc: dict[tuple, dict[int, float]] = defaultdict(dict)
        for row in rows:
            params = {k: row.get(k, v) for k, v in self.DEFAULTS.items()}
            key = (Path(row["weights"]).name, *(_key(params[k]) for k in self.DEFAULTS))
            self._acc[key][int(row["chip"])] = float(row["accuracy"])

    def chips(self, name: str, **params: object) -> list[float]:
        """Accuracies of weights file ``name`` at ``params`` (the others at their defaults), by chip index; []
        where the point was not run."""
        values = {**self.DEFAULTS, **params}
        found = self._acc.get((name, *(_key(values[k]) for k in self.DEFAULTS)), {})
        return [found[c] for c in sorted(found)]

    def groups(self, names: Iterable[str], **params: object) -> list[list[float]]:
        """:meth:`chips` of each file of ``names`` (one per training seed) that was run at ``params``."""
        return [g for g in (self.chips(n, **params) for n in names) if g]


@dataclass(frozen=True)
class Cell:
    """An accuracy cell: mean and 95% interval (fractions; interval None with one chip and one seed)."""

    mean: float
    ci95: tuple[float, float] | None
    seeds: int
    chips: int

    def text(self, interval: bool = True) -> str:
        """``mean [low, high]`` in %, 2 decimals."""
        if self.ci95 is None or not interval:
            return f"{100 * self.mean:.2f}"
        return f"{100 * self.mean:.2f} [{100 * self.ci95[0]:.2f}, {100 * self.ci95[1]:.2f}]"


def cell(groups: list[list[float]]) -> Cell | None:
    """The :class:`Cell` of ``groups`` (one list of chip accuracies per training seed); None if empty."""
    if not groups:
        return None
    stats = summarize_nested(groups)
    ci = stats["ci95"]
    return Cell(stats["mean"], None if ci is None else (ci[0], ci[1]), len(groups), min(len(g) for g in groups))


@dataclass(frozen=True)
class Check:
    """One case of a claim: a difference (fraction) with its interval and verdict."""

    case: str
    mean: float
    ci95: tuple[float, float] | None
    verdict: str

    def text(self) -> str:
        """The difference in points with its interval."""
        if self.ci95 is None:
            return f"{100 * self.mean:+.2f}"
        return f"{100 * self.mean:+.2f} [{100 * self.ci95[0]:+.2f}, {100 * self.ci95[1]:+.2f}]"


def difference(case: str, a: list[list[float]], b: list[list[float]], sign: int) -> Check | None:
    """The test that a - b has sign ``sign`` (+1: a above b), groups paired by training seed and chip index; None
    when either side was not run or they do not pair."""
    a, b = a[: len(b)], b[: len(a)]
    if not a or any(len(x) != len(y) for x, y in zip(a, b)):
        return None
    d = paired_difference(a, b)
    ci = None if d["ci95"] is None else (d["ci95"][0], d["ci95"][1])
    return Check(case, d["mean"], ci, verdict(d["ci95"], sign))


def drops(clean: list[list[float]], noisy: list[list[float]]) -> list[list[float]]:
    """Per chip, the accuracy lost from the noise-free mean of its training seed (the chips of a noise-free point
    are all the same network)."""
    return [[float(np.mean(c)) - x for x in n] for c, n in zip(clean, noisy)]


def combine(tests: list[Check]) -> str:
    """The verdict of a claim made of several cases: holds if every case holds, does not hold if any does not."""
    verdicts = [t.verdict for t in tests]
    if not verdicts:
        return "not run"
    if all(v == "holds" for v in verdicts):
        return "holds"
    if any(v == "does not hold" for v in verdicts):
        return "does not hold"
    return "not resolved"


def claims_markdown(title: str, claims: list[tuple[str, list[Check]]]) -> list[str]:
    """A markdown table of ``claims`` (name, cases): each case's difference in points, its interval and verdict,
    and the claim's verdict."""
    lines = [
        f"### {title}",
        "",
        "| claim | case | difference, points [95% CI] | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for name, tests in claims:
        tests = [t for t in tests if t is not None]
        if not tests:
            lines.append(f"| {name} | | | not run |")
            continue
        for i, t in enumerate(tests):
            lines.append(f"| {name if i == 0 else ''} | {t.case} | {t.text()} | {t.verdict} |")
        lines.append(f"| | **claim** | | **{combine(tests)}** |")
    return lines


def mean_absolute_difference(pairs: Iterable[tuple[float, float]]) -> float:
    """Mean |ours - paper| over ``pairs`` (points); NaN for none."""
    diffs = [abs(a - b) for a, b in pairs]
    return float(np.mean(diffs)) if diffs else float("nan")


def crossing(xs: list[float], drop: list[float], target: float) -> float | None:
    """The smallest x at which ``drop`` (increasing along ``xs`` on the whole) first reaches ``target``, linear
    between grid points; None if it never does."""
    for i, (x, d) in enumerate(zip(xs, drop)):
        if d >= target:
            if i == 0:
                return x
            x0, d0 = xs[i - 1], drop[i - 1]
            return x0 + (target - d0) * (x - x0) / (d - d0)
    return None
