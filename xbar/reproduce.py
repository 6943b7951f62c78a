"""``xbar reproduce``: the paper's Table II, Fig. 3, Fig. 4, its input-noise claims and Table III from the shipped
weights.

Each target runs one or more sweeps (xbar.sweep) and writes into the output folder, per sweep, ``{name}.csv`` (one
row per chip instance), ``{name}.png`` (mean and 95% confidence band) and ``{target}.md`` (our numbers beside the
paper's, and the paper's claims tested with paired differences: :mod:`xbar.claims`). The CSVs name the shipped
weights ``data/weights/<file>`` wherever they are installed, and their provenance (``{name}.csv.meta.json``, see
xbar.results) lets ``--resume`` continue them, here or on another machine with the same weights.

Two scopes: the default (a few chip instances, the paper's networks, the static reading of sigma_syn in the
figures) finishes in minutes; ``full`` adds the per-read reading of sigma_syn to Fig. 3, the other readings of
the networks (the 128-unit MLP and the plain recurrent network) to Table II and Fig. 4, and more chips.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from ._files import atomic_path, check_output_folder
from .data import SHIPPED_DIR
from .errors import XbarError
from .sweep import Plan, Spec, run_sweep

WEIGHTS_DIR = SHIPPED_DIR / "weights"
WEIGHTS_LABEL = "data/weights"
"""How the CSVs name the folder of the shipped weights: as the repository does, never a machine's absolute path."""
DATASETS = ("mnist", "fashion-mnist")
DATASET_LABEL = {"mnist": "MNIST", "fashion-mnist": "F-MNIST"}
TARGETS = ("table2", "fig3", "fig4", "sigma-te", "table3")
SIGMA = 0.025
SIGMA_SYN_GRID = (0.0, 0.025, 0.05, 0.1, 0.15, 0.2)
SIGMA_TE_GRID = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
FIG4_TIMESTEPS = (7, 14, 28, 56)
FIG4_EPOCHS = 10
"""Every network of Fig. 4 was trained for this many epochs (the t = 7 Mosaic RNN of Table II, 20)."""
FIGURE_IMAGES = 1000
"""Test images per chip instance in Fig. 3 and Fig. 4 (Table II and the sigma_te curves use all 10,000)."""
READ_IMAGES = {False: 500, True: 2000}
"""Test images per chip instance of Table II's per-read reading, default and full scope: every read draws every
device's noise, tens of times the cost of the static reading's folded product (docs/reproduction.md)."""
TRAINING_SEEDS = (0, 1, 2)
"""Training seeds of every Table II network (seed 0 is the shipped file without a suffix)."""
CHIPS = {False: 3, True: 10}
"""Chip instances per point (per training seed in Table II): default and full scope."""
PAPER_ARCHS = ("mlp", "rnn", "cnn")
READING_ARCHS = ("mlp128", "srnn")
"""The other readings of the paper's networks: the MLP of its text (128 hidden units, 101,770 parameters) and the
plain recurrent network whose parameter counts are its RNN's (U = 400 - 784/t units; NOTES.md)."""
ANSWERS = {"mlp": "mlp", "mlp128": "mlp", "rnn": "rnn", "srnn": "rnn", "cnn": "cnn"}
"""The paper's network that each of ours stands for."""
ARCH_LABEL = {"mlp": "MLP", "mlp128": "MLP-128", "rnn": "RNN", "srnn": "plain RNN", "cnn": "CNN"}
READINGS = {"static": "static (programming error)", "read": "per read, clipped at 0 (CrossSim)"}
"""The two readings of sigma_syn: ``syn_mode`` values of the sweeps, and how the tables name them."""
READ_CLIP = (("device.read_clip", "zero"),)
"""The per-read reading's hardware: the noisy conductance clipped at zero, as CrossSim applies it. Without read
noise (the static reading) the clip has nothing to act on."""

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
TABLE2_POINTS = ((0.0, 0.0), (SIGMA, 0.0), (0.0, SIGMA), (SIGMA, SIGMA))
"""Table II's columns as (sigma_syn, sigma_te): noise-free, internal, external, both."""


