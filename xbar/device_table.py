"""Measured device tables: per-level conductance statistics, or raw programming samples, read from a CSV file.

A table describes a multi-level device by what was measured on it rather than by a closed-form fit. Two
forms exist, told apart by the header (docs/devices.md has the full rules and examples):

- the *levels* form, one row per programmable level: ``target_us,mean_us,prog_sigma_us`` and optionally
  ``read_sigma_us``, ``nu`` and ``nu_sigma`` (drift G(t) = G (t / t0)^-nu), in any order;
- the *samples* form, ``target_us,measured_us``: raw programming measurements, many rows per level (a
  level is a distinct target), in any order; programming then draws from each level's empirical
  distribution (:meth:`DeviceTable.quantile`).

Conductances are in microsiemens (uS); nu is dimensionless. Lines starting with ``#`` before the header are
comments (where a table says where its data come from); blank lines are skipped anywhere.

Every problem with a file is one :class:`~xbar.errors.ConfigError` line naming the file, the line (1-based,
as an editor counts) where one applies, and the problem. This module imports no other part of xbar but
``_files`` and ``errors``, so that the configuration can import it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np

from ._files import check_regular_file, read_bytes
from .errors import ConfigError, XbarError

MAX_TABLE_BYTES = 16 * 2**20
"""Largest table file read (bytes); a larger one is refused by its size, before any of it is read."""

MAX_TABLE_ROWS = 1_000_000
"""Most data rows a table may have (a 16 MiB file of short sample rows could hold about 4 million)."""

LEVELS_REQUIRED = ("target_us", "mean_us", "prog_sigma_us")
"""Columns every levels-form table has."""

LEVELS_OPTIONAL = ("read_sigma_us", "nu", "nu_sigma")
"""Columns a levels-form table may add (``nu_sigma`` only with ``nu``)."""

SAMPLES_COLUMNS = ("target_us", "measured_us")
"""The columns of a samples-form table."""

KNOWN_COLUMNS = LEVELS_REQUIRED + LEVELS_OPTIONAL + ("measured_us",)
"""Every column name a table may use."""

_CONDUCTANCE_COLUMNS = frozenset({"target_us", "mean_us", "measured_us"})
_SIGMA_COLUMNS = frozenset({"prog_sigma_us", "read_sigma_us", "nu_sigma"})
_LEVELS_ONLY = frozenset(LEVELS_REQUIRED + LEVELS_OPTIONAL) - {"target_us"}


@dataclass(frozen=True, eq=False)
class DeviceTable:
    """A device table as read from its file; every array is float64 (offsets int64) and read-only.

    Arrays of shape (L,) have one entry per level, levels in ascending target order. ``eq=False``: two
    tables compare by identity (numpy arrays have no single truth value), which is what the cache needs.
    """

    path: str
    """The file, resolved to an absolute path."""
    sha256: str
    """SHA-256 (hex) of the file's bytes, for provenance."""
    kind: str
    """``"levels"`` or ``"samples"``: the form of the file."""
    targets_us: np.ndarray
    """Target conductance of each level (uS), strictly increasing."""
    mean_us: np.ndarray
    """Mean conductance a device programmed to the level lands at (uS); for samples, the sample mean."""
    prog_sigma_us: np.ndarray
    """Std of the programmed conductance about ``mean_us`` (uS); for samples, ddof=1 (0 for one sample)."""
    read_sigma_us: np.ndarray | None = None
    """Std of the read noise at the level (uS), or None when the table has no ``read_sigma_us`` column."""
    nu: np.ndarray | None = None
    """Mean drift exponent of the level (dimensionless, G(t) = G (t / t0)^-nu), or None: no drift data."""
    nu_sigma: np.ndarray | None = None
    """Device-to-device std of nu; zeros when ``nu`` is given without ``nu_sigma``; None without ``nu``."""
    samples_us: np.ndarray | None = None
    """Samples form: every measured conductance (uS), levels in target order, ascending within a level."""
    offsets: np.ndarray | None = None
    """Samples form, shape (L + 1,): level i's samples are ``samples_us[offsets[i]:offsets[i + 1]]``."""

    @property
    def n_levels(self) -> int:
        """Number of levels L."""
        return int(self.targets_us.size)

    @property
    def g_min_us(self) -> float:
        """Lowest target conductance (uS)."""
        return float(self.targets_us[0])

    @property
    def g_max_us(self) -> float:
        """Highest target conductance (uS)."""
        return float(self.targets_us[-1])

    def quantile(self, level: int, u: np.ndarray) -> np.ndarray:
        """Inverse CDF of ``level``'s samples at probabilities ``u`` in [0, 1]: conductances (uS), float64.

        Linear interpolation between order statistics: with the level's samples sorted, s_0 <= ... <= s_{n-1},
        p = u (n - 1), j = floor(p), G = s_j + (p - j) (s_{j+1} - s_j); at u = 1 (j = n - 1) G = s_{n-1}, and a
        single sample is returned for every u. u = 0 gives the smallest sample. This is the reference that
        the Numba kernel :func:`xbar.kernels.tables.program_empirical` is held to, so it computes the same
        expressions in the same order.
        """
        if self.samples_us is None or self.offsets is None:
            raise ValueError(f"{self.path}: a {self.kind}-form table has no samples to draw from")
        if not 0 <= level < self.n_levels:
            raise ValueError(f"level {level} out of range: the table has {self.n_levels} levels")
        u = np.asarray(u, np.float64)
        if u.size and not (np.all(u >= 0.0) and np.all(u <= 1.0)):
            raise ValueError("quantile: every u must lie in [0, 1]")
        start = int(self.offsets[level])
        n = int(self.offsets[level + 1]) - start
        s = self.samples_us[start : start + n]
        p = u * (n - 1)
        # min(): u = 1 gives j = n - 1, which has no s_{j+1}; there p - j = 0 and the sample itself is returned.
        j = np.minimum(np.floor(p).astype(np.int64), n - 1)
        upper = np.minimum(j + 1, n - 1)
        out: np.ndarray = np.where(j + 1 < n, s[j] + (p - j) * (s[upper] - s[j]), s[j])
        return out


