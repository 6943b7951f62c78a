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
from xbar.errors import XbarError
from xbar.results import ResultsFile, read_rows, summarize_rows, task_key
from xbar.sweep import Spec, load_spec, run_sweep


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
limit = 3000
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

    import xbar.evaluate
    from xbar.sweep import run_task

    seen = {}
    real_run_chip = xbar.evaluate.run_chip

    def spy(*args, **kwargs):
        seen["numba"] = numba.get_num_threads()
        seen["blas"] = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
        return real_run_chip(*args, **kwargs)

    monkeypatch.setattr(xbar.evaluate, "run_chip", spy)
    blas_before = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
    numba_before = numba.get_num_threads()
    task = next(load_spec(_spec(tmp_path, shipped_weights)).tasks())
    run_task(task)
    assert seen == {"numba": 1, "blas": {1}}
    assert numba.get_num_threads() == numba_before
    assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == blas_before


# The results table (xbar.results): the bytes it writes, and reading it back by column name.

def _schema_spec():
    return Spec(weights=("a.h5", "b.h5"), hardware="paper", overrides=(),
                grid=(("sigma_syn", (0.0, 0.05)), ("adc.bits", (6,)), ("syn_mode", ("read",))),
                seeds=2, seed=0, limit=None, dataset=None)


def _row(task, accuracy):
    return {"weights": task.weights, "arch": "mlp", "dataset": "mnist", **dict(task.params), "chip": task.chip,
            "seed": 1000 + task.chip, "accuracy": accuracy, "n_images": 200, "energy_per_inference_j": 4.25e-09,
            "seconds": 0.125}


def test_results_file_writes_the_same_bytes_and_resumes_a_file_written_before(tmp_path):
    spec = _schema_spec()
    tasks = list(spec.tasks())
    out = tmp_path / "r.csv"
    with ResultsFile(out, spec.columns, resume=False) as results:
        for task in tasks[:3]:
            results.write(_row(task, 0.9))
    assert out.read_text() == (
        "weights,arch,dataset,sigma_syn,adc.bits,syn_mode,chip,seed,accuracy,n_images,energy_per_inference_j,seconds\n"
        "a.h5,mlp,mnist,0.0,6,read,0,1000,0.9,200,4.25e-09,0.125\n"
        "a.h5,mlp,mnist,0.0,6,read,1,1001,0.9,200,4.25e-09,0.125\n"
        "a.h5,mlp,mnist,0.05,6,read,0,1000,0.9,200,4.25e-09,0.125\n")
    with open(out, "a") as fh:
        fh.write("a.h5,mlp,mnist,0.05,6,re")  # a line cut short by a kill
    with ResultsFile(out, spec.columns, resume=True) as resumed:
        assert resumed.done == {task.key for task in tasks[:3]}
    assert out.read_text().endswith("0.125\n")
    with pytest.raises(XbarError, match="are not this spec's"):
        ResultsFile(out, Spec(("a.h5",), "paper", (), (("sigma_te", (0.0,)),), 1, 0, None, None).columns, True)


def test_rows_are_read_by_column_name_not_position(tmp_path):
    spec = _schema_spec()
    tasks = list(spec.tasks())
    out = tmp_path / "r.csv"
    with ResultsFile(out, spec.columns, resume=False) as results:
        for k, task in enumerate(tasks):
            results.write(_row(task, 0.5 + k / 64))
    rows = read_rows(out)
    # The same table with its columns in another order.
    shuffled = [*reversed(spec.columns)]
    moved = tmp_path / "moved.csv"
    with open(moved, "w", newline="") as fh:
        writer = csv.DictWriter(fh, shuffled, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    moved_rows = read_rows(moved)
    assert list(moved_rows[0]) == shuffled
    params = [name for name, _ in spec.grid]
    assert [task_key(r, params) for r in rows] == [task_key(r, params) for r in moved_rows] \
        == [task.key for task in tasks]
    summary = summarize_rows(rows)
    assert summarize_rows(moved_rows) == summary
    assert len(summary) == 4 and all(s["n"] == 2 for s in summary)
    first = next(s for s in summary if s["weights"] == "b.h5" and s["sigma_syn"] == "0.05")
    assert first["mean"] == pytest.approx((0.5 + 6 / 64 + 0.5 + 7 / 64) / 2)
    assert (first["adc.bits"], first["syn_mode"], first["arch"]) == ("6", "read", "mlp")


def test_workers_started_with_a_fixed_malloc_threshold_get_dynamic_ones_back():
    """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which halved sweep throughput."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    probe = "from xbar.sweep import _tune_malloc; print(_tune_malloc())"
    tuned = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                           env={**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"})
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                           env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")})
    assert (tuned.stdout.strip(), plain.stdout.strip()) == ("True", "False")


def test_tasks_go_out_in_chunks_sized_by_their_run_time(tmp_path, shipped_weights):
    from xbar.sweep import CHUNK_S, MAX_CHUNK, _Run, _StopSignals

    spec = load_spec(_spec(tmp_path, shipped_weights))
    with ResultsFile(tmp_path / "r.csv", spec.columns, resume=False) as results:
        run = _Run(spec, results, _StopSignals(), None, None, False, tmp_path / "r.csv")
        first = run.next_chunks(3)
        assert [len(c) for c in first] == [1, 1, 1]  # nothing known yet
        run.task_seconds[first[0][0].weights] = CHUNK_S / 2.5
        assert [len(c) for c in run.next_chunks(1)] == [2]
        run.task_seconds[first[0][0].weights] = 1e-6
        chunks = run.next_chunks(10)
        # A chunk holds one weights file's tasks (the last 3 of the mlp's 8 here), at most MAX_CHUNK; the
        # rnn's go one by one until one is back.
        assert MAX_CHUNK > 3 and [len(c) for c in chunks] == [3] + [1] * 8
        assert all(len({t.weights for t in c}) == 1 for c in chunks)
        assert run.next_chunks(1) == []