def weights_name(
    arch: str, dataset: str, reg: bool = False, timesteps: int | None = None, *, seed: int = 0, epochs: int = 0
) -> str:
    """Shipped file name: ``{arch}-{dataset}[-t{T}][-e{epochs}][-reg][-s{seed}].h5`` (the RNNs always name their t;
    ``epochs`` only where it differs from the network's usual recipe, seed only when not 0)."""
    t = f"-t{timesteps if timesteps is not None else 7}" if arch in ("rnn", "srnn") else ""
    e = f"-e{epochs}" if epochs else ""
    return f"{arch}-{dataset}{t}{e}{'-reg' if reg else ''}{f'-s{seed}' if seed else ''}.h5"


def table2_name(arch: str, dataset: str, seed: int = 0) -> str:
    """The Table II network ``arch`` (a paper arch or a reading) trained with ``seed``."""
    return weights_name(arch, dataset, timesteps=7, seed=seed)


def fig4_name(arch: str, dataset: str, reg: bool, timesteps: int) -> str:
    """Fig. 4's network of ``arch`` (rnn or srnn) at ``timesteps``, trained for :data:`FIG4_EPOCHS` epochs: the
    Mosaic RNN at t = 7 is its own file (Table II's, of the same name without ``-e``, trained 20)."""
    return weights_name(arch, dataset, reg, timesteps, epochs=FIG4_EPOCHS if arch == "rnn" and timesteps == 7 else 0)


def fig4_names(arch: str) -> list[str]:
    """Fig. 4's networks of ``arch`` (rnn or srnn): every t, standard and noise-prepared, both datasets."""
    return [fig4_name(arch, d, reg, t) for d in DATASETS for t in FIG4_TIMESTEPS for reg in (False, True)]


