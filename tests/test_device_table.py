"""Device tables (xbar.device_table): the shipped examples, both CSV forms, the inverse CDF, the cache, every error."""

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest

from xbar import device_table
from xbar.device_table import MAX_TABLE_BYTES, MAX_TABLE_ROWS, DeviceTable, load_table
from xbar.errors import ConfigError

DEVICES = Path(__file__).resolve().parent.parent / "data" / "devices"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Each test sees only the files it writes: a cached table from another test (same tmp name) never leaks in.
    device_table.clear_cache()
    yield
    device_table.clear_cache()


def _write(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _header_comments(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))


# --- the shipped example tables --------------------------------------------------------------------------


def test_pcm_table_matches_the_fits_in_its_header():
    table = load_table(DEVICES / "pcm-joshi2020.csv")
    assert table.kind == "levels" and table.n_levels == 16
    assert table.g_min_us == 0.25 and table.g_max_us == 25.0
    np.testing.assert_allclose(np.diff(table.targets_us), 1.65, atol=1e-9)
    np.testing.assert_array_equal(table.mean_us, table.targets_us)
    g = table.targets_us / 25.0
    # Recomputed from the coefficients the header states (aihwkit's PCMLikeNoiseModel, Joshi et al. 2020).
    prog = np.maximum(0.26348 + 1.9650 * g - 1.1731 * g**2, 0.0)
    nu = np.clip(-0.0155 * np.log(g) + 0.0244, 0.049, 0.1)
    nu_sigma = np.clip(-0.0125 * np.log(g) - 0.0059, 0.008, 0.045)
    t, t_read = 3600.0, 250e-9
    read = table.targets_us * np.minimum(0.0088 / g**0.65, 0.2) * math.sqrt(math.log((t + t_read) / (2 * t_read)))
    for column, expected in (("prog_sigma_us", prog), ("nu", nu), ("nu_sigma", nu_sigma), ("read_sigma_us", read)):
        np.testing.assert_allclose(getattr(table, column), expected, atol=1e-6, rtol=0, err_msg=column)
    header = _header_comments(DEVICES / "pcm-joshi2020.csv")
    for fact in ("doi:10.1038/s41467-020-16108-9", "aihwkit", "0.26348", "-0.0155", "-0.0125", "0.0088", "250 ns",
                 "t = 3600 s", "not from raw measured points"):
        assert fact in header, fact


def test_reram_table_matches_the_fit_in_its_header():
    table = load_table(DEVICES / "reram-8level.csv")
    assert table.kind == "levels" and table.n_levels == 8
    np.testing.assert_array_equal(table.targets_us, 50.0 + 25.0 * np.arange(8))
    np.testing.assert_array_equal(table.mean_us, table.targets_us)
    np.testing.assert_allclose(table.prog_sigma_us, 4.782 - 0.009107 * table.targets_us, atol=1e-6, rtol=0)
    assert table.read_sigma_us is None and table.nu is None and table.nu_sigma is None
    assert table.samples_us is None and table.offsets is None
    header = _header_comments(DEVICES / "reram-8level.csv")
    assert "doi:10.1109/IRPS46558.2021.9405119" in header and "4.782" in header and "0.009107" in header


def test_shipped_tables_agree_with_the_presets_ranges():
    # The tables span the ranges of the reram and pcm presets of xbar.config (50-225 uS, 0.25-25 uS).
    reram = load_table(DEVICES / "reram-8level.csv")
    assert (reram.g_min_us, reram.g_max_us) == (50.0, 225.0)
    pcm = load_table(DEVICES / "pcm-joshi2020.csv")
    assert (pcm.g_min_us, pcm.g_max_us) == (0.25, 25.0)


# --- the two forms ---------------------------------------------------------------------------------------


