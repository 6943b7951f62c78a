"""The drift figure of docs/devices.md: accuracy against read time, one panel per network.

    xbar sweep docs/examples/drift.toml -o docs/devices-drift.csv --workers 2
    python docs/examples/plot_drift.py docs/devices-drift.csv -o docs/devices-drift.png \
        --reference cnn-mnist=0.98083 --reference mlp-mnist=0.975

One line per ``adc.drift_compensation`` mode: the mean over chip instances with its 95% confidence
interval (Student t on the logit scale, as ``xbar plot``) as a band; a dashed line at each network's no-drift accuracy
(``--reference STEM=ACCURACY``, from ``xbar run W --hardware pcm --set device.drift_nu_mean=0
--set device.drift_nu_std=0 --seeds 3 --limit 2000 --json``), where given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from xbar.results import read_rows, summarize_rows

X = "device.read_time_s"
MODE = "adc.drift_compensation"
TICKS = {20: "20 s", 60: "1 min", 600: "10 min", 3600: "1 h", 86400: "1 day",
         604800: "1 week", 2592000: "30 days", 31536000: "1 year"}
MODES = ("none", "global", "column")
TITLES = {"cnn": "CNN", "mlp": "MLP"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="the sweep's results CSV")
    parser.add_argument("-o", "--output", required=True, help="figure file (.png, .pdf, .svg)")
    parser.add_argument("--reference", action="append", default=[], metavar="STEM=ACCURACY",
                        help="no-drift accuracy (fraction) of the weights file STEM.h5 (repeatable)")
    parser.add_argument("--dpi", type=int, default=150)
    args = parser.parse_args()
    reference = {k: float(v) for k, v in (r.split("=", 1) for r in args.reference)}

    summary = summarize_rows(read_rows(args.results))
    weights = list(dict.fromkeys(s["weights"] for s in summary))
    fig, axes = plt.subplots(1, len(weights), figsize=(5.5 * len(weights), 4.2), squeeze=False)
    for ax, w in zip(axes[0], weights):
        points = [s for s in summary if s["weights"] == w]
        stem = Path(w).stem
        for mode in MODES:
            line = sorted((s for s in points if s[MODE] == mode), key=lambda s: float(s[X]))
            if not line:
                continue
            xs = [float(s[X]) for s in line]
            (drawn,) = ax.plot(xs, [100 * s["mean"] for s in line], marker="o", ms=3, label=f"compensation: {mode}")
            if all(s["ci_low"] is not None for s in line):
                ax.fill_between(xs, [100 * max(s["ci_low"], 0.0) for s in line],
                                [100 * min(s["ci_high"], 1.0) for s in line], color=drawn.get_color(), alpha=0.2)
        if stem in reference:
            ax.axhline(100 * reference[stem], color="k", ls="--", lw=1, label="no drift")
        ax.set_xscale("log")
        ax.set_xticks(list(TICKS), list(TICKS.values()), rotation=45, ha="right")
        ax.minorticks_off()
        ax.set_xlabel("read time after programming")
        ax.set_title(f"{TITLES.get(points[0]['arch'], points[0]['arch'])} ({stem}), pcm")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    for ax in axes[0]:
        ax.set_ylabel("accuracy (%), mean and 95% CI over chips")
    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)


if __name__ == "__main__":
    main()
