"""``xbar reproduce``: the paper's Table II, Fig. 3, Fig. 4 and Table III from the shipped weights.

Each target builds a sweep (xbar.sweep), runs it, and writes into the output
folder: ``{target}.csv`` (one row per chip instance), ``{target}.png`` (mean and
95% confidence band) and ``{target}.md`` (our numbers beside the paper's). The
CSVs name the shipped weights ``data/weights/<file>`` wherever they are installed,
and their provenance (``{target}.csv.meta.json``, see xbar.results) lets
``--resume`` continue them, here or on another machine with the same weights.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ._files import atomic_path, check_output_folder
from .config import PRESETS, BiasMode, Hardware
from .data import SHIPPED_DIR
from .errors import XbarError
from .sweep import Plan, Spec, run_sweep

WEIGHTS_DIR = SHIPPED_DIR / "weights"
WEIGHTS_LABEL = "data/weights"
"""How the CSVs name the folder of the shipped weights: as the repository does, never a machine's absolute path."""
DATASETS = ("mnist", "fashion-mnist")
DATASET_LABEL = {"mnist": "MNIST", "fashion-mnist": "F-MNIST"}
TARGETS = ("table2", "fig3", "fig4", "table3")
SIGMA = 0.025
SIGMA_SYN_GRID = (0.0, 0.025, 0.05, 0.1, 0.15, 0.2)
FIG4_TIMESTEPS = (7, 14, 28, 56)
FIGURE_IMAGES = 1000
"""Test images per chip instance in the figures (Table II uses all 10,000)."""

#: Table II of the paper, accuracy in %: internal (sigma_syn), external (sigma_te), both.
PAPER_TABLE2 = {
    ("mlp", "mnist"): (96.8, 94.1, 93.1),
    ("rnn", "mnist"): (97.4, 95.1, 94.9),
    ("cnn", "mnist"): (98.5, 96.7, 96.05),
    ("mlp", "fashion-mnist"): (82.2, 69.91, 62.35),
    ("rnn", "fashion-mnist"): (86.3, 84.22, 81.11),
    ("cnn", "fashion-mnist"): (85.1, 57.91, 42.35),
}
PAPER_NOISE_FREE = {
    ("mlp", "mnist"): 97.7,
    ("rnn", "mnist"): 98.5,
    ("cnn", "mnist"): 99.1,
    ("mlp", "fashion-mnist"): 84.5,
    ("rnn", "fashion-mnist"): 89.1,
    ("cnn", "fashion-mnist"): 90.1,
}


def weights_name(arch: str, dataset: str, reg: bool = False, timesteps: int | None = None) -> str:
    """Shipped file name: ``{arch}-{dataset}[-t{T}][-reg].h5`` (the RNN always names its t)."""
    t = f"-t{timesteps}" if arch == "rnn" else ""
    return f"{arch}-{dataset}{t}{'-reg' if reg else ''}.h5"


