"""`xbar plot` and `xbar reproduce` (figures need the plot extra)."""

import csv
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xbar import reproduce
from xbar.cli import main
from xbar.results import read_rows, summarize_rows
from xbar.sweep import Spec, run_sweep

pytest.importorskip("matplotlib")


def test_plot_command_draws_a_png(tmp_path, shipped_weights):
    spec = Spec((str(shipped_weights / "mlp-mnist.h5"),), "paper", (), (("sigma_syn", (0.0, 0.2)),), 3, 0, 100, None)
    run_sweep(spec, tmp_path / "r.csv", workers=1)
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "r.csv"), "-o", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = summarize_rows(read_rows(tmp_path / "r.csv"))
    assert [s["n"] for s in summary] == [3, 3]
    assert all(s["ci_low"] <= s["mean"] <= s["ci_high"] for s in summary)


def test_plot_refuses_a_file_that_is_not_results(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(main, ["plot", str(bad), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "not an xbar results file" in result.stderr


def test_reproduce_table3_writes_csv_png_markdown(tmp_path):
    result = CliRunner().invoke(main, ["reproduce", "table3", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "table3.png").stat().st_size > 0
    with open(tmp_path / "table3.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["system"] for r in rows] == [f"{a} {t}" for t in ("RERAM", "SONOS") for a in ("MLP", "RNN", "CNN")]
    markdown = (tmp_path / "table3.md").read_text()
    for row in rows:
        total, vmm, neurons, paper = (float(row[k]) for k in ("total_j", "vmm_j", "neurons_j", "paper_total_j"))
        assert total > 0 and vmm > 0 and neurons > 0
        assert total == pytest.approx(vmm + neurons, rel=1e-12)
        assert float(row["relative_difference"]) == pytest.approx(total / paper - 1, rel=1e-12, abs=1e-15)
        assert f"| {row['system']} | {total * 1e9:.4g} nJ |" in markdown


def test_reproduce_table2_small(tmp_path, monkeypatch):
    # The real target uses all 10,000 images and 10 chips; the machinery is the same with fewer.
    original = reproduce.spec_for

    def small(target, seeds):
        spec = original(target, seeds)
        return Spec(spec.weights, spec.hardware, spec.overrides, spec.grid, spec.seeds, spec.seed, 60, None)

    monkeypatch.setattr(reproduce, "spec_for", small)
    files = reproduce.reproduce("table2", tmp_path, seeds=2, workers=2)
    assert [f.name for f in files] == ["table2.csv", "table2.png", "table2.md"]
    rows = (tmp_path / "table2.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 6 * 4 * 2
    # Our numbers in the markdown are the CSV's, recomputed here: mean and Student-t 95% CI over the 2 chips.
    accuracies = defaultdict(list)
    with open(tmp_path / "table2.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            point = (Path(row["weights"]).name, float(row["sigma_syn"]), float(row["sigma_te"]))
            accuracies[point].append(float(row["accuracy"]))
    t975_df1 = math.tan(math.pi * 0.475)  # 12.706: with 1 degree of freedom t is Cauchy
    cell = re.compile(r"(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\] / ([\d.]+)$")
    label = {v: k for k, v in reproduce.DATASET_LABEL.items()}
    points = ((0.0, 0.0), (reproduce.SIGMA, 0.0), (0.0, reproduce.SIGMA), (reproduce.SIGMA, reproduce.SIGMA))
    lines = [line for line in (tmp_path / "table2.md").read_text().splitlines() if re.match(r"\| (MLP|RNN|CNN) ", line)]
    assert len(lines) == 6
    for line in lines:
        name, *cells = [c.strip() for c in line.strip("|").split("|")]
        arch, dataset = name.split(" ")[0].lower(), label[name.split(" ")[1]]
        paper = [reproduce.PAPER_NOISE_FREE[(arch, dataset)], *reproduce.PAPER_TABLE2[(arch, dataset)]]
        for text, (syn, te), paper_value in zip(cells, points, paper):
            accs = accuracies[(reproduce.weights_name(arch, dataset, timesteps=7), syn, te)]
            mean, half = np.mean(accs), t975_df1 * np.std(accs, ddof=1) / math.sqrt(len(accs))
            ours = [float(v) for v in cell.match(text).groups()]
            # Printed to 2 decimals; the table's t (12.706) is within 2e-5 (relative) of the exact one.
            expected = [100 * mean, 100 * (mean - half), 100 * (mean + half)]
            assert ours[:3] == pytest.approx(expected, abs=0.006, rel=1e-4)
            assert ours[3] == paper_value


def test_missing_weights_name_the_recipe(monkeypatch, tmp_path):
    monkeypatch.setattr(reproduce, "WEIGHTS_DIR", tmp_path)
    result = CliRunner().invoke(main, ["reproduce", "fig4", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "train_reg.sh" in result.stderr
