"""Bad input to sweeps is one line and exit 2, before any work: damaged results, bad specs, bad outputs,
sweeps too large, a second writer of one results file."""

import os
import shutil
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from xbar.cli import main
from xbar.errors import XbarError
from xbar.results import ResultsFile, provenance_path, read_rows, summarize_rows
from xbar.sweep import MAX_TASKS, load_spec, provenance, run_sweep


def _spec(tmp_path, shipped_weights, extra="", grid="sigma_syn = [0.0, 0.1]", seeds=2, limit=40):
    path = tmp_path / "spec.toml"
    path.write_text(f'weights = ["{shipped_weights / "mlp-mnist.h5"}"]\nhardware = "paper"\nseeds = {seeds}\n'
                    f"limit = {limit}\n{extra}\n[grid]\n{grid}\n")
    return path


def _one_line_exit_2(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xbar: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory, shipped_weights):
    folder = tmp_path_factory.mktemp("finished")
    spec = _spec(folder, shipped_weights)
    out = folder / "r.csv"
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    return spec, out


@pytest.fixture
def finished(finished_once, tmp_path):
    """A finished results file (4 rows, with its provenance) of its own, and its spec."""
    spec, out = finished_once
    shutil.copy(out, tmp_path / out.name)
    shutil.copy(provenance_path(out), provenance_path(tmp_path / out.name))
    return spec, tmp_path / out.name


def _damage(out, how):
    lines = out.read_bytes().splitlines(keepends=True)
    if how == "blank line":
        lines.insert(2, b"\n")
    elif how == "garbage line":
        lines.insert(2, b"hello there\n")
    elif how == "too many fields":
        lines[2] = lines[2].rstrip(b"\n") + b",extra\n"
    elif how == "too few fields":
        lines[2] = b",".join(lines[2].split(b",")[:5]) + b"\n"
    elif how == "binary bytes":
        lines[2] = b"\xff\xfe\x00garbage\x9c\n"
    elif how == "non-numeric accuracy":
        fields = lines[2].split(b",")
        fields[6] = b"high"
        lines[2] = b",".join(fields)
    elif how == "duplicated row":
        lines.append(lines[1])
    elif how == "row of another sweep":
        lines.append(lines[1].replace(b",0.0,", b",0.7,", 1))
    elif how == "bad quoting":
        lines.insert(2, b'a,"b\n')
    out.write_bytes(b"".join(lines))


@pytest.mark.parametrize("how, fragment", [
    ("blank line", "r.csv, line 3: blank line"),
    ("garbage line", "r.csv, line 3: 1 field(s), the header has 10"),
    ("too many fields", "r.csv, line 3: 11 field(s), the header has 10"),
    ("too few fields", "r.csv, line 3: 5 field(s), the header has 10"),
    ("binary bytes", "r.csv, line 3: not UTF-8 text"),
    ("non-numeric accuracy", "r.csv, line 3: accuracy 'high' is not a number"),
    ("duplicated row", "r.csv, line 6: the same task as line 2 (a duplicated row)"),
    ("row of another sweep", "r.csv, line 6: a row of no task of this spec"),
    ("bad quoting", "r.csv, line 3: not valid CSV (unexpected end of data)"),
])
def test_resume_of_a_damaged_file_names_file_and_line(finished, how, fragment):
    spec, out = finished
    _damage(out, how)
    with open(out, "ab") as fh:
        fh.write(b"w.h5,mlp,mni")  # and a line cut short, which a refused resume leaves too
    before = out.read_bytes()
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--resume", "-q"])
    _one_line_exit_2(result, fragment)
    assert out.read_bytes() == before


@pytest.mark.parametrize("how", ["blank line", "garbage line", "binary bytes", "non-numeric accuracy",
                                 "too many fields", "bad quoting"])
def test_plot_of_a_damaged_file_names_file_and_line(finished, how, tmp_path):
    spec, out = finished
    _damage(out, how)
    result = CliRunner().invoke(main, ["plot", str(out), "-o", str(tmp_path / "p.png")])
    _one_line_exit_2(result, "r.csv, line ")
    with pytest.raises(XbarError, match=r"r\.csv, line \d+: "):
        read_rows(out)


def test_a_line_cut_short_is_dropped_on_resume_and_named_by_plot(finished, tmp_path):
    spec, out = finished
    text = out.read_text()
    out.write_text(text + text.splitlines()[1][:25])
    with pytest.raises(XbarError, match="line 6: .*the file ends without a newline"):
        read_rows(out)
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--resume", "-q"])
    assert result.exit_code == 0 and "0 task(s) run" in result.stdout, result.output
    assert out.read_text() == text


