"""Results files record what made them: a resume with another spec, hardware, weights or xbar is refused."""

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import xbar
from xbar import reproduce
from xbar.cli import main
from xbar.errors import XbarError
from xbar.results import ResultsFile, provenance_path, read_provenance
from xbar.sweep import load_spec, provenance, run_sweep

ROOT = Path(__file__).resolve().parent.parent


def _write_spec(folder, weights, hardware="reram", grid="sigma_syn = [0.0, 0.1]", extra=""):
    path = folder / "spec.toml"
    path.write_text(f'weights = {json.dumps(weights)}\nhardware = "{hardware}"\nseeds = 2\nlimit = 40\n{extra}\n'
                    f"[grid]\n{grid}\n")
    return path


def _sweep(spec, out, *args):
    return CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--workers", "1", "--quiet", *args])


@pytest.fixture
def done(tmp_path, shipped_weights):
    """A finished sweep of two tasks x 2 chips on ReRAM, and its spec."""
    weights = tmp_path / "w"
    weights.mkdir()
    shutil.copy(shipped_weights / "mlp-mnist.h5", weights / "mlp.h5")
    spec = _write_spec(tmp_path, ["w/mlp.h5"])
    out = tmp_path / "r.csv"
    result = _sweep(spec, out)
    assert result.exit_code == 0, result.output
    return spec, out


def test_the_provenance_records_spec_hardware_weights_and_version(done, tmp_path, shipped_weights):
    spec, out = done
    recorded = read_provenance(out)
    assert provenance_path(out) == tmp_path / "r.csv.meta.json"
    assert recorded["xbar"] == xbar.__version__
    assert recorded["spec"]["weights"] == ["w/mlp.h5"]  # as the spec gives it, not resolved
    assert recorded["spec"]["grid"] == {"sigma_syn": [0.0, 0.1]}
    assert recorded["hardware"]["device"]["prog_model"] == "reram-program"
    assert recorded["weights"] == {"w/mlp.h5": hashlib.sha256((tmp_path / "w/mlp.h5").read_bytes()).hexdigest()}
    # The rows name the weights as the spec does too (relative to the spec's folder here).
    with open(out, newline="") as fh:
        assert {row["weights"] for row in csv.DictReader(fh)} == {"w/mlp.h5"}


def test_resume_from_another_folder_finds_the_same_tasks(done, tmp_path, monkeypatch):
    spec, out = done
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = _sweep(spec, out, "--resume")
    assert result.exit_code == 0, result.output
    assert "0 task(s) run" in result.stdout


@pytest.mark.parametrize("change, message", [
    (dict(hardware="sonos"), "hardware differs: device.g_min_us 50.0 -> 1.6e-06, device.g_max_us 225.0 -> 16.0, "
                             "device.prog_model \"reram-program\" -> \"sonos-program\""),
    (dict(grid="sigma_syn = [0.0, 0.2]"), "spec grid differs: sigma_syn [0.0, 0.1] -> [0.0, 0.2]"),
    (dict(extra="seed = 5"), "spec seed differs: 0 -> 5"),
    (dict(extra='[set]\n"adc.bits" = 6'), "spec set differs: adc.bits null -> 6"),
])
def test_resume_with_a_changed_spec_is_refused_naming_the_difference(done, tmp_path, change, message):
    spec, out = done
    before = out.read_bytes()
    _write_spec(tmp_path, ["w/mlp.h5"], **change)
    result = _sweep(spec, out, "--resume")
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "was written by another sweep" in result.stderr and message in result.stderr, result.stderr
    assert out.read_bytes() == before


def test_resume_with_changed_weights_content_or_version_is_refused(done, tmp_path, shipped_weights, monkeypatch):
    spec, out = done
    shutil.copy(shipped_weights / "mlp-mnist-reg.h5", tmp_path / "w" / "mlp.h5")
    result = _sweep(spec, out, "--resume")
    assert result.exit_code == 2 and "weights w/mlp.h5 content differs (sha256 " in result.stderr, result.stderr
    shutil.copy(shipped_weights / "mlp-mnist.h5", tmp_path / "w" / "mlp.h5")
    recorded = xbar.__version__
    monkeypatch.setattr(xbar, "__version__", "9.9.9")
    result = _sweep(spec, out, "--resume")
    assert result.exit_code == 2 and f"xbar version differs: {recorded} -> 9.9.9" in result.stderr, result.stderr


