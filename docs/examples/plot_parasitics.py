"""The wire-resistance figure of docs/parasitics.md: accuracy against wire resistance, one panel per network.

    python docs/examples/parasitics_sweep.py docs/examples/parasitics.toml -o docs/parasitics-accuracy.csv \
        --workers 2
    python docs/examples/plot_parasitics.py docs/parasitics-accuracy.csv -o docs/parasitics-accuracy.png \
        --table /tmp/table.md

One line per square tile size (``tile.rows`` = ``tile.cols``): the mean over chip instances with its 95%
confidence interval (Student t on the logit scale, as ``xbar plot``) as a band, against the resistance per cell
segment of the row and the column wires (``parasitics.r_row_ohm`` = ``parasitics.r_col_ohm``, log axis). The
rows at 0 ohm (ideal wires, the same chips) are drawn as a dashed line per tile size, or one (at their mean) if
they lie within 0.5 points.
``--table`` also writes the Markdown table of mean [95% CI] per network x tile x resistance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from xbar.results import read_rows, summarize_rows

R = "parasitics.r_row_ohm"
R_COL = "parasitics.r_col_ohm"
N = "tile.rows"
N_COL = "tile.cols"
TITLES = {"cnn": "CNN", "mlp": "MLP"}
COINCIDE = 0.5
"""Ideal-wire accuracies (points) within this of each other are drawn as one dashed line, at their mean."""


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="the joined results CSV (parasitics_sweep.py)")
    parser.add_argument("-o", "--output", required=True, help="figure file (.png, .pdf, .svg)")
    parser.add_argument("--table", help="also write a Markdown table of mean [95%% CI] here")
    parser.add_argument("--dpi", type=int, default=150)
    args = parser.parse_args()

    summary = summarize_rows(read_rows(args.results))
    for s in summary:
        if s[R] != s[R_COL] or s[N] != s[N_COL]:
            raise SystemExit(f"{args.results}: a point with {R}={s[R]}, {R_COL}={s[R_COL]}, {N}={s[N]}, "
                             f"{N_COL}={s[N_COL]}: this figure wants them paired")
    weights = list(dict.fromkeys(s["weights"] for s in summary))
    sizes = sorted({int(s[N]) for s in summary})
    resistances = sorted({float(s[R]) for s in summary if float(s[R]) > 0})
    fig, axes = plt.subplots(1, len(weights), figsize=(5.5 * len(weights), 4.2), squeeze=False)
    table = []
    for ax, w in zip(axes[0], weights):
        points = [s for s in summary if s["weights"] == w]
        stem = Path(w).stem
        ideal = {int(s[N]): s for s in points if float(s[R]) == 0}
        means = [100 * s["mean"] for s in ideal.values()]
        coincide = bool(means) and max(means) - min(means) <= COINCIDE
        for size in sizes:
            line = sorted((s for s in points if int(s[N]) == size and float(s[R]) > 0), key=lambda s: float(s[R]))
            if not line:
                continue
            xs = [float(s[R]) for s in line]
            (drawn,) = ax.plot(xs, [100 * s["mean"] for s in line], marker="o", ms=3, label=f"{size} x {size} tiles")
            if all(s["ci_low"] is not None for s in line):
                ax.fill_between(xs, [100 * max(s["ci_low"], 0.0) for s in line],
                                [100 * min(s["ci_high"], 1.0) for s in line], color=drawn.get_color(), alpha=0.2)
            if size in ideal and not coincide:
                ax.axhline(100 * ideal[size]["mean"], color=drawn.get_color(), ls="--", lw=1)
        if ideal and coincide:
            ax.axhline(sum(means) / len(means), color="k", ls="--", lw=1,
                       label=f"ideal wires (0 ohm), every tile size: {min(means):.1f}-{max(means):.1f}%")
        elif ideal:
            ax.plot([], [], color="gray", ls="--", lw=1, label="ideal wires (0 ohm), per tile size")
        ax.set_xscale("log")
        ax.set_xticks(resistances, [f"{r:g}" for r in resistances])
        ax.minorticks_off()
        ax.set_xlabel("wire resistance per cell segment, rows and columns (ohm)")
        ax.set_title(f"{TITLES.get(points[0]['arch'], points[0]['arch'])} ({stem}), reram")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
        for size in sizes:
            cells = []
            for r in [0.0, *resistances]:
                s = next((s for s in points if int(s[N]) == size and float(s[R]) == r), None)
                if s is None:
                    cells.append("-")
                    continue
                low, high = s["ci_low"] and max(s["ci_low"], 0.0), s["ci_high"] and min(s["ci_high"], 1.0)
                cells.append(f"{pct(s['mean'])} [{pct(low)}, {pct(high)}]")
            table.append(f"| {stem} | {size} | " + " | ".join(cells) + " |")
    for ax in axes[0]:
        ax.set_ylabel("accuracy (%), mean and 95% CI over chips")
    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)
    if args.table:
        head = "| network | tile | 0 ohm (ideal) | " + " | ".join(f"{r:g} ohm" for r in resistances) + " |"
        rule = "| --- | ---: |" + " ---: |" * (len(resistances) + 1)
        Path(args.table).write_text("\n".join([head, rule, *table]) + "\n")


if __name__ == "__main__":
    main()