def load_table(path: str | os.PathLike) -> DeviceTable:
    """The :class:`DeviceTable` in the CSV file ``path``, or a one-line :class:`ConfigError`.

    Read once per process while the file is unchanged: tables are cached on (resolved path, mtime_ns, size),
    so a sweep that builds many chips from one table parses it once, and an edited file is read again.
    """
    try:
        # Refuses a missing file, a folder or FIFO, and a file over MAX_TABLE_BYTES by its size, unread.
        checked = check_regular_file(path, MAX_TABLE_BYTES)
        resolved = checked.resolve()
        info = os.stat(resolved)
    except ConfigError:
        raise
    except XbarError as exc:
        raise ConfigError(f"device table {exc}") from None
    except OSError as exc:
        raise ConfigError(f"device table {path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    return _load_cached(str(resolved), info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, size: int) -> DeviceTable:
    """Read and parse ``path``; the stat fields are only the cache key (a changed file is a new key)."""
    try:
        raw = read_bytes(path, MAX_TABLE_BYTES)
    except XbarError as exc:
        raise ConfigError(f"device table {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        bad = raw[exc.start : exc.start + 1]
        raise ConfigError(f"device table {path}:{line}: not UTF-8 text (byte {exc.start}: {bad!r})") from None
    return _parse(path, hashlib.sha256(raw).hexdigest(), text)


def _error(path: str, line: int | None, problem: str) -> ConfigError:
    where = f"{path}:{line}" if line is not None else path
    return ConfigError(f"device table {where}: {problem}")


def _frozen(values: list[float] | np.ndarray, dtype: type = np.float64) -> np.ndarray:
    # Read-only: a cached table is shared by every caller in the process, so none may change it.
    out: np.ndarray = np.array(values, dtype)
    out.flags.writeable = False
    return out


def _parse(path: str, sha256: str, text: str) -> DeviceTable:
    """Parse the text of a table file (see the module docstring)."""
    # A BOM (as some spreadsheets write) is not part of the first column name.
    text = text.removeprefix("\ufeff")
    # split("\n"), not splitlines(): that also breaks at form feeds and Unicode separators, and line
    # numbers would then disagree with the editor's.
    lines = text.split("\n")
    header_at = None
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            header_at = index
            break
    if header_at is None:
        raise _error(path, None, "no header line (the file is empty or holds only comments)")
    header_line = header_at + 1
    columns = _read_header(path, header_line, lines[header_at])
    kind = "samples" if "measured_us" in columns else "levels"

    values: dict[str, list[float]] = {name: [] for name in columns}
    row_lines: list[int] = []
    for index in range(header_at + 1, len(lines)):
        line = lines[index].strip()
        if not line:
            continue
        number = index + 1
        if line.startswith("#"):
            raise _error(path, number, "a comment after the header (comment lines go before it)")
        if len(row_lines) == MAX_TABLE_ROWS:
            raise _error(path, number, f"more than {MAX_TABLE_ROWS:,} data rows")
        fields = line.split(",")
        if len(fields) != len(columns):
            raise _error(path, number, f"{len(fields)} fields, but the header (line {header_line}) has {len(columns)}")
        for name, field in zip(columns, fields):
            values[name].append(_number(path, number, name, field))
        row_lines.append(number)
    if not row_lines:
        raise _error(path, header_line, "no data rows after the header")
    if kind == "samples":
        return _samples_table(path, sha256, values, row_lines)
    return _levels_table(path, sha256, values, row_lines)


def _read_header(path: str, number: int, line: str) -> list[str]:
    """The column names of the header ``line`` (line ``number``), checked."""
    columns = [name.strip() for name in line.split(",")]
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, 1):
        if name not in KNOWN_COLUMNS:
            raise _error(path, number, f"unknown column {name!r} (known: {', '.join(KNOWN_COLUMNS)})")
        if name in seen:
            raise _error(path, number, f"duplicate column {name!r} (columns {seen[name]} and {position})")
        seen[name] = position
    if "measured_us" in seen:
        mixed = [name for name in columns if name in _LEVELS_ONLY]
        if mixed:
            raise _error(
                path,
                number,
                f"column {mixed[0]!r} is a levels-form column; a samples-form table (measured_us) has only "
                f"the columns {', '.join(SAMPLES_COLUMNS)}",
            )
        required: tuple[str, ...] = SAMPLES_COLUMNS
    else:
        required = LEVELS_REQUIRED
    missing = [name for name in required if name not in seen]
    if missing:
        raise _error(
            path,
            number,
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(a levels table needs {', '.join(LEVELS_REQUIRED)}; a samples table {', '.join(SAMPLES_COLUMNS)})",
        )
    if "nu_sigma" in seen and "nu" not in seen:
        raise _error(path, number, "column nu_sigma without nu (nu_sigma is the spread of nu)")
    return columns


def _number(path: str, number: int, column: str, field: str) -> float:
    """The value ``field`` of ``column`` on line ``number``, checked."""
    text = field.strip()
    try:
        value = float(text)
    except ValueError:
        raise _error(path, number, f"{column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _error(path, number, f"{column}: {text!r} is not finite")
    if column in _CONDUCTANCE_COLUMNS and value < 0:
        raise _error(path, number, f"{column}: {text} is negative (a conductance must be >= 0)")
    if column in _SIGMA_COLUMNS and value < 0:
        raise _error(path, number, f"{column}: {text} must be >= 0 (a standard deviation)")
    if column == "nu" and value < 0:
        raise _error(path, number, f"nu: {text} must be >= 0 (as device.drift_nu_mean: conductance decays)")
    return value


def _levels_table(path: str, sha256: str, values: dict[str, list[float]], row_lines: list[int]) -> DeviceTable:
    targets = values["target_us"]
    for i in range(1, len(targets)):
        if targets[i] == targets[i - 1]:
            raise _error(
                path,
                row_lines[i],
                f"duplicate level: target_us {targets[i]:g} is also on line {row_lines[i - 1]}",
            )
        if targets[i] < targets[i - 1]:
            raise _error(
                path,
                row_lines[i],
                f"levels not sorted ascending: target_us {targets[i]:g} comes after {targets[i - 1]:g} "
                f"on line {row_lines[i - 1]}",
            )
    if len(targets) < 2:
        raise _error(path, row_lines[0], "only 1 level; a table needs at least 2")
    nu = _frozen(values["nu"]) if "nu" in values else None
    nu_sigma = None
    if nu is not None:
        nu_sigma = _frozen(values["nu_sigma"]) if "nu_sigma" in values else _frozen(np.zeros(nu.size))
    return DeviceTable(
        path=path,
        sha256=sha256,
        kind="levels",
        targets_us=_frozen(targets),
        mean_us=_frozen(values["mean_us"]),
        prog_sigma_us=_frozen(values["prog_sigma_us"]),
        read_sigma_us=_frozen(values["read_sigma_us"]) if "read_sigma_us" in values else None,
        nu=nu,
        nu_sigma=nu_sigma,
    )


def _samples_table(path: str, sha256: str, values: dict[str, list[float]], row_lines: list[int]) -> DeviceTable:
    targets = np.array(values["target_us"], np.float64)
    measured = np.array(values["measured_us"], np.float64)
    # Sort by target, then by measured value within a target: each level's samples become its order statistics.
    order = np.lexsort((measured, targets))
    targets, measured = targets[order], measured[order]
    levels, starts, counts = np.unique(targets, return_index=True, return_counts=True)
    if levels.size < 2:
        raise _error(path, row_lines[0], f"only 1 level (target_us {levels[0]:g}); a table needs at least 2")
    offsets = np.append(starts, targets.size).astype(np.int64)
    means = np.add.reduceat(measured, starts) / counts
    sigmas = np.zeros(levels.size)
    for i in range(levels.size):
        if counts[i] > 1:
            sigmas[i] = np.std(measured[offsets[i] : offsets[i + 1]], ddof=1)
    return DeviceTable(
        path=path,
        sha256=sha256,
        kind="samples",
        targets_us=_frozen(levels),
        mean_us=_frozen(means),
        prog_sigma_us=_frozen(sigmas),
        samples_us=_frozen(measured),
        offsets=_frozen(offsets, np.int64),
    )


def clear_cache() -> None:
    """Forget every table read so far (tests; a long-lived process that must re-read unchanged files)."""
    _load_cached.cache_clear()


__all__ = [
    "KNOWN_COLUMNS",
    "LEVELS_OPTIONAL",
    "LEVELS_REQUIRED",
    "MAX_TABLE_BYTES",
    "MAX_TABLE_ROWS",
    "SAMPLES_COLUMNS",
    "DeviceTable",
    "clear_cache",
    "load_table",
]
