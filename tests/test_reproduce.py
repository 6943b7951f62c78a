"""`xbar plot` and `xbar reproduce` (figures need the plot extra)."""

import pytest
from click.testing import CliRunner

from xbar import reproduce
from xbar.cli import main
from xbar.plot import summarize_rows
from xbar.sweep import Spec, run_sweep

pytest.importorskip("matplotlib")


def test_plot_command_draws_a_png(tmp_path, shipped_weights):
    spec = Spec((str(shipped_weights / "mlp-mnist.h5"),), "paper", (), (("sigma_syn", (0.0, 0.2)),), 3, 0, 100, None)
    run_sweep(spec, tmp_path / "r.csv", workers=1)
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "r.csv"), "-o", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = summarize_rows(__import__("xbar.plot", fromlist=["read_rows"]).read_rows(tmp_path / "r.csv"))
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
    markdown = (tmp_path / "table3.md").read_text()
    assert "CNN SONOS" in markdown and "2084 nJ" in markdown
    assert (tmp_path / "table3.png").stat().st_size > 0 and (tmp_path / "table3.csv").read_text().count("\n") == 7


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
    markdown = (tmp_path / "table2.md").read_text()
    assert "| CNN F-MNIST |" in markdown and "/ 42.35" in markdown


def test_missing_weights_name_the_recipe(monkeypatch, tmp_path):
    monkeypatch.setattr(reproduce, "WEIGHTS_DIR", tmp_path)
    result = CliRunner().invoke(main, ["reproduce", "fig4", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "train_reg.sh" in result.stderr
