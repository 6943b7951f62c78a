"""Figures of sweep results (matplotlib: the ``plot`` extra).

:func:`summarize_rows` groups result rows by everything but the chip instance
and gives mean accuracy with a 95% confidence interval; :func:`plot_sweep`
draws accuracy against one swept parameter with that interval as a band.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

from ._files import atomic_path
from .errors import XbarError
from .stats import summarize

NON_PARAMS = {"weights", "arch", "dataset", "chip", "seed", "accuracy", "n_images", "energy_per_inference_j",
              "seconds"}


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Rows of a results CSV (strings)."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise XbarError(f"{path}: cannot read ({exc.strerror})") from None
    if not rows or "accuracy" not in rows[0]:
        raise XbarError(f"{path}: not an xbar results file (no rows, or no 'accuracy' column)")
    return rows


def swept_params(rows: list[dict]) -> list[str]:
    """Parameter columns of a results file, in file order."""
    return [c for c in rows[0] if c not in NON_PARAMS]


def summarize_rows(rows: list[dict]) -> list[dict]:
    """One entry per (weights, parameters): mean, std and 95% CI of accuracy over chip instances."""
    params = swept_params(rows)
    groups: dict[tuple, list[float]] = defaultdict(list)
    first: dict[tuple, dict] = {}
    for row in rows:
        key = (row["weights"], *(row[p] for p in params))
        groups[key].append(float(row["accuracy"]))
        first.setdefault(key, row)
    out = []
    for key, accs in groups.items():
        stats = summarize(accs)
        row = first[key]
        out.append({"weights": row["weights"], "arch": row["arch"], "dataset": row["dataset"],
                    **{p: row[p] for p in params}, "n": len(accs), "mean": stats["mean"], "std": stats["std"],
                    "ci_low": stats["ci95"][0], "ci_high": stats["ci95"][1]})
    return out


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def plot_sweep(rows: list[dict], output: str | os.PathLike, x: str | None = None, title: str | None = None,
               label=None) -> Path:
    """Accuracy against parameter ``x`` (default: the first numeric swept parameter with several values),
    one line per weights file and combination of the other parameters, one panel per dataset,
    mean over chip instances with a 95% confidence band. Written atomically as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise XbarError("plotting needs matplotlib: pip install -e '.[plot]'") from None
    summary = summarize_rows(rows)
    params = swept_params(rows)
    if x is None:
        candidates = [p for p in params if len({s[p] for s in summary}) > 1
                      and all(_number(s[p]) is not None for s in summary)]
        x = "sigma_syn" if "sigma_syn" in candidates else (candidates[0] if candidates else None)
    if x is None or x not in params:
        raise XbarError(f"no numeric swept parameter to plot against (swept: {', '.join(params) or 'none'})")
    others = [p for p in params if p != x]
    datasets = sorted({s["dataset"] for s in summary})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        lines: dict[tuple, list[dict]] = defaultdict(list)
        for s in summary:
            if s["dataset"] == dataset:
                lines[(s["weights"], *(s[p] for p in others))].append(s)
        for key, points in sorted(lines.items()):
            points.sort(key=lambda s: _number(s[x]))
            xs = [_number(s[x]) for s in points]
            name = label(points[0]) if label else " ".join(
                [Path(key[0]).stem, *(f"{p}={v}" for p, v in zip(others, key[1:]))])
            line, = ax.plot(xs, [100 * s["mean"] for s in points], marker="o", ms=3, label=name)
            ax.fill_between(xs, [100 * max(s["ci_low"], 0.0) for s in points],
                            [100 * min(s["ci_high"], 1.0) for s in points],
                            color=line.get_color(), alpha=0.2)
        ax.set_xlabel(x)
        ax.set_ylabel("accuracy (%), mean and 95% CI over chip instances")
        ax.set_title(f"{title + ': ' if title else ''}{dataset}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(output)
