"""Figures of sweep results (matplotlib: the ``plot`` extra).

:func:`plot_sweep` draws accuracy against one swept parameter: the mean over
chip instances with its 95% confidence interval as a band, from
:func:`xbar.results.summarize_rows`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from ._files import atomic_path
from .errors import XbarError
from .results import summarize_rows, swept_params


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


FORMATS = ("png", "pdf", "svg")
"""Figure formats, chosen by the output file's extension."""


def figure_format(output: str | os.PathLike) -> str:
    """The format named by ``output``'s extension (:data:`FORMATS`), or an :class:`XbarError`."""
    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        shown = f"'.{suffix}'" if suffix else "no extension"
        raise XbarError(f"{output}: {shown}; the figure's extension chooses its format: {', '.join(FORMATS)}")
    return suffix


def plot_sweep(
    rows: list[dict],
    output: str | os.PathLike,
    x: str | None = None,
    title: str | None = None,
    label=None,
    dpi: int = 120,
) -> Path:
    """Accuracy against parameter ``x`` (default: the first numeric swept parameter with several values),
    one line per weights file and combination of the other parameters, one panel per dataset,
    mean over chip instances with a 95% confidence band (none where a point has one chip instance).
    Written atomically in the format of ``output``'s extension (png, pdf or svg), PNG at ``dpi``."""
    fmt = figure_format(output)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise XbarError("plotting needs matplotlib: pip install -e '.[plot]'") from None
    summary = summarize_rows(rows)
    params = swept_params(rows)
    if x is None:
        candidates = [
            p for p in params if len({s[p] for s in summary}) > 1 and all(_number(s[p]) is not None for s in summary)
        ]
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
                key = (s["weights"], *(s[p] for p in others))
                lines[key].append(s)
        for key, points in sorted(lines.items()):
            points.sort(key=lambda s: _number(s[x]) or 0.0)  # x is numeric: chosen so, or refused above
            xs = [_number(s[x]) for s in points]
            name = (
                label(points[0])
                if label
                else " ".join([Path(key[0]).stem, *(f"{p}={v}" for p, v in zip(others, key[1:]))])
            )
            (line,) = ax.plot(xs, [100 * s["mean"] for s in points], marker="o", ms=3, label=name)
            banded = [(x_, s) for x_, s in zip(xs, points) if s["ci_low"] is not None]
            if banded:
                ax.fill_between(
                    [x_ for x_, _ in banded],
                    [100 * max(s["ci_low"], 0.0) for _, s in banded],
                    [100 * min(s["ci_high"], 1.0) for _, s in banded],
                    color=line.get_color(),
                    alpha=0.2,
                )
        ax.set_xlabel(x)
        ax.set_ylabel("accuracy (%), mean and 95% CI over chip instances")
        ax.set_title(f"{title + ': ' if title else ''}{dataset}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    plt.close(fig)
    return Path(output)
