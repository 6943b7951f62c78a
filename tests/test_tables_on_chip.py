"""Measured device tables on a chip (device.table), sqrt(G) read noise, per-level drift: statistical tests with
fixed seeds and tolerances derived from the sample sizes, and references that share no code with the kernels."""

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xbar.cli import main
from xbar.config import Device, Hardware, Mapping, ReadNoiseMode, Tile
from xbar.crossbar import AnalogMatrix, InputRange
from xbar.crossbar.devices import PURPOSE_PROGRAM, program_devices
from xbar.crossbar.mapping import target_conductances
from xbar.device_table import load_table
from xbar.errors import ConfigError
from xbar.kernels.rng import derive_key, uniform

from .test_crossbar import _ks_two_sample

ROOT = Path(__file__).resolve().parents[1]
Z = 5.0
"""Standard errors a sample statistic may stray: two-sided p about 6e-7 per check, fixed seeds."""


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _levels_table(tmp_path, rows, extra_columns="", name="levels.csv") -> str:
    header = "target_us,mean_us,prog_sigma_us" + extra_columns
    return _write(tmp_path / name, "# test table\n" + header + "\n" + "\n".join(rows) + "\n")


def _programmed(device: Device, targets: np.ndarray, seed: int = 5) -> np.ndarray:
    return program_devices(targets.astype(np.float32).copy(), device, seed, 0, 0, 0).astype(np.float64)


def test_programmed_levels_have_the_tables_mean_and_sigma(tmp_path):
    """Each level lands at its measured mean (not its target) with its sigma: sample mean within Z standard
    errors, sample variance within Z sqrt(2 / (n - 1)) of sigma^2 (chi-square, large n). Unclipped: clipping
    to [g_min, g_max] (the first and last targets) would cut the outer levels' tails."""
    rows = ["10,10.4,0.5", "30,29.1,1.5", "60,61,0.8", "100,98.5,3.0"]
    device = Device(table=_levels_table(tmp_path, rows), clip=False)
    assert (device.g_min_us, device.g_max_us, device.levels) == (10.0, 100.0, 4)
    table = load_table(device.table)
    targets = np.repeat(table.targets_us, 20000)
    g = _programmed(device, targets)
    for level, (target, mean, sigma) in enumerate(zip(table.targets_us, table.mean_us, table.prog_sigma_us)):
        sample = g[targets == target]
        n = sample.size
        assert abs(sample.mean() - mean) < Z * sigma / math.sqrt(n), (level, sample.mean())
        assert abs(sample.var(ddof=1) / sigma**2 - 1) < Z * math.sqrt(2 / (n - 1)), (level, sample.var(ddof=1))


def test_a_uniform_table_with_constant_sigma_is_the_additive_model(tmp_path):
    """One level per `levels` setting, means at the targets and one sigma: the same draws as the additive
    model on the same key (bit for bit), so the same statistics."""
    levels, g_min, g_max, fraction = 5, 0.0, 100.0, 0.03
    sigma = fraction * (g_max - g_min)
    targets = np.linspace(g_min, g_max, levels)
    rows = [f"{t:g},{t:g},{sigma:g}" for t in targets]
    with_table = Device(table=_levels_table(tmp_path, rows), clip=False)
    additive = Device(g_min_us=g_min, g_max_us=g_max, levels=levels, prog_sigma=fraction, clip=False)
    mapping = Mapping()
    w = np.random.default_rng(0).uniform(-1, 1, (300, 40))
    for row_table, row_additive in zip(target_conductances(w, with_table, mapping),
                                       target_conductances(w, additive, mapping)):
        for side_table, side_additive in zip(row_table, row_additive):
            assert np.array_equal(side_table, side_additive)  # the same level for every weight
            assert np.array_equal(_programmed(with_table, side_table), _programmed(additive, side_additive))