def _weights(names: list[str]) -> tuple[str, ...]:
    paths = [WEIGHTS_DIR / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise XbarError(f"missing shipped weights {', '.join(missing)}: train them with docs/recipes/train_reg.sh")
    return tuple(str(p) for p in paths)


def _spec(name, weights, grid, seeds, limit) -> Spec:
    return Spec(
        weights=_weights(weights),
        labels=tuple(f"{WEIGHTS_LABEL}/{w}" for w in weights),
        hardware="paper",
        overrides=(),
        grid=tuple(grid),
        seeds=seeds,
        seed=0,
        limit=limit,
        dataset=None,
        name=name,
    )


def spec_for(target: str, seeds: int) -> Spec:
    """The sweep behind one target."""
    if target == "table2":
        names = [weights_name(a, d, timesteps=7) for d in DATASETS for a in ("mlp", "rnn", "cnn")]
        return _spec("table2", names, [("sigma_syn", (0.0, SIGMA)), ("sigma_te", (0.0, SIGMA))], seeds, None)
    if target == "fig3":
        names = [weights_name(a, d, reg, 7) for d in DATASETS for a in ("cnn", "rnn") for reg in (False, True)]
        return _spec("fig3", names, [("sigma_te", (0.0, SIGMA)), ("sigma_syn", SIGMA_SYN_GRID)], seeds, FIGURE_IMAGES)
    if target == "fig4":
        names = [weights_name("rnn", d, reg, t) for d in DATASETS for t in FIG4_TIMESTEPS for reg in (False, True)]
        return _spec("fig4", names, [("sigma_syn", SIGMA_SYN_GRID)], seeds, FIGURE_IMAGES)
    raise XbarError(f"unknown target {target!r} (choose from {', '.join(TARGETS)}, all)")


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _pct(stats: dict) -> str:
    if stats["ci_low"] is None:  # one chip instance: no interval
        return f"{100 * stats['mean']:.2f}"
    return f"{100 * stats['mean']:.2f} [{100 * stats['ci_low']:.2f}, {100 * stats['ci_high']:.2f}]"


def _table2_markdown(summary: list[dict], seeds: int) -> str:
    def find(path_end, syn, te):
        return next(
            s
            for s in summary
            if s["weights"].endswith(path_end) and float(s["sigma_syn"]) == syn and float(s["sigma_te"]) == te
        )

    lines = [
        f"# Table II: accuracy (%) with sigma = {SIGMA}, t = 7",
        "",
        f"Ours: mean [95% CI] over {seeds} chip instances on the `paper` crossbar, 10,000 test images "
        "each; paper's value beside it.",
        "",
        "| net / task | noise-free (ours / paper) | internal (ours / paper) | external (ours / paper) | "
        "both (ours / paper) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for dataset in DATASETS:
        for arch in ("mlp", "rnn", "cnn"):
            end = weights_name(arch, dataset, timesteps=7)
            paper = PAPER_TABLE2[(arch, dataset)]
            cells = [f"{_pct(find(end, 0.0, 0.0))} / {PAPER_NOISE_FREE[(arch, dataset)]}"]
            for (syn, te), value in zip(((SIGMA, 0.0), (0.0, SIGMA), (SIGMA, SIGMA)), paper):
                cells.append(f"{_pct(find(end, syn, te))} / {value}")
            lines.append(f"| {arch.upper()} {DATASET_LABEL[dataset]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _curves_markdown(title: str, summary: list[dict], columns: list[str], seeds: int) -> str:
    grid = sorted({float(s["sigma_syn"]) for s in summary})
    lines = [
        f"# {title}",
        "",
        f"Mean accuracy (%) over {seeds} chip instances on the `paper` crossbar, "
        f"{FIGURE_IMAGES} test images each (95% confidence bands in the PNG, every chip in the CSV); "
        "the paper gives these only as a figure, see docs/reproduction.md.",
        "",
        "| " + " | ".join(["network", *columns, *(f"sigma_syn={g}" for g in grid)]) + " |",
        "| " + " | ".join("---" for _ in range(1 + len(columns) + len(grid))) + " |",
    ]
    series: dict[tuple, dict[float, dict]] = {}
    for s in summary:
        series.setdefault((Path(s["weights"]).stem, *(s[c] for c in columns)), {})[float(s["sigma_syn"])] = s
    for key, points in sorted(series.items()):
        cells = [*key, *(f"{100 * points[g]['mean']:.2f}" if g in points else "-" for g in grid)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: The paper's Table III: energy per inference (J), total and neurons.
PAPER_TABLE3 = {
    ("mlp", "reram"): (4.24e-9, 15e-12),
    ("rnn", "reram"): (35.6e-9, 66e-12),
    ("cnn", "reram"): (480e-9, 358e-12),
    ("mlp", "sonos"): (6.04e-9, 15e-12),
    ("rnn", "sonos"): (42.7e-9, 66e-12),
    ("cnn", "sonos"): (2.084e-6, 358e-12),
}


def paper_layout(hw: Hardware) -> Hardware:
    """``hw`` with the paper's layouts: every layer one array (2048 x 2048 tiles), the bias as a row."""
    return replace(hw, tile=replace(hw.tile, rows=2048, cols=2048), mapping=replace(hw.mapping, bias=BiasMode.ROW))


def table3(weights_dir: str | os.PathLike, n_images: int = 200) -> list[dict]:
    """Our Table III beside the paper's: the shipped MNIST networks in the paper's layouts.

    Returns one dict per (network, technology) with our total, VMM (total less
    neurons) and neuron energies and the paper's total and neurons (J), and the
    relative difference of the totals.
    """
    from . import data, io
    from .crossbar import program
    from .energy import energy_report

    images, _ = data.load("mnist", "test", limit=n_images)
    names = {"mlp": "mlp-mnist.h5", "rnn": "rnn-mnist-t7.h5", "cnn": "cnn-mnist.h5"}
    rows = []
    for tech in ("reram", "sonos"):
        hw = paper_layout(PRESETS[tech])
        for arch, name in names.items():
            network = io.load(Path(weights_dir) / name)
            chip = program(network, hw, 0, images[: hw.calibration_images])
            chip.forward(images, 0)
            report = energy_report(chip.operation_counts(), hw)
            paper_total, paper_neurons = PAPER_TABLE3[(arch, tech)]
            neurons = report["parts_j"]["neurons"]
            rows.append(
                {
                    "system": f"{arch.upper()} {tech.upper()}",
                    "total_j": report["total_j"],
                    "vmm_j": report["total_j"] - neurons,
                    "neurons_j": neurons,
                    "paper_total_j": paper_total,
                    "paper_neurons_j": paper_neurons,
                    "relative_difference": report["total_j"] / paper_total - 1,
                }
            )
    return rows


def _table3(out: Path) -> list[Path]:
    rows = table3(WEIGHTS_DIR, n_images=200)
    csv_lines = ["system,total_j,vmm_j,neurons_j,paper_total_j,paper_neurons_j,relative_difference"]
    md = [
        "# Table III: energy per inference",
        "",
        "Paper's layouts, ReRAM and SONOS constants calibrated against this table (docs/energy.md).",
        "",
        "| system | ours: total | ours: VMM | ours: neurons | paper: total | paper: neurons | difference |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        csv_lines.append(
            ",".join(
                str(r[k])
                for k in (
                    "system",
                    "total_j",
                    "vmm_j",
                    "neurons_j",
                    "paper_total_j",
                    "paper_neurons_j",
                    "relative_difference",
                )
            )
        )
        md.append(
            f"| {r['system']} | {r['total_j'] * 1e9:.4g} nJ | {r['vmm_j'] * 1e9:.4g} nJ | "
            f"{r['neurons_j'] * 1e12:.1f} pJ | {r['paper_total_j'] * 1e9:.4g} nJ | "
            f"{r['paper_neurons_j'] * 1e12:.0f} pJ | {100 * r['relative_difference']:+.2f}% |"
        )
    _write(out / "table3.csv", "\n".join(csv_lines) + "\n")
    _write(out / "table3.md", "\n".join(md) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [r["system"] for r in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["total_j"] * 1e9 for r in rows], width=0.4, label="xbar")
    ax.bar([x + 0.2 for x in xs], [r["paper_total_j"] * 1e9 for r in rows], width=0.4, label="paper")
    ax.set_yscale("log")
    ax.set_xticks(list(xs), labels, rotation=30, fontsize=8)
    ax.set_ylabel("energy per inference (nJ)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(out / "table3.png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return [out / "table3.csv", out / "table3.png", out / "table3.md"]


def reproduce(
    target: str,
    out: str | os.PathLike,
    *,
    seeds: int = 10,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    on_plan: Callable[[Plan], None] | None = None,
) -> list[Path]:
    """Run one target (or ``all``) and write its CSV, PNG and markdown into ``out``; return the files.

    ``progress(target, done, total)`` and ``on_plan(plan)`` (with an estimate of the
    run time) are :func:`xbar.sweep.run_sweep`'s, for each target's sweep. Without
    ``resume`` a target's CSV is started afresh.
    """
    from .plot import plot_sweep
    from .results import read_rows, summarize_rows

    try:
        import matplotlib  # noqa: F401  (checked before hours of sweeps, not after)
    except ImportError:
        raise XbarError("xbar reproduce draws figures with matplotlib: pip install -e '.[plot]'") from None
    out = check_output_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XbarError(f"{out}: cannot create the folder ({exc.strerror})") from None
    targets = TARGETS if target == "all" else (target,)
    specs = {t: spec_for(t, seeds) for t in targets if t != "table3"}  # all weights checked before running
    written: list[Path] = []
    for name in targets:
        if name == "table3":
            written += _table3(out)
            continue
        spec = specs[name]
        csv_path = out / f"{name}.csv"
        run_sweep(
            spec,
            csv_path,
            resume=resume,
            overwrite=not resume,
            workers=workers,
            scheduler=scheduler,
            progress=None if progress is None else functools.partial(progress, name),
            on_plan=on_plan,
            estimate=on_plan is not None,
        )
        rows = read_rows(csv_path)
        summary = summarize_rows(rows)
        if name == "table2":
            markdown = _table2_markdown(summary, seeds)
            plot_sweep(rows, out / f"{name}.png", x="sigma_syn", title="Table II")
        elif name == "fig3":
            markdown = _curves_markdown("Fig. 3: accuracy against sigma_syn (t = 7)", summary, ["sigma_te"], seeds)
            plot_sweep(rows, out / f"{name}.png", x="sigma_syn", title="Fig. 3")
        else:
            markdown = _curves_markdown("Fig. 4: RNN accuracy against sigma_syn for each t", summary, [], seeds)
            plot_sweep(rows, out / f"{name}.png", x="sigma_syn", title="Fig. 4")
        _write(out / f"{name}.md", markdown)
        written += [csv_path, out / f"{name}.png", out / f"{name}.md"]
    return written