def test_header_only_and_empty_files_resume(tmp_path, shipped_weights):
    spec = _spec(tmp_path, shipped_weights)
    out = tmp_path / "r.csv"
    loaded = load_spec(spec)
    with ResultsFile(out, loaded.columns, resume=False, provenance=provenance(loaded)):
        pass  # killed right after the header
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--resume", "-q"])
    assert result.exit_code == 0 and "4 task(s) run" in result.stdout, result.output
    out.write_text("")
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--resume", "-q"])
    assert result.exit_code == 0 and "4 task(s) run" in result.stdout, result.output
    assert len(read_rows(out)) == 4


def test_read_rows_refuses_what_is_not_a_results_file(tmp_path):
    bad = tmp_path / "bad.csv"
    for text, fragment in [("", "no 'weights'"), ("a,b\n1,2\n", "not an xbar results file"),
                           ("weights,arch,dataset,chip,seed,accuracy,n_images,energy_per_inference_j,seconds\n",
                            "(no rows)")]:
        bad.write_text(text)
        with pytest.raises(XbarError, match="bad.csv: not an xbar results file") as info:
            read_rows(bad)
        assert fragment in str(info.value)
    with pytest.raises(XbarError, match="no such file"):
        read_rows(tmp_path / "missing.csv")
    with pytest.raises(XbarError, match="accuracy 'x' is not a number"):
        summarize_rows([{"weights": "w", "arch": "mlp", "dataset": "mnist", "accuracy": "x"}])
    assert summarize_rows([]) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_at_once(tmp_path, shipped_weights):
    fifo = tmp_path / "r.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["sweep", str(_spec(tmp_path, shipped_weights)), "-o", str(fifo), "--resume"])
    _one_line_exit_2(result, "not a regular file")
    result = CliRunner().invoke(main, ["plot", str(fifo), "-o", str(tmp_path / "p.png")])
    _one_line_exit_2(result, "not a regular file")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("extra, grid, fragment", [
    ('dataset = ["mnist"]', "sigma_syn = [0.0]", "'dataset' must be a dataset name, got ['mnist']"),
    ('dataset = "cifar"', "sigma_syn = [0.0]", "unknown dataset 'cifar'"),
    ("name = 3", "sigma_syn = [0.0]", "'name' must be a string"),
    ("batch_size = true", "sigma_syn = [0.0]", "'batch_size' must be a positive integer"),
    ("seed = -1", "sigma_syn = [0.0]", "'seed' must be an integer in [0, "),
    ("seed = 1.5", "sigma_syn = [0.0]", "'seed' must be an integer"),
    ("set = 3", "sigma_syn = [0.0]", "'set' must be a table of hardware keys"),
    ('[set]\n"adc.bits" = [6, 8]', "sigma_syn = [0.0]", "[set] 'adc.bits' must be a string, number or boolean"),
    ("", "sigma_syn = [0.0, 0.0]", "grid 'sigma_syn' lists 0.0 more than once"),
    ("", "sigma_syn = [[0.1]]", "grid 'sigma_syn' values must be strings, numbers or booleans"),
    ("", "sigma_syn = [nan]", "sigma_syn must be a number >= 0 (and finite)"),
    ("", "sigma_syn = 0.1", "grid 'sigma_syn' must be a non-empty list"),
    ("", '"adc.bits" = [6.5]', "adc.bits: expected an integer"),
])
def test_a_spec_key_of_the_wrong_type_is_one_line(extra, grid, fragment, tmp_path, shipped_weights):
    out = tmp_path / "never.csv"
    spec = _spec(tmp_path, shipped_weights, extra=extra, grid=grid)
    _one_line_exit_2(CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out)]), fragment)
    assert not out.exists()


def test_weights_listed_twice_are_refused(tmp_path, shipped_weights):
    w = shipped_weights / "mlp-mnist.h5"
    spec = tmp_path / "spec.toml"
    spec.write_text(f'weights = ["{w}", "{w}"]\n')
    _one_line_exit_2(CliRunner().invoke(main, ["sweep", str(spec), "-o", str(tmp_path / "r.csv")]),
                     "more than once")


@pytest.mark.parametrize("where, fragment", [
    ("/proc/xbar-results.csv", "/proc/xbar-results.csv: cannot write"),
    ("file/r.csv", "file/r.csv: "),
    ("folder", "folder"),
])
def test_an_output_that_cannot_be_written_is_one_line_before_any_work(where, fragment, tmp_path, shipped_weights):
    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "folder").mkdir()
    out = where if where.startswith("/") else str(tmp_path / where)
    result = CliRunner().invoke(main, ["sweep", str(_spec(tmp_path, shipped_weights)), "-o", out])
    _one_line_exit_2(result, fragment)
    assert not (tmp_path / "folder" / ".meta.json").exists()


