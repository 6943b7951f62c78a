"""Sweeps: spec validation, identical rows locally and on Dask, and kill-and-resume."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from xbar.cli import main
from xbar.sweep import load_spec, run_sweep


def _spec(tmp_path, shipped_weights, body=None, name="spec.toml"):
    path = tmp_path / name
    path.write_text(body if body is not None else f"""
weights = ["{shipped_weights / 'mlp-mnist.h5'}", "{shipped_weights / 'rnn-mnist-t7.h5'}"]
hardware = "paper"
seeds = 2
limit = 200
[set]
"adc.bits" = 8
[grid]
sigma_syn = [0.0, 0.1]
sigma_te = [0.0, 0.05]
""")
    return path


def _rows(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row.pop("seconds")
    return sorted(rows, key=lambda r: (r["weights"], r["sigma_syn"], r.get("sigma_te", ""), int(r["chip"])))


def test_local_and_dask_sweeps_give_identical_rows(tmp_path, shipped_weights):
    distributed = pytest.importorskip("distributed")
    spec = load_spec(_spec(tmp_path, shipped_weights))
    assert run_sweep(spec, tmp_path / "local.csv", workers=2) == 16
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert run_sweep(spec, tmp_path / "dask.csv", scheduler=cluster.scheduler_address) == 16
    local, remote = _rows(tmp_path / "local.csv"), _rows(tmp_path / "dask.csv")
    assert len(local) == 16 and local == remote
    noisy = [float(r["accuracy"]) for r in local if r["sigma_syn"] == "0.1"]
    clean = [float(r["accuracy"]) for r in local if r["sigma_syn"] == "0.0"]
    assert sum(noisy) < sum(clean)


def test_sweep_row_matches_xbar_run(tmp_path, shipped_weights):
    import json

    spec = load_spec(_spec(tmp_path, shipped_weights))
    run_sweep(spec, tmp_path / "r.csv", workers=1)
    row = next(r for r in _rows(tmp_path / "r.csv")
               if r["weights"].endswith("mlp-mnist.h5") and r["sigma_syn"] == "0.1" and r["sigma_te"] == "0.05")
    result = CliRunner().invoke(main, ["run", str(shipped_weights / "mlp-mnist.h5"), "--hardware", "paper",
                                       "--set", "adc.bits=8", "--sigma-syn", "0.1", "--sigma-te", "0.05",
                                       "--limit", "200", "--seeds", "2", "--json"])
    report = json.loads(result.stdout)
    assert float(row["accuracy"]) == report["accuracies"][int(row["chip"])]


def test_sigkill_then_resume_runs_each_task_exactly_once(tmp_path, shipped_weights):
    spec_path = _spec(tmp_path, shipped_weights, f"""
weights = ["{shipped_weights / 'mlp-mnist.h5'}"]
hardware = "paper"
seeds = 30
limit = 500
[grid]
sigma_syn = [0.0, 0.05]
""")
    out = tmp_path / "killed.csv"
    command = [sys.executable, "-m", "xbar.cli", "sweep", str(spec_path), "-o", str(out), "--workers", "2"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if out.exists() and out.read_text().count("\n") > 6:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = out.read_text().count("\n") - 1
    assert 5 <= written < 60, "the kill must land in the middle of the sweep"
    # A kill can also land inside a write: simulate the worst case, a half-written last line.
    with open(out, "a") as fh:
        fh.write(str(shipped_weights / "mlp-mnist.h5") + ",mlp,mni")
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    rows = _rows(out)
    keys = [(r["sigma_syn"], r["chip"]) for r in rows]
    assert len(keys) == 60 and len(set(keys)) == 60


@pytest.mark.parametrize("body, message", [
    ('weights = ["{w}"]\nhardware = "paper"\ncolour = "red"\n', "unknown key"),
    ('weights = ["{w}"]\n[grid]\nsigma_syn = []\n', "non-empty list"),
    ('weights = ["missing.h5"]\n', "no such file"),
    ('weights = ["{w}"]\nhardware = "nope"\n', "unknown hardware preset"),
    ('weights = ["{w}"]\n[grid]\n"adc.bitz" = [1]\n', "unknown hardware key"),
    ('weights = ["{w}"]\n[grid]\nsigma_syn = [-0.1]\n', "must be a number >= 0"),
    ('weights = "{w}"\nseeds = 0\n', "'seeds' must be"),
])
def test_malformed_spec_is_one_line_exit_2_before_any_task(body, message, tmp_path, shipped_weights):
    spec = _spec(tmp_path, shipped_weights, body.replace("{w}", str(shipped_weights / "mlp-mnist.h5")))
    out = tmp_path / "never.csv"
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not out.exists()


def test_existing_results_need_resume(tmp_path, shipped_weights):
    out = tmp_path / "r.csv"
    out.write_text("something\n")
    result = CliRunner().invoke(main, ["sweep", str(_spec(tmp_path, shipped_weights)), "-o", str(out)])
    assert result.exit_code == 2 and "--resume" in result.stderr


def test_a_task_computes_with_one_thread(tmp_path, shipped_weights, monkeypatch):
    """Sweep tasks run side by side: inside one, Numba and BLAS use one thread, and both are restored."""
    import numba
    from threadpoolctl import threadpool_info

    from xbar import simulate
    from xbar.sweep import run_task

    seen = {}
    real_run_chip = simulate.run_chip

    def spy(*args, **kwargs):
        seen["numba"] = numba.get_num_threads()
        seen["blas"] = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
        return real_run_chip(*args, **kwargs)

    monkeypatch.setattr(simulate, "run_chip", spy)
    blas_before = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
    numba_before = numba.get_num_threads()
    task = next(load_spec(_spec(tmp_path, shipped_weights)).tasks())
    run_task(task)
    assert seen == {"numba": 1, "blas": {1}}
    assert numba.get_num_threads() == numba_before
    assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == blas_before