def test_empirical_draws_are_the_documented_inverse_cdf_and_pass_ks(tmp_path):
    """Samples-form table: the kernel's draw for device k is the table's quantile at uniform(key, k) exactly
    (the numpy reference), and the draws of each level pass a two-sample KS test against its raw samples."""
    rng = np.random.default_rng(7)
    raw = {10.0: 10 + rng.gamma(2.0, 0.8, 400),  # skewed up
           50.0: 50 - rng.gamma(1.5, 1.2, 300),  # skewed down
           90.0: 90 + rng.standard_t(3, 500)}  # heavy tails
    lines = [f"{target:g},{value:.6f}" for target, values in raw.items() for value in values]
    rng.shuffle(lines)
    device = Device(table=_write(tmp_path / "samples.csv", "target_us,measured_us\n" + "\n".join(lines) + "\n"),
                    clip=False)
    table = load_table(device.table)
    assert table.kind == "samples" and table.n_levels == 3
    targets = np.repeat(table.targets_us, 5000)
    g = _programmed(device, targets, seed=9)
    key = derive_key(PURPOSE_PROGRAM, 9, 0, 0, 0)
    u = np.array([uniform(key, np.uint64(k)) for k in range(targets.size)])
    for level, target in enumerate(table.targets_us):
        where = targets == target
        reference = table.quantile(level, u[where])
        np.testing.assert_allclose(g[where], reference, rtol=2e-7, atol=0)  # float32 storage of the draw
        measured = np.array([float(v) for v in raw[float(target)]])
        n, m = where.sum(), measured.size
        critical = math.sqrt(-math.log(0.001 / 2) / 2) * math.sqrt((n + m) / (n * m))
        assert _ks_two_sample(g[where], measured) < critical, level
    # Asymmetry is kept: the level drawn from an upward-skewed sample is skewed up, a normal fit would not be.
    low = g[targets == 10.0]
    assert ((low - low.mean()) ** 3).mean() > 0.5 * low.std() ** 3


def _read_noise_z(hw: Hardware, kernel, x, reads: int, sigma_of_g) -> np.ndarray:
    """(read - noise-free read) / the closed-form std of each output, over ``reads`` reads of input ``x``."""
    quiet = replace(hw, device=replace(hw.device, read_sigma=0.0, read_model="additive"))
    matrix = AnalogMatrix(kernel, None, hw, InputRange(1.0, False), 3, 0)
    clean = AnalogMatrix(kernel, None, quiet, InputRange(1.0, False), 3, 0)(x[:1]).astype(np.float64)
    y = matrix(np.repeat(x, reads, axis=0)).astype(np.float64)
    g_plus, g_minus = (side.astype(np.float64) for side in matrix.conductances[0])
    variance_g = sigma_of_g(g_plus) ** 2 + sigma_of_g(g_minus) ** 2
    # y_j = (w_scale / dg) sum_i x_i (G+_ij - G-_ij + noise): Var = (w_scale / dg)^2 sum_i x_i^2 sigma_ij^2.
    dev = hw.device
    scale = matrix.w_scale / (dev.g_max_us - dev.g_min_us)
    std = np.sqrt(x[0].astype(np.float64) ** 2 @ variance_g) * scale
    return (y - clean) / std