def _weights(names: list[str]) -> tuple[str, ...]:
    paths = [WEIGHTS_DIR / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise XbarError(
            f"missing shipped weights {', '.join(missing)}: train them with docs/recipes/train_reg.sh or "
            "docs/recipes/train_readings.sh"
        )
    return tuple(str(p) for p in paths)


def _spec(name, weights, grid, chips, limit, overrides=()) -> Spec:
    return Spec(
        weights=_weights(weights),
        labels=tuple(f"{WEIGHTS_LABEL}/{w}" for w in weights),
        hardware="paper",
        overrides=tuple(overrides),
        grid=tuple(grid),
        seeds=chips,
        seed=0,
        limit=limit,
        dataset=None,
        name=name,
    )


def table2_archs(full: bool) -> tuple[str, ...]:
    """Table II's networks: the paper's three, and in the full scope the other readings."""
    return PAPER_ARCHS + (READING_ARCHS if full else ())


def sweeps_for(target: str, chips: int, full: bool = False) -> dict[str, Spec]:
    """The sweeps behind one target, by the name of their CSV."""
    if target == "table2":
        names = [table2_name(a, d, s) for d in DATASETS for a in table2_archs(full) for s in TRAINING_SEEDS]
        static = _spec("table2", names, [("sigma_syn", (0.0, SIGMA)), ("sigma_te", (0.0, SIGMA))], chips, None)
        # The per-read reading changes only the cells with sigma_syn; the others are the static sweep's.
        read = _spec(
            "table2-read",
            names,
            [("syn_mode", ("read",)), ("sigma_syn", (SIGMA,)), ("sigma_te", (0.0, SIGMA))],
            chips,
            READ_IMAGES[full],
            READ_CLIP,
        )
        return {"table2": static, "table2-read": read}
    if target == "fig3":
        names = [weights_name(a, d, reg, 7) for d in DATASETS for a in ("cnn", "rnn") for reg in (False, True)]
        modes = tuple(READINGS) if full else ("static",)
        grid = [("syn_mode", modes), ("sigma_te", (0.0, SIGMA)), ("sigma_syn", SIGMA_SYN_GRID)]
        return {"fig3": _spec("fig3", names, grid, chips, FIGURE_IMAGES, READ_CLIP)}
    if target == "fig4":
        names = fig4_names("rnn") + (fig4_names("srnn") if full else [])
        return {"fig4": _spec("fig4", names, [("sigma_syn", SIGMA_SYN_GRID)], chips, FIGURE_IMAGES)}
    if target == "sigma-te":
        seeds = TRAINING_SEEDS if full else (0,)
        names = [table2_name(a, d, s) for d in DATASETS for a in PAPER_ARCHS for s in seeds]
        return {"sigma-te": _spec("sigma-te", names, [("sigma_te", SIGMA_TE_GRID)], chips, None)}
    raise XbarError(f"unknown target {target!r} (choose from {', '.join(TARGETS)}, all)")


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _table2_groups(res, arch: str, dataset: str, mode: str, syn: float, te: float) -> list[list[float]]:
    """The chip accuracies of Table II's ``arch`` on ``dataset`` at (``syn``, ``te``) under reading ``mode``, one
    list per training seed. A point without sigma_syn is the static sweep's in both readings."""
    names = [table2_name(arch, dataset, s) for s in TRAINING_SEEDS]
    return res.groups(names, sigma_syn=syn, sigma_te=te, syn_mode=mode if syn else "static")


def _table2_cells(res, arch: str, dataset: str):
    """Table II's cells of ``arch`` on ``dataset``: noise-free, then (internal, external, both) for each reading."""
    from .claims import Cell, cell

    out: dict[object, Cell | None] = {"noise-free": cell(_table2_groups(res, arch, dataset, "static", 0.0, 0.0))}
    for mode in READINGS:
        for label, (syn, te) in zip(("internal", "external", "both"), TABLE2_POINTS[1:]):
            out[(mode, label)] = cell(_table2_groups(res, arch, dataset, mode, syn, te))
    return out


def _table2_claims(res, mode: str):
    from .claims import difference, drops

    def g(arch, dataset, syn, te):
        return _table2_groups(res, arch, dataset, mode, syn, te)

    def drop(arch, dataset):
        return drops(g(arch, dataset, 0.0, 0.0), g(arch, dataset, SIGMA, SIGMA))

    claims = []
    cases = []
    for d in DATASETS:
        for a in PAPER_ARCHS:
            label = f"{ARCH_LABEL[a]} {DATASET_LABEL[d]}"
            cases.append(difference(f"{label}: both - internal", g(a, d, SIGMA, SIGMA), g(a, d, SIGMA, 0.0), -1))
            cases.append(difference(f"{label}: both - external", g(a, d, SIGMA, SIGMA), g(a, d, 0.0, SIGMA), -1))
    claims.append(("Compounded noise hurts most", cases))
    cases = [
        difference(
            f"{ARCH_LABEL[a]} {DATASET_LABEL[d]}: internal - external", g(a, d, SIGMA, 0.0), g(a, d, 0.0, SIGMA), 1
        )
        for d in DATASETS
        for a in PAPER_ARCHS
    ]
    claims.append(("Internal noise hurts least (internal above external)", cases))
    cases = [
        difference(f"CNN - {ARCH_LABEL[a]}, both", g("cnn", "mnist", SIGMA, SIGMA), g(a, "mnist", SIGMA, SIGMA), 1)
        for a in ("mlp", "rnn")
    ]
    claims.append(("The CNN is best on MNIST even with both noises", cases))
    cases = [
        difference(f"loss RNN - loss {ARCH_LABEL[a]}", drop("rnn", "fashion-mnist"), drop(a, "fashion-mnist"), -1)
        for a in ("mlp", "cnn")
    ]
    claims.append(("The RNN is the most robust on Fashion-MNIST (smallest loss, both noises)", cases))
    cases = [
        difference(f"loss CNN - loss {ARCH_LABEL[a]}", drop("cnn", "fashion-mnist"), drop(a, "fashion-mnist"), 1)
        for a in ("mlp", "rnn")
    ]
    claims.append(("The CNN is the most fragile on Fashion-MNIST (largest loss, both noises)", cases))
    return claims


def _table2_markdown(res, chips: int, full: bool, images: tuple[int, int]) -> str:
    from .claims import claims_markdown, mean_absolute_difference

    lines = [
        f"# Table II: accuracy (%) with sigma = {SIGMA}, t = 7",
        "",
        f"Ours: mean [95% CI] over {len(TRAINING_SEEDS)} training seeds x {chips} chip instances each (the "
        "interval covers both: xbar.stats.summarize_nested), on the `paper` crossbar; the paper's value after "
        f"the slash. Static reading: {images[0]:,} test images per chip; per-read reading: the first {images[1]:,}.",
        "",
        "| net / task | noise-free | internal, static | internal, per read | external | both, static "
        "| both, per read |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    # Per network and reading, (ours, paper) of each column's cells, for the MADs below.
    scored: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for arch in table2_archs(full):
        for dataset in DATASETS:
            cells = _table2_cells(res, arch, dataset)
            paper_arch = ANSWERS[arch]
            paper = dict(zip(("internal", "external", "both"), PAPER_TABLE2[(paper_arch, dataset)]))
            paper["noise-free"] = PAPER_NOISE_FREE[(paper_arch, dataset)]

            def text(c, value):
                return "-" if c is None else f"{c.text()} / {value}"

            row = [text(cells["noise-free"], paper["noise-free"])]
            for label, mode in (
                ("internal", "static"),
                ("internal", "read"),
                ("external", "static"),
                ("both", "static"),
                ("both", "read"),
            ):
                row.append(text(cells[(mode, label)], paper[label]))
            lines.append(f"| {ARCH_LABEL[arch]} {DATASET_LABEL[dataset]} | " + " | ".join(row) + " |")
            for mode in READINGS:
                for label in paper:
                    c = cells[label] if label == "noise-free" else cells[(mode, label)]
                    if c is not None:
                        scored.setdefault((arch, mode, label), []).append((100 * c.mean, paper[label]))
    lines += [
        "",
        "## Which reading of sigma_syn reproduces the paper",
        "",
        "Mean absolute difference to the paper's cells, in points: over the internal-noise cells (sigma_syn "
        "alone, where the readings differ most cleanly), over every cell with sigma_syn (internal and both), and "
        "over all four columns (the noise-free and external cells are the same in both readings).",
        "",
        "| networks | reading | MAD, internal cells | MAD, sigma_syn cells | MAD, all cells |",
        "| --- | --- | --- | --- | --- |",
    ]
    groups: dict[str, tuple[str, ...]] = {"paper's (MLP-300, Mosaic RNN, CNN)": PAPER_ARCHS}
    if full:
        groups["MLP-128, plain RNN, CNN"] = ("mlp128", "srnn", "cnn")
        for arch in (*PAPER_ARCHS, *READING_ARCHS):
            groups[ARCH_LABEL[arch]] = (arch,)
    for title, archs in groups.items():
        for mode, reading in READINGS.items():

            def pick(*labels, archs=archs, mode=mode):
                return [p for a in archs for label in labels for p in scored.get((a, mode, label), [])]

            internal, syn = pick("internal"), pick("internal", "both")
            everything = pick("internal", "both", "noise-free", "external")
            lines.append(
                f"| {title} | {reading} | {mean_absolute_difference(internal):.2f} ({len(internal)} cells) | "
                f"{mean_absolute_difference(syn):.2f} ({len(syn)} cells) | "
                f"{mean_absolute_difference(everything):.2f} ({len(everything)} cells) |"
            )
    lines += ["", "## The paper's claims, tested", ""]
    for mode, reading in READINGS.items():
        lines += claims_markdown(f"sigma_syn {reading}", _table2_claims(res, mode)) + [""]
    return "\n".join(lines)


def _curves_markdown(title: str, res_rows: list[dict], columns: list[str], chips: int) -> list[str]:
    from .results import summarize_rows

    summary = summarize_rows(res_rows)
    grid = sorted({float(s["sigma_syn"]) for s in summary})
    lines = [
        f"# {title}",
        "",
        f"Mean accuracy (%) over {chips} chip instances on the `paper` crossbar, {FIGURE_IMAGES} test images "
        "each (95% confidence bands in the PNG, every chip in the CSV); the paper gives these only as a figure, "
        "see docs/reproduction.md.",
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
    return lines


def _fig3_claims(res, mode: str):
    from .claims import difference

    def g(arch, dataset, reg, syn, te=0.0):
        return res.groups([weights_name(arch, dataset, reg, 7)], sigma_syn=syn, sigma_te=te, syn_mode=mode)

    def gain(arch, dataset, syn):  # prepared minus standard, chip by chip
        return [
            [r - s for r, s in zip(a, b)] for a, b in zip(g(arch, dataset, True, syn), g(arch, dataset, False, syn))
        ]

    claims = []
    cases = [
        difference(
            f"{DATASET_LABEL[d]}, sigma_syn 0.1: CNN gain - RNN gain", gain("cnn", d, 0.1), gain("rnn", d, 0.1), 1
        )
        for d in DATASETS
    ]
    claims.append(("Noise regularisation helps the CNN more than the RNN", cases))
    cases = []
    for syn in (0.05, 0.1):
        for arch, reg in (("cnn", False), ("rnn", False), ("rnn", True)):
            other = f"{ARCH_LABEL[arch]}{' prepared' if reg else ''}"
            cases.append(
                difference(
                    f"sigma_syn {syn}: CNN prepared - {other}",
                    g("cnn", "mnist", True, syn),
                    g(arch, "mnist", reg, syn),
                    1,
                )
            )
    claims.append(("On MNIST the prepared CNN performs best", cases))
    cases = []
    for rnn_reg in (False, True):
        for cnn_reg in (False, True):
            cases.append(
                difference(
                    f"sigma_syn 0.05, both noises: RNN{' prepared' * rnn_reg} - CNN{' prepared' * cnn_reg}",
                    g("rnn", "fashion-mnist", rnn_reg, 0.05, SIGMA),
                    g("cnn", "fashion-mnist", cnn_reg, 0.05, SIGMA),
                    1,
                )
            )
    claims.append(("On Fashion-MNIST with both noises, at sigma_syn < 0.075 the RNNs beat the CNNs", cases))
    cases = [
        difference(
            f"{DATASET_LABEL[d]}, sigma_syn {syn}: RNN - CNN", g("rnn", d, False, syn), g("cnn", d, False, syn), 1
        )
        for d in DATASETS
        for syn in (0.05, 0.1)
    ]
    claims.append(("RNNs are more immune to synaptic noise than CNNs (standard networks)", cases))
    return claims


def _fig3_markdown(rows: list[dict], chips: int) -> str:
    from .claims import Results, claims_markdown

    res = Results(rows)
    lines = _curves_markdown("Fig. 3: accuracy against sigma_syn (t = 7)", rows, ["syn_mode", "sigma_te"], chips)
    lines += ["", "## The paper's claims, tested (one trained network each: the intervals cover chips)", ""]
    for mode, reading in READINGS.items():
        if any(r.get("syn_mode", "static") == mode for r in rows):
            lines += claims_markdown(f"sigma_syn {reading}", _fig3_claims(res, mode)) + [""]
    return "\n".join(lines)


def _fig4_markdown(rows: list[dict], chips: int) -> str:
    from .claims import Results, cell, difference

    res = Results(rows)
    lines = _curves_markdown(
        f"Fig. 4: RNN accuracy against sigma_syn for each t (all trained {FIG4_EPOCHS} epochs)", rows, [], chips
    )
    lines += [
        "",
        "## Noise-free accuracy against t, and what longer chains cost under noise",
        "",
        "Noise-free: one trained network each (no interval). At sigma_syn 0.05: the loss against t = 7 of the same "
        "reading, its 95% interval over chips.",
        "",
        "| network | dataset | t = 7 | t = 14 | t = 28 | t = 56 | loss at t = 28, sigma_syn 0.05 | loss at t = 56 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arch in ("rnn", "srnn"):
        for reg in (False, True):
            for d in DATASETS:
                names = {t: fig4_name(arch, d, reg, t) for t in FIG4_TIMESTEPS}
                clean = [cell(res.groups([names[t]])) for t in FIG4_TIMESTEPS]
                if any(c is None for c in clean):
                    continue
                losses = [
                    difference(
                        f"t={t}", res.groups([names[7]], sigma_syn=0.05), res.groups([names[t]], sigma_syn=0.05), 1
                    )
                    for t in (28, 56)
                ]
                label = f"{ARCH_LABEL[arch]}{' prepared' if reg else ''}"
                lines.append(
                    f"| {label} | {DATASET_LABEL[d]} | "
                    + " | ".join(c.text(interval=False) for c in clean if c is not None)
                    + " | "
                    + " | ".join("-" if t is None else t.text() for t in losses)
                    + " |"
                )
    return "\n".join(lines) + "\n"


def _images(rows: list[dict]) -> int:
    """Test images per chip instance in ``rows`` (the smallest, should a test set be shorter than the limit)."""
    return min((int(r["n_images"]) for r in rows), default=0)


def _sigma_te_markdown(rows: list[dict], chips: int) -> str:
    from .claims import Results, cell, crossing

    res = Results(rows)
    seeds = sorted({int(m) for m in (Path(r["weights"]).stem.rpartition("-s")[2] for r in rows) if m.isdigit()} | {0})
    lines = [
        "# Accuracy against sigma_te (input noise), sigma_syn = 0",
        "",
        f"Ours: mean over {len(seeds)} training seed(s) x {chips} input-noise draws, {_images(rows):,} test images "
        "each, on the "
        "`paper` crossbar (N(0, sigma_te) added to every pixel of images in [0, 1], not clipped). The last columns: "
        "the paper's external-noise loss (Table II: noise-free less external, at its sigma_te = 0.025), and the "
        "sigma_te at which our mean accuracy first loses as much (linear between grid points).",
        "",
        "| network | " + " | ".join(f"{g}" for g in SIGMA_TE_GRID) + " | paper's loss | our sigma_te for it |",
        "| --- | " + " | ".join("---" for _ in SIGMA_TE_GRID) + " | --- | --- |",
    ]
    for d in DATASETS:
        for arch in PAPER_ARCHS:
            names = [table2_name(arch, d, s) for s in seeds]
            cells = [cell(res.groups(names, sigma_te=te)) for te in SIGMA_TE_GRID]
            if any(c is None for c in cells):
                continue
            means = [100 * c.mean for c in cells if c is not None]
            paper_loss = PAPER_NOISE_FREE[(arch, d)] - PAPER_TABLE2[(arch, d)][1]
            at = crossing(list(SIGMA_TE_GRID), [means[0] - m for m in means], paper_loss)
            lines.append(
                f"| {ARCH_LABEL[arch]} {DATASET_LABEL[d]} | "
                + " | ".join(f"{m:.2f}" for m in means)
                + f" | {paper_loss:.2f} | {'> ' + str(SIGMA_TE_GRID[-1]) if at is None else f'{at:.3f}'} |"
            )
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict], columns: list[str]) -> str:
    return "\n".join([",".join(columns), *(",".join(str(r[c]) for c in columns) for r in rows)]) + "\n"


def _table3(out: Path) -> list[Path]:
    from .energy_check import component_table, out_of_sample, paper_counts, table3

    counts = paper_counts(WEIGHTS_DIR, n_images=200)  # the chips, built once for the three tables
    rows, checks, components = table3(counts), out_of_sample(counts), component_table(counts)
    md = [
        "# Table III: energy per inference",
        "",
        "## The calibration",
        "",
        "Paper's layouts. The ReRAM and SONOS constants were solved from these six totals (three constants per "
        "technology, three totals: zero degrees of freedom), so the agreement is by construction and validates "
        "nothing; the two tables after it can fail (docs/energy.md).",
        "",
        "| system | ours: total | ours: VMM | ours: neurons | paper: total | paper: neurons | difference |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        md.append(
            f"| {r['system']} | {r['total_j'] * 1e9:.4g} nJ | {r['vmm_j'] * 1e9:.4g} nJ | "
            f"{r['neurons_j'] * 1e12:.1f} pJ | {r['paper_total_j'] * 1e9:.4g} nJ | "
            f"{r['paper_neurons_j'] * 1e12:.0f} pJ | {100 * r['relative_difference']:+.2f}% |"
        )
    md += [
        "",
        "## Out of sample: constants fitted on two networks predict the third",
        "",
        "Per technology, the fixed per-read cost and the ADC figure of merit solved from two networks' totals (the "
        "per-row cost held at the component model's value, t_read, neuron and adder costs at the preset's).",
        "",
        "| held out | fitted on | E_read_fixed | ADC FOM | predicted | paper | error |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in checks:
        md.append(
            f"| {r['system']} | {r['fitted_on']} | {r['read_fixed_pj']:.4g} pJ | {r['adc_fom_fj']:.4g} fJ | "
            f"{r['predicted_total_j'] * 1e9:.4g} nJ | {r['paper_total_j'] * 1e9:.4g} nJ | "
            f"{100 * r['relative_error']:+.1f}% |"
        )
    md += [
        "",
        "## The component model: every constant from a published source, none fitted",
        "",
        '`energy.model = "components"` (sources in docs/energy.md and xbar.energy.COMPONENTS).',
        "",
        "| system | total | array (nJ) | DAC (nJ) | ADC (nJ) | neurons (nJ) | digital (nJ) | paper | difference |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in components:
        p = r["parts_j"]
        md.append(
            f"| {r['system']} | {r['total_j'] * 1e9:.4g} nJ | "
            + " | ".join(f"{p[k] * 1e9:.3g}" for k in ("array", "dac", "adc", "neurons", "digital"))
            + f" | {r['paper_total_j'] * 1e9:.4g} nJ | {100 * r['relative_difference']:+.1f}% |"
        )
    for r in components:
        r.update({f"{k}_j": v for k, v in r.pop("parts_j").items()})
    part_columns = [f"{k}_j" for k in ("array", "dac", "adc", "neurons", "digital", "wires")]
    columns = ["system", "total_j", "vmm_j", "neurons_j", "paper_total_j", "paper_neurons_j", "relative_difference"]
    _write(out / "table3.csv", _csv(rows, columns))
    _write(
        out / "table3-out-of-sample.csv",
        _csv(
            checks,
            [
                "system",
                "fitted_on",
                "read_fixed_pj",
                "row_pj",
                "adc_fom_fj",
                "predicted_total_j",
                "paper_total_j",
                "relative_error",
            ],
        ),
    )
    _write(
        out / "table3-components.csv",
        _csv(
            components,
            ["system", "total_j", *part_columns, "paper_total_j", "relative_difference", "calibrated_total_j"],
        ),
    )
    _write(out / "table3.md", "\n".join(md) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [r["system"] for r in rows]
    xs = range(len(rows))
    predicted = {r["system"]: r["predicted_total_j"] for r in checks}
    ax.bar([x - 0.3 for x in xs], [r["paper_total_j"] * 1e9 for r in rows], width=0.2, label="paper")
    ax.bar([x - 0.1 for x in xs], [r["total_j"] * 1e9 for r in rows], width=0.2, label="calibrated")
    ax.bar([x + 0.1 for x in xs], [predicted[s] * 1e9 for s in labels], width=0.2, label="out of sample")
    ax.bar([x + 0.3 for x in xs], [r["total_j"] * 1e9 for r in components], width=0.2, label="components")
    ax.set_yscale("log")
    ax.set_xticks(list(xs), labels, rotation=30, fontsize=8)
    ax.set_ylabel("energy per inference (nJ)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out / "table3.png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    names = ["table3.csv", "table3-out-of-sample.csv", "table3-components.csv", "table3.png", "table3.md"]
    return [out / n for n in names]


def reproduce(
    target: str,
    out: str | os.PathLike,
    *,
    seeds: int | None = None,
    full: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    on_plan: Callable[[Plan], None] | None = None,
) -> list[Path]:
    """Run one target (or ``all``) and write its CSVs, PNGs and markdown into ``out``; return the files.

    ``seeds`` is the number of chip instances per point (per training seed in Table II; default
    :data:`CHIPS` of the scope), ``full`` the full scope (see the module docstring). ``progress(name, done,
    total)`` and ``on_plan(plan)`` (with an estimate of the run time) are :func:`xbar.sweep.run_sweep`'s, for
    each sweep. Without ``resume`` a sweep's CSV is started afresh.
    """
    from .plot import plot_sweep
    from .results import read_rows

    try:
        import matplotlib  # noqa: F401  (checked before hours of sweeps, not after)
    except ImportError:
        raise XbarError("xbar reproduce draws figures with matplotlib: pip install -e '.[plot]'") from None
    chips = CHIPS[full] if seeds is None else seeds
    out = check_output_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XbarError(f"{out}: cannot create the folder ({exc.strerror})") from None
    targets = TARGETS if target == "all" else (target,)
    # Every target's weights are checked before anything runs.
    sweeps = {t: sweeps_for(t, chips, full) for t in targets if t != "table3"}
    written: list[Path] = []
    for name in targets:
        if name == "table3":
            written += _table3(out)
            continue
        rows: dict[str, list[dict]] = {}
        for csv_name, spec in sweeps[name].items():
            csv_path = out / f"{csv_name}.csv"
            run_sweep(
                spec,
                csv_path,
                resume=resume,
                overwrite=not resume,
                workers=workers,
                scheduler=scheduler,
                progress=None if progress is None else functools.partial(progress, csv_name),
                on_plan=on_plan,
                estimate=on_plan is not None,
            )
            rows[csv_name] = read_rows(csv_path)
            x = "sigma_te" if name == "sigma-te" else "sigma_syn"
            plot_sweep(rows[csv_name], out / f"{csv_name}.png", x=x, title=_TITLES[csv_name])
            written += [csv_path, out / f"{csv_name}.png"]
        if name == "table2":
            from .claims import Results

            images = (_images(rows["table2"]), _images(rows["table2-read"]))
            markdown = _table2_markdown(Results(rows["table2"] + rows["table2-read"]), chips, full, images)
        elif name == "fig3":
            markdown = _fig3_markdown(rows["fig3"], chips)
        elif name == "fig4":
            markdown = _fig4_markdown(rows["fig4"], chips)
        else:
            markdown = _sigma_te_markdown(rows["sigma-te"], chips)
        _write(out / f"{name}.md", markdown)
        written.append(out / f"{name}.md")
    return written


_TITLES = {
    "table2": "Table II, sigma_syn static",
    "table2-read": "Table II, sigma_syn per read (clipped at 0)",
    "fig3": "Fig. 3",
    "fig4": "Fig. 4",
    "sigma-te": "Accuracy against sigma_te",
}