def test_levels_table_any_column_order_comments_and_blank_lines(tmp_path):
    path = _write(
        tmp_path,
        "# source: a test\n\n# second comment\nnu, prog_sigma_us ,target_us,mean_us,read_sigma_us\n"
        "0.05,1.0,10,10.5,0.1\n\n0.06,2.0,20,19.5,0.2\r\n0.07,3,30,30,0.3\n",
    )
    table = load_table(path)
    assert isinstance(table, DeviceTable) and table.kind == "levels"
    assert table.path == str(path.resolve())
    np.testing.assert_array_equal(table.targets_us, [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(table.mean_us, [10.5, 19.5, 30.0])
    np.testing.assert_array_equal(table.prog_sigma_us, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(table.read_sigma_us, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(table.nu, [0.05, 0.06, 0.07])
    np.testing.assert_array_equal(table.nu_sigma, [0.0, 0.0, 0.0])  # nu without nu_sigma: no spread
    for array in (table.targets_us, table.mean_us, table.prog_sigma_us, table.read_sigma_us, table.nu):
        assert array.dtype == np.float64 and not array.flags.writeable
    assert (table.n_levels, table.g_min_us, table.g_max_us) == (3, 10.0, 30.0)
    assert table.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_samples_table_groups_sorts_and_summarises(tmp_path):
    rows = [(20, 21.0), (10, 9.0), (20, 19.0), (10, 11.0), (30, 30.5), (10, 10.0), (20, 20.0), (20, 24.0)]
    text = "# raw programming measurements\nmeasured_us,target_us\n" + "".join(f"{m},{t}\n" for t, m in rows)
    table = load_table(_write(tmp_path, text))
    assert table.kind == "samples"
    np.testing.assert_array_equal(table.targets_us, [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(table.samples_us, [9.0, 10.0, 11.0, 19.0, 20.0, 21.0, 24.0, 30.5])
    np.testing.assert_array_equal(table.offsets, [0, 3, 7, 8])
    assert table.offsets is not None and table.offsets.dtype == np.int64
    np.testing.assert_allclose(table.mean_us, [10.0, np.mean([19, 20, 21, 24]), 30.5])
    np.testing.assert_allclose(table.prog_sigma_us, [1.0, np.std([19, 20, 21, 24], ddof=1), 0.0])
    assert table.read_sigma_us is None and table.nu is None and table.nu_sigma is None


# --- the inverse CDF -------------------------------------------------------------------------------------


def _reference_quantile(samples, u):
    """The documented rule, one value at a time."""
    s = sorted(samples)
    n = len(s)
    out = []
    for x in u:
        p = x * (n - 1)
        j = math.floor(p)
        out.append(s[n - 1] if j >= n - 1 else s[j] + (p - j) * (s[j + 1] - s[j]))
    return np.array(out)


def test_quantile_matches_a_plain_loop_and_its_end_points(tmp_path):
    rng = np.random.default_rng(7)
    a = rng.normal(50.0, 3.0, 13)
    b = rng.normal(100.0, 5.0, 40)
    text = "target_us,measured_us\n" + "".join(f"50,{float(x)!r}\n" for x in a)
    text += "".join(f"100,{float(x)!r}\n" for x in b)
    text += "150,151.25\n"
    table = load_table(_write(tmp_path, text))
    u = np.concatenate([rng.random(1000), [0.0, 1.0, 0.5, np.nextafter(1.0, 0.0)]])
    for level, samples in enumerate((a, b, [151.25])):
        got = table.quantile(level, u)
        assert got.dtype == np.float64 and got.shape == u.shape
        np.testing.assert_array_equal(got, _reference_quantile(samples, u))
        assert got[-4] == min(samples) and got[-3] == max(samples)
        assert np.all(np.diff(table.quantile(level, np.linspace(0, 1, 101))) >= 0)  # a CDF's inverse never falls
    # exact order statistics at u = j / (n - 1)
    n = a.size
    np.testing.assert_array_equal(table.quantile(0, np.arange(n) / (n - 1)), np.sort(a))
    assert np.all(table.quantile(2, u) == 151.25)  # a single sample is every quantile


def test_quantile_refuses_what_has_no_answer(tmp_path):
    levels = load_table(DEVICES / "reram-8level.csv")
    with pytest.raises(ValueError, match="no samples"):
        levels.quantile(0, np.array([0.5]))
    samples = load_table(_write(tmp_path, "target_us,measured_us\n1,1\n2,2\n"))
    with pytest.raises(ValueError, match="out of range"):
        samples.quantile(2, np.array([0.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        samples.quantile(0, np.array([1.5]))


# --- the cache -------------------------------------------------------------------------------------------


def test_cache_returns_the_same_table_until_the_file_changes(tmp_path):
    path = _write(tmp_path, "target_us,mean_us,prog_sigma_us\n1,1,0.1\n2,2,0.2\n")
    first = load_table(path)
    assert load_table(path) is first
    assert load_table(str(path)) is first and load_table(tmp_path / "." / "table.csv") is first
    path.write_text("target_us,mean_us,prog_sigma_us\n1,1,0.1\n2,2,0.2\n3,3,0.3\n")
    # Force a different mtime even on a file system with coarse timestamps.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = load_table(path)
    assert second is not first and second.n_levels == 3 and second.sha256 != first.sha256


# --- errors ----------------------------------------------------------------------------------------------

LEVELS = "target_us,mean_us,prog_sigma_us\n"

BAD_TABLES = [
    # (file text, line number in the message or None, words of the problem)
    ("", None, "no header"),
    ("# only\n# comments\n\n", None, "no header"),
    ("target_us,mean_uS,prog_sigma_us\n1,1,0\n", 1, "unknown column 'mean_uS' (known: target_us, mean_us,"),
    ("# c\ntarget_us,mean_us,mean_us,prog_sigma_us\n", 2, "duplicate column 'mean_us' (columns 2 and 3)"),
    ("target_us,mean_us\n1,1\n2,2\n", 1, "missing required column prog_sigma_us"),
    ("measured_us\n1\n", 1, "missing required column target_us"),
    ("target_us,measured_us,mean_us\n", 1, "'mean_us' is a levels-form column"),
    (LEVELS.replace("\n", ",nu_sigma\n") + "1,1,0,0\n2,2,0,0\n", 1, "nu_sigma without nu"),
    (LEVELS + "1,1,0\n2,2\n", 3, "2 fields, but the header (line 1) has 3"),
    (LEVELS + "1,1,0\n2,2,0,\n", 3, "4 fields"),
    (LEVELS + "1,1,0\n2,abc,0\n", 3, "mean_us: 'abc' is not a number"),
    (LEVELS + "1,1,0\n2,,0\n", 3, "mean_us: '' is not a number"),
    (LEVELS + "1,1,0\n2,nan,0\n", 3, "mean_us: 'nan' is not finite"),
    (LEVELS + "1,1,0\n2,2,inf\n", 3, "prog_sigma_us: 'inf' is not finite"),
    (LEVELS + "-1,1,0\n2,2,0\n", 2, "target_us: -1 is negative (a conductance must be >= 0)"),
    (LEVELS + "1,-0.5,0\n2,2,0\n", 2, "mean_us: -0.5 is negative"),
    ("target_us,measured_us\n1,1\n2,-2\n", 3, "measured_us: -2 is negative"),
    (LEVELS + "1,1,-0.1\n2,2,0\n", 2, "prog_sigma_us: -0.1 must be >= 0"),
    (LEVELS.replace("\n", ",read_sigma_us\n") + "1,1,0,0\n2,2,0,-1\n", 3, "read_sigma_us: -1 must be >= 0"),
    (LEVELS.replace("\n", ",nu,nu_sigma\n") + "1,1,0,0.05,-0.01\n2,2,0,0,0\n", 2, "nu_sigma: -0.01 must be >= 0"),
    (LEVELS.replace("\n", ",nu\n") + "1,1,0,0.05\n2,2,0,-0.2\n", 3, "nu: -0.2 must be >= 0"),
    (LEVELS + "1,1,0\n\n3,3,0\n2,2,0\n", 5, "levels not sorted ascending: target_us 2 comes after 3 on line 4"),
    (LEVELS + "1,1,0\n2,2,0\n# late\n2,2,0\n", 4, "comment after the header"),
    (LEVELS + "1,1,0\n2,2,0\n2,2.5,0\n", 4, "duplicate level: target_us 2 is also on line 3"),
    (LEVELS + "1,1,0\n", 2, "only 1 level; a table needs at least 2"),
    ("target_us,measured_us\n5,5\n5,5.1\n", 2, "only 1 level (target_us 5)"),
    ("# c\n" + LEVELS + "\n\n", 2, "no data rows after the header"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_TABLES, ids=[case[2][:40] for case in BAD_TABLES])
def test_bad_table_is_one_line_naming_file_line_and_problem(tmp_path, text, line, problem):
    path = _write(tmp_path, text, "bad-table.csv")
    with pytest.raises(ConfigError) as caught:
        load_table(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "bad-table.csv" in message
    if line is not None:
        assert f"bad-table.csv:{line}: " in message, message
    else:
        assert "bad-table.csv: " in message, message
    assert problem in message, message


def test_missing_file_and_folder_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^device table .*nope\.csv: no such file$"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="is a folder"):
        load_table(tmp_path)


def test_fifo_is_refused_without_hanging(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="pipe.csv: not a regular file"):
        load_table(fifo)


def test_a_100_mb_file_is_refused_by_its_size_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:
        f.truncate(100 * 2**20)  # sparse: no disk used, and never read
    read = []
    monkeypatch.setattr(device_table, "read_bytes", lambda *a, **k: read.append(a))
    with pytest.raises(ConfigError) as caught:
        load_table(path)
    message = str(caught.value)
    assert "huge.csv" in message and "104,857,600 bytes" in message and f"{MAX_TABLE_BYTES:,}" in message
    assert "\n" not in message and not read


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"# caf\xe9 source\ntarget_us,mean_us,prog_sigma_us\n")
    with pytest.raises(ConfigError, match=r"latin1\.csv:1: not UTF-8 text \(byte 5"):
        load_table(path)
    path.write_bytes(b"target_us,mean_us,prog_sigma_us\n1,1,0\n2,2\xff,0\n")
    with pytest.raises(ConfigError, match=r"latin1\.csv:3: not UTF-8"):
        load_table(path)


def test_a_leading_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftarget_us,mean_us,prog_sigma_us\n1,1,0\n2,2,0\n")
    assert load_table(path).n_levels == 2


def test_too_many_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(device_table, "MAX_TABLE_ROWS", 3)
    path = _write(tmp_path, "target_us,measured_us\n1,1\n1,1\n2,2\n2,2\n")
    with pytest.raises(ConfigError, match=r"table\.csv:5: more than 3 data rows"):
        load_table(path)
    assert MAX_TABLE_ROWS == 1_000_000 and MAX_TABLE_BYTES == 16 * 2**20
