"""A real ``xbar sweep`` stopped by SIGTERM, SIGINT or SIGKILL: no worker survives it, no row is cut or doubled."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xbar.results import read_rows

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

CHIPS = 150


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc), zombies left out: they have ended."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended while we looked
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def _alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _start(tmp_path, shipped_weights, *extra):
    spec = tmp_path / "spec.toml"
    spec.write_text(f'weights = ["{shipped_weights / "mlp-mnist.h5"}"]\nhardware = "paper"\nseeds = {CHIPS}\n'
                    "limit = 3000\n[grid]\nsigma_syn = [0.0, 0.05]\n")
    out = tmp_path / "r.csv"
    command = [sys.executable, "-m", "xbar.cli", "sweep", str(spec), "-o", str(out), "--workers", "2", "-q", *extra]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    # Wait for the workers and a few rows: the signal must land in the middle of the sweep.
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and process.poll() is None:
        workers = _children(process.pid)
        if len(workers) >= 2 and out.exists() and out.read_text().count("\n") > 3:
            break
        time.sleep(0.05)
    assert process.poll() is None and len(workers) >= 2, "the sweep must be running, with its workers"
    return process, command, out, workers


def _check_rows(out):
    text = out.read_text()
    assert text.endswith("\n")  # no line cut short
    rows = read_rows(out)  # every line complete and valid
    keys = [(r["sigma_syn"], r["chip"]) for r in rows]
    assert len(keys) == len(set(keys))
    return len(rows)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_ends_the_workers_and_the_sweep_within_5_seconds(sig, code, tmp_path, shipped_weights):
    process, command, out, workers = _start(tmp_path, shipped_weights)
    every = _children(process.pid)  # the workers, and multiprocessing's resource tracker
    sent = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(process.pid, sig)  # as Ctrl-C on a terminal does: to the whole group
    else:
        process.send_signal(sig)
    assert process.wait(timeout=5) == code
    while _alive(every) and time.monotonic() < sent + 5:
        time.sleep(0.05)
    assert _alive(every) == [], "processes left behind"
    stderr = process.stderr.read()
    assert stderr.splitlines() == [line for line in stderr.splitlines() if line.startswith("xbar: interrupted by ")]
    assert len(stderr.splitlines()) == 1 and "--resume continues it" in stderr
    written = _check_rows(out)
    assert 3 <= written < 2 * CHIPS
    if sig == signal.SIGTERM:
        # The resumed sweep runs exactly the rest.
        resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert f"{2 * CHIPS - written} task(s) run" in resumed.stdout
        assert _check_rows(out) == 2 * CHIPS


def test_sigkill_of_the_parent_ends_its_workers(tmp_path, shipped_weights):
    process, command, out, workers = _start(tmp_path, shipped_weights)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=5)
    deadline = time.monotonic() + 5
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(workers) == [], "workers outlived their parent"
    _check_rows(out)


def test_a_stop_signal_ends_a_dask_local_cluster_too(tmp_path, shipped_weights):
    pytest.importorskip("distributed")
    process, command, out, workers = _start(tmp_path, shipped_weights, "--scheduler", "local:2")
    every = _children(process.pid)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 143
    while _alive(every) and time.monotonic() < sent + 5:
        time.sleep(0.05)
    assert _alive(every) == [], "processes left behind"
    assert "xbar: interrupted by SIGTERM: " in process.stderr.read()
    _check_rows(out)


def test_a_worker_whose_parent_is_gone_ends_itself():
    """The fallback to PR_SET_PDEATHSIG: a thread in each worker polls its parent's pid every 0.5 s."""
    import multiprocessing

    from xbar.sweep import _watch_parent

    process = multiprocessing.get_context("spawn").Process(target=_watch_parent, args=(-1,))  # never its parent
    process.start()
    process.join(timeout=10)
    assert process.exitcode == 1