@pytest.mark.parametrize("mode", ["device", "column"])
@pytest.mark.parametrize("model", ["sqrt", "table"])
def test_read_noise_has_the_variance_the_model_states(tmp_path, rng, model, mode):
    """sqrt(G): sigma = s sqrt(G (g_max - g_min)); table: s times the table's read_sigma_us interpolated
    linearly in G. The output's variance is their closed form in both read-noise modes."""
    n_in, n_out, reads = 30, 24, 300
    if model == "table":
        rows = ["5,5,0,0.2", "20,20,0,0.6", "45,45,0,1.5", "80,80,0,0.4"]
        table = _levels_table(tmp_path, rows, ",read_sigma_us")
        device = Device(table=table, read_model="table", read_sigma=1.5, read_noise_mode=ReadNoiseMode(mode))
        points = load_table(table)

        def sigma_of_g(g):
            return 1.5 * np.interp(g, points.targets_us, points.read_sigma_us)
    else:
        device = Device(g_min_us=2.0, g_max_us=80.0, read_model="sqrt", read_sigma=0.02,
                        read_noise_mode=ReadNoiseMode(mode))

        def sigma_of_g(g):
            return 0.02 * np.sqrt(g * (80.0 - 2.0))
    hw = Hardware(device=device, tile=Tile(rows=16, cols=256))
    kernel = rng.uniform(-1, 1, (n_in, n_out)).astype(np.float32)
    x = rng.uniform(0.2, 1.0, (1, n_in)).astype(np.float32)
    z = _read_noise_z(hw, kernel, x, reads, sigma_of_g)
    n = z.size
    assert abs(z.mean()) < Z / math.sqrt(n), z.mean()
    assert abs(z.var(ddof=1) - 1) < Z * math.sqrt(2 / (n - 1)), z.var(ddof=1)
    for half in (z[:, : n_out // 2], z[:, n_out // 2 :]):  # each part right, not only the average
        assert abs(half.var(ddof=1) - 1) < Z * math.sqrt(2 / (half.size - 1))


@pytest.mark.parametrize("model", ["sqrt", "table"])
def test_read_noise_device_and_column_modes_agree_in_distribution(tmp_path, rng, model):
    kernel = rng.standard_normal((30, 20)).astype(np.float32)
    x = np.repeat(rng.random((1, 30), dtype=np.float32), 300, axis=0)
    table = _levels_table(tmp_path, ["1,1,0,0.1", "20,20,0,0.9", "50,50,0,0.3"], ",read_sigma_us")
    samples = []
    for mode in ReadNoiseMode:
        if model == "sqrt":
            device = Device(g_min_us=1.0, g_max_us=50.0, read_model="sqrt", read_sigma=0.03, read_noise_mode=mode)
        else:
            device = Device(table=table, read_model="table", read_sigma=1.0, read_noise_mode=mode)
        matrix = AnalogMatrix(kernel, None, Hardware(device=device), InputRange(1.0, False), 11, 0)
        samples.append((matrix(x) - x[:1] @ kernel).ravel())
    a, b = samples
    critical = math.sqrt(-math.log(0.001 / 2) / 2) * math.sqrt((a.size + b.size) / (a.size * b.size))
    assert _ks_two_sample(a, b) < critical
    assert not np.array_equal(a, b)


def test_per_level_drift_is_the_tables_nu(tmp_path):
    """ln(G(t) / G(t0)) = -nu ln(t / t0) with nu ~ N(nu_l, nu_sigma_l) per level: the exact factor without spread,
    and the mean and variance of nu from the log-ratio with it."""
    rows = ["5,5,0,0.10,0.00", "15,15,0,0.06,0.02", "25,25,0,0.03,0.01"]
    table = _levels_table(tmp_path, rows, ",nu,nu_sigma")
    t0, t = 20.0, 86400.0
    at_t0 = Device(table=table, drift_t0_s=t0, read_time_s=t0, clip=False)
    later = replace(at_t0, read_time_s=t)
    assert later.drifts and later.levels == 3
    points = load_table(table)
    targets = np.repeat(points.targets_us, 20000)
    g0, gt = _programmed(at_t0, targets), _programmed(later, targets)
    assert np.array_equal(g0, targets)  # no programming error in this table, and (t0 / t0)^-nu = 1
    nu = -np.log(gt / g0) / math.log(t / t0)
    for level, target in enumerate(points.targets_us):
        sample = nu[targets == target]
        mean, sigma = points.nu[level], points.nu_sigma[level]
        if sigma == 0:
            np.testing.assert_allclose(sample, mean, rtol=1e-5)
            continue
        n = sample.size
        assert abs(sample.mean() - mean) < Z * sigma / math.sqrt(n)
        assert abs(sample.var(ddof=1) / sigma**2 - 1) < Z * math.sqrt(2 / (n - 1))


def test_table_settings_that_conflict_are_one_line(tmp_path):
    plain = _levels_table(tmp_path, ["1,1,0.1", "9,9,0.2"])
    drifting = _levels_table(tmp_path, ["1,1,0.1,0.05", "9,9,0.2,0.05"], ",nu", name="nu.csv")
    cases = [
        (dict(table=plain, prog_sigma=0.1), "device.prog_sigma must be 0 with device.table"),
        (dict(table=drifting, drift_nu_mean=0.05), "drift_nu_std must be 0 with device.table"),
        (dict(table=plain, read_model="table", read_sigma=1.0), "has no read_sigma_us column"),
        (dict(read_model="table", read_sigma=1.0), "needs a device.table"),
        (dict(table=str(tmp_path / "missing.csv")), "missing.csv"),
    ]
    for settings, message in cases:
        with pytest.raises(ConfigError, match=message) as error:
            Device(**settings)
        assert "\n" not in str(error.value)


def test_run_with_a_table_from_toml_and_from_set(tmp_path):
    """A hardware TOML names the table relative to itself; --set names it from here; both give the same chip.
    A bad table is one line, exit 2."""
    folder = tmp_path / "hw"
    folder.mkdir()
    (folder / "dev.csv").write_text("target_us,mean_us,prog_sigma_us\n50,50.5,2\n100,99,3\n150,151,3\n225,223,4\n")
    (folder / "mine.toml").write_text('preset = "reram"\n[device]\nprog_sigma = 0.0\ntable = "dev.csv"\n')
    args = ["run", str(ROOT / "data" / "weights" / "mlp-mnist.h5"), "--limit", "300", "--json", "--quiet"]
    by_toml = CliRunner().invoke(main, [*args, "--hardware", str(folder / "mine.toml")])
    assert by_toml.exit_code == 0, by_toml.output
    by_set = CliRunner().invoke(main, [*args, "--hardware", "reram", "--set", "device.prog_sigma=0",
                                       "--set", f"device.table={folder / 'dev.csv'}"])
    assert by_set.exit_code == 0, by_set.output
    a, b = json.loads(by_toml.stdout), json.loads(by_set.stdout)
    assert a["accuracies"] == b["accuracies"] and 0.5 < a["accuracy"] < 1.0
    assert a["hardware"]["device"]["levels"] == 4 and len(a["hardware"]["device"]["table_sha256"]) == 64
    (folder / "bad.csv").write_text("target_us,mean_us,prog_sigma_us\n50,50,1\n40,40,1\n")
    bad = CliRunner().invoke(main, [*args, "--hardware", "reram", "--set", "device.prog_sigma=0",
                                    "--set", f"device.table={folder / 'bad.csv'}"])
    assert bad.exit_code == 2 and "bad.csv" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_sweep_over_tables_records_them_and_refuses_a_changed_one(tmp_path):
    """A grid over device.table (paths beside the spec) gives one row per table and chip, as xbar run does;
    the tables' SHA-256 are in the provenance, and resuming after a table changed is refused in one line."""
    for name, spread in (("tight.csv", 0.5), ("loose.csv", 6.0)):
        (tmp_path / name).write_text("target_us,mean_us,prog_sigma_us\n"
                                     + "".join(f"{g},{g},{spread}\n" for g in (50, 100, 150, 225)))
    weights = ROOT / "data" / "weights" / "mlp-mnist.h5"
    spec = tmp_path / "spec.toml"
    spec.write_text(f'weights = ["{weights}"]\nhardware = "reram"\nseeds = 2\nlimit = 200\n'
                    '[set]\n"device.prog_sigma" = 0.0\n[grid]\n"device.table" = ["tight.csv", "loose.csv"]\n')
    out = tmp_path / "r.csv"
    result = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    meta = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert sorted(Path(p).name for p in meta["device_tables"]) == ["loose.csv", "tight.csv"]
    run = CliRunner().invoke(main, ["run", str(weights), "--hardware", "reram", "--set", "device.prog_sigma=0",
                                    "--set", f"device.table={tmp_path / 'loose.csv'}", "--limit", "200",
                                    "--seeds", "2", "--json", "--quiet"])
    loose = sorted((row for row in rows if row["device.table"].endswith("loose.csv")), key=lambda row: int(row["chip"]))
    assert [float(row["accuracy"]) for row in loose] == json.loads(run.stdout)["accuracies"]
    (tmp_path / "loose.csv").write_text((tmp_path / "loose.csv").read_text().replace("6.0", "7.0"))
    resumed = CliRunner().invoke(main, ["sweep", str(spec), "-o", str(out), "--workers", "1", "-q", "--resume"])
    assert resumed.exit_code == 2 and "device table" in resumed.output and "content differs" in resumed.output
    assert len(resumed.output.strip().splitlines()) == 1


@pytest.mark.parametrize("form", ["levels", "samples"])
def test_table_draws_do_not_depend_on_threads(tmp_path, form):
    """Every draw is keyed by (stream, device index): 1 and 2 Numba threads program the same bits."""
    import numba

    if form == "levels":
        table = _levels_table(tmp_path, ["5,5.2,0.3,0.05,0.01", "15,14.8,0.6,0.04,0.01", "25,25.3,0.9,0.03,0.0"],
                              ",nu,nu_sigma")
    else:
        rng = np.random.default_rng(1)
        rows = [f"{t},{t + v:.5f}" for t in (5, 15, 25) for v in rng.normal(0, 1, 50)]
        table = _write(tmp_path / "s.csv", "target_us,measured_us\n" + "\n".join(rows) + "\n")
    device = Device(table=table, drift_t0_s=20.0, read_time_s=3600.0)
    targets = np.tile(load_table(table).targets_us, 70001)
    outputs = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            outputs.append(_programmed(device, targets, seed=4))
    finally:
        numba.set_num_threads(previous)
    assert np.array_equal(outputs[0], outputs[1])