def test_reproduce_into_a_file_is_one_line(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    _one_line_exit_2(CliRunner().invoke(main, ["reproduce", "table3", "-o", str(target)]), "a-file")


def test_a_sweep_over_the_task_limit_is_refused_with_its_count(tmp_path, shipped_weights):
    sigmas = ", ".join(str(k / 1000) for k in range(1000))
    grid = f'"adc.bits" = [1, 2, 3, 4, 5, 6, 7, 8]\nsigma_syn = [{sigmas}]'
    spec = _spec(tmp_path, shipped_weights, grid=grid, seeds=200)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(tmp_path / "r.csv")])
    _one_line_exit_2(result, "1,600,000 tasks (1 weights x 8,000 grid points x 200 chips), more than the limit of "
                     f"{MAX_TASKS:,} (--max-tasks raises it)")
    assert time.monotonic() - started < 10  # refused before checking 8,000 grid points, or anything else
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(tmp_path / "r.csv"), "--max-tasks", "1000"])
    _one_line_exit_2(result, "more than the limit of 1,000")
    assert "1,000,000" in CliRunner().invoke(main, ["sweep", "--help"]).stdout


def test_the_task_count_and_estimate_go_to_stderr_unless_quiet(tmp_path, shipped_weights):
    spec = _spec(tmp_path, shipped_weights)
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(tmp_path / "a.csv"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "spec: 4 tasks (1 weights x 2 grid points x 2 chips), 0 already done, 4 to run on 1 local worker" \
        in result.stderr
    assert "; estimate: about " in result.stderr and "from timing 2 task(s)" in result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'a.csv'}: 4 task(s) run in ")
    quiet = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(tmp_path / "b.csv"), "--workers", "1", "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == "" and "4 task(s) run" in quiet.stdout
    resumed = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(tmp_path / "a.csv"), "--resume"])
    assert "4 already done, 0 to run" in resumed.stderr and "estimate" not in resumed.stderr


def test_progress_lines_in_a_log(tmp_path, shipped_weights, monkeypatch):
    """Not a terminal: progress is a line at most every LOG_INTERVAL_S, and the last one at the end."""
    from xbar.progress import Progress
    monkeypatch.setitem(Progress.__init__.__kwdefaults__, "interval_s", 0.0)
    spec = _spec(tmp_path, shipped_weights)
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(tmp_path / "a.csv"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "xbar: sweep spec: 4/4 (100%)" in result.stderr


def test_a_second_writer_is_refused_at_once(tmp_path, shipped_weights):
    spec = _spec(tmp_path, shipped_weights)
    loaded = load_spec(spec)
    out = tmp_path / "r.csv"
    with ResultsFile(out, loaded.columns, resume=False, provenance=provenance(loaded)):
        result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--resume"])
        _one_line_exit_2(result, "another xbar sweep is writing this results file (it is locked)")
        with pytest.raises(XbarError, match="locked"):
            run_sweep(loaded, out, overwrite=True, workers=1)
    assert out.read_text().count("\n") == 1  # the header: nothing written by the refused ones
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--resume", "-q"])
    assert result.exit_code == 0, result.output  # the lock went with the first writer


def test_two_sweeps_started_together_write_each_row_once(tmp_path, shipped_weights):
    spec = _spec(tmp_path, shipped_weights, seeds=40, limit=1000, grid="sigma_syn = [0.0, 0.05]")
    out = tmp_path / "r.csv"
    command = [sys.executable, "-m", "xbar.cli", "sweep", str(spec), "-o", str(out), "--workers", "1", "-q"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.02)
    second = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=60)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"xbar: error: {out}: another xbar sweep is writing this results file (it is locked); "
        "wait for it to finish, or write to another file"]
    rows = read_rows(out)
    keys = [(r["sigma_syn"], r["chip"]) for r in rows]
    assert len(keys) == 80 and len(set(keys)) == 80
    assert provenance_path(out).exists()


def test_a_bad_local_scheduler_is_one_line(tmp_path, shipped_weights):
    pytest.importorskip("distributed")
    spec = _spec(tmp_path, shipped_weights)
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(tmp_path / "r.csv"), "--scheduler", "local:x"])
    _one_line_exit_2(result, "--scheduler local:x: expected local or local:N")


def test_reproduce_shows_its_plan_unless_quiet(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from dataclasses import replace

    from xbar import reproduce

    original = reproduce.sweeps_for

    def small(target, chips, full=False):
        return {name: replace(spec, limit=20) for name, spec in original(target, chips, full).items()}

    monkeypatch.setattr(reproduce, "sweeps_for", small)
    monkeypatch.setattr(reproduce, "PAPER_ARCHS", ("mlp",))  # 2 datasets x 3 training seeds: 6 weights
    command = ["reproduce", "table2", "--seeds", "1", "--workers", "1", "-o"]
    loud = CliRunner().invoke(main, [*command, str(tmp_path / "a")])
    assert loud.exit_code == 0, loud.output
    assert "xbar: table2: 24 tasks (6 weights x 4 grid points x 1 chips), 0 already done" in loud.stderr
    quiet = CliRunner().invoke(main, [*command, str(tmp_path / "b"), "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.output
    assert "table2.md" in quiet.stdout
    labels = {row["weights"] for row in read_rows(tmp_path / "b" / "table2.csv")}
    assert labels == set(small("table2", 1)["table2"].labels)