def test_name_and_batch_size_may_change_on_resume(done, tmp_path):
    spec, out = done
    _write_spec(tmp_path, ["w/mlp.h5"], extra='name = "renamed"\nbatch_size = 7')
    result = _sweep(spec, out, "--resume")
    assert result.exit_code == 0, result.output


def test_a_file_without_provenance_is_not_resumed(done):
    spec, out = done
    provenance_path(out).unlink()
    result = _sweep(spec, out, "--resume")
    assert result.exit_code == 2 and "no r.csv.meta.json beside it" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_damaged_provenance_file_is_one_line(done):
    spec, out = done
    provenance_path(out).write_text("{not json")
    result = _sweep(spec, out, "--resume")
    assert result.exit_code == 2 and "r.csv.meta.json, line 1: not valid JSON" in result.stderr
    provenance_path(out).write_text("[1, 2]")
    result = _sweep(spec, out, "--resume")
    assert result.exit_code == 2 and "not an xbar results provenance file" in result.stderr


def test_a_new_file_replaces_a_stale_provenance(tmp_path, shipped_weights):
    """A provenance left without its CSV (deleted, or killed before the header) is rewritten."""
    spec = load_spec(_write_spec(tmp_path, [str(shipped_weights / "mlp-mnist.h5")], hardware="sonos"))
    out = tmp_path / "r.csv"
    provenance_path(out).write_text('{"format": "xbar-results-provenance 1", "xbar": "0"}')
    with ResultsFile(out, spec.columns, resume=True, provenance=provenance(spec)):
        pass
    assert read_provenance(out)["hardware"]["name"] == "sonos"


def test_reproduce_names_weights_relative_to_the_project(tmp_path):
    for target in ("table2", "fig4"):
        for spec in reproduce.sweeps_for(target, 1, full=True).values():
            assert all(label.startswith("data/weights/") for label in spec.weight_labels)
            assert all(os.path.isabs(path) and path.endswith(label.split("/")[-1])
                       for label, path in zip(spec.weight_labels, spec.weights))


@pytest.mark.parametrize(
    "target, name",
    [("table2", "table2"), ("table2", "table2-read"), ("fig3", "fig3"), ("fig4", "fig4"), ("sigma-te", "sigma-te")],
)
def test_the_committed_reproduction_resumes_with_nothing_to_run(target, name, tmp_path):
    """docs/reproduction/*.csv name weights as the repository does, and their provenance matches the shipped
    weights, this xbar and the full scope's spec: ``xbar reproduce all --full -o docs/reproduction --resume``
    has nothing to run. (The hardware is not compared here, so that a new hardware field fails where it is
    added, not here; ``--resume`` itself would refuse then, naming it.)"""
    csv_path = ROOT / "docs" / "reproduction" / f"{name}.csv"
    assert str(ROOT) not in csv_path.read_text()
    spec = reproduce.sweeps_for(target, reproduce.CHIPS[True], full=True)[name]
    current = provenance(spec)
    recorded = read_provenance(csv_path)
    assert recorded is not None
    current["hardware"] = recorded["hardware"]
    shutil.copy(csv_path, tmp_path / csv_path.name)
    shutil.copy(provenance_path(csv_path), provenance_path(tmp_path / csv_path.name))
    with ResultsFile(tmp_path / csv_path.name, spec.columns, resume=True, provenance=current) as results:
        assert results.done == {task.key for task in spec.tasks()}


def test_library_use_without_provenance_still_refuses_a_missing_one_only_with_it(tmp_path, shipped_weights):
    """``ResultsFile`` without a provenance (library use) neither writes nor checks one; run_sweep always does."""
    spec = load_spec(_write_spec(tmp_path, [str(shipped_weights / "mlp-mnist.h5")]))
    out = tmp_path / "r.csv"
    with ResultsFile(out, spec.columns, resume=False):
        pass
    assert not provenance_path(out).exists()
    with pytest.raises(XbarError, match="no r.csv.meta.json beside it"):
        run_sweep(spec, out, resume=True, workers=1)


def test_a_changed_grid_key_is_named_too(done, tmp_path):
    spec, out = done
    _write_spec(tmp_path, ["w/mlp.h5"], grid="sigma_te = [0.0, 0.1]")
    result = _sweep(spec, out, "--resume")
    assert result.exit_code == 2
    assert "spec grid differs: sigma_syn [0.0, 0.1] -> null, sigma_te null -> [0.0, 0.1]" in result.stderr
