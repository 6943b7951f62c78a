"""The results table of a sweep: its columns, how values are written, and how rows are read back.

One CSV row per task (one chip instance of one network at one grid point), in
this column order::

    weights, arch, dataset, <the swept parameters, in grid order>,
    chip, seed, accuracy, n_images, energy_per_inference_j, seconds

Floats are written with ``repr`` (shortest round trip), everything else with
``str``. Readers find every column by its name, never by its position: a task's
key (:func:`task_key`) and the summary over chip instances
(:func:`summarize_rows`) are the same whatever order the columns come in.

:class:`ResultsFile` appends rows, one ``write`` and one ``fsync`` each, and
resumes a file by the keys of the rows already in it. While it is open it holds
an exclusive lock (``fcntl.flock``) on the CSV, so a second writer of the same
file is refused at once. Beside the CSV, ``<file>.meta.json`` (written
atomically when the file is started) records its provenance: the sweep spec, the
resolved hardware, the SHA-256 of each weights file (and of the data file of a
sweep over the user's own test set) and the xbar version. A resume whose
provenance differs, or a file without one, is refused.

Every damaged line (blank, garbage, wrong number of fields, a value of the
wrong type, bytes that are not UTF-8) is a one-line :class:`XbarError` naming
the file and the line; only a last line cut short by a kill (no newline at its
end) is dropped without a word on resume, since its task runs again.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._files import atomic_path, check_output_path, check_regular_file, read_bytes
from .errors import XbarError
from .stats import summarize

KEY_COLUMNS = ("weights", "arch", "dataset")
"""What was run: the weights file, its architecture, the test set."""
RESULT_COLUMNS = ("chip", "seed", "accuracy", "n_images", "energy_per_inference_j", "seconds")
"""What came out: chip instance index and seed, accuracy in [0, 1], test images, J per inference, wall time (s)."""
NON_PARAMS = frozenset(KEY_COLUMNS + RESULT_COLUMNS)
"""Every column that is not a swept parameter."""
PROVENANCE_SUFFIX = ".meta.json"
"""The provenance of ``results.csv`` is ``results.csv.meta.json``."""
PROVENANCE_FORMAT = "xbar-results-provenance 1"
"""Value of the ``format`` key of a provenance file (changes if its layout does)."""


def header(params: Iterable[str]) -> list[str]:
    """The header of a results file whose swept parameters are ``params`` (in grid order)."""
    return [*KEY_COLUMNS, *params, *RESULT_COLUMNS]


def params_of(header: Iterable[str]) -> list[str]:
    """The swept parameters among the columns ``header``, in its order."""
    return [c for c in header if c not in NON_PARAMS]


def format_value(value: Any) -> str:
    """A value as the CSV holds it: ``repr`` for floats (round-trips exactly), ``str`` otherwise."""
    return repr(value) if isinstance(value, float) else str(value)


def task_key(row: Mapping[str, Any], params: Sequence[str]) -> tuple[str, ...]:
    """Identity of a task: weights, the values of ``params``, chip index, found by name and formatted.

    ``row`` is a row read back (strings) or a task's fields (values): the two give
    the same key, so a resumed sweep recognises the tasks already done.
    """
    return (format_value(row["weights"]), *(format_value(row[p]) for p in params), format_value(row["chip"]))


def _line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _short(text: str, limit: int = 40) -> str:
    """``repr`` of ``text`` cut to about ``limit`` characters: error messages stay one readable line."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _check_int(value: str, low: int | None) -> str | None:
    try:
        number = int(value)
    except ValueError:
        return "is not an integer"
    return None if low is None or number >= low else f"is below {low}"


def _check_float(value: str, low: float | None, high: float | None, none_ok: bool = False) -> str | None:
    if none_ok and value in ("None", ""):  # xbar writes None; a table from elsewhere may leave it empty
        return None
    try:
        number = float(value)
    except ValueError:
        return "is not a number"
    if not math.isfinite(number):
        return "is not a finite number"
    if (low is not None and number < low) or (high is not None and number > high):
        return f"is outside [{low}, {high if high is not None else 'inf'}]"
    return None


# What each result column must hold: a check returning None when the text is valid, else what is wrong.
_VALUE_CHECKS = {
    "chip": lambda v: _check_int(v, 0),
    "seed": lambda v: _check_int(v, None),
    "accuracy": lambda v: _check_float(v, 0.0, 1.0),
    "n_images": lambda v: _check_int(v, 0),
    "energy_per_inference_j": lambda v: _check_float(v, 0.0, None, none_ok=True),
    "seconds": lambda v: _check_float(v, 0.0, None),
    "weights": lambda v: None if v else "is empty",
}


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise XbarError(f"{path}, line {line}: not UTF-8 text (byte {raw[exc.start : exc.start + 1]!r})") from None


def _records(text: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each CSV record of ``text``; a blank line or a CSV syntax error is an XbarError.

    A record's line is the one it starts on (a quoted field may span lines).
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise XbarError(f"{path}, line {line}: not valid CSV ({exc})") from None
        if not fields or fields == [""]:
            raise XbarError(f"{path}, line {line}: blank line")
        yield line, fields


def _check_row(fields: list[str], columns: list[str], path: Path, line: int, cut: bool) -> dict[str, str]:
    """``fields`` as a dict by column, or an XbarError naming the line and what is wrong with it."""
    hint = " (the file ends without a newline: a line cut short? --resume repairs it)" if cut else ""
    if len(fields) != len(columns):
        raise XbarError(f"{path}, line {line}: {len(fields)} field(s), the header has {len(columns)}{hint}")
    row = dict(zip(columns, fields))
    for column, check in _VALUE_CHECKS.items():
        if column in row:
            problem = check(row[column])
            if problem is not None:
                raise XbarError(f"{path}, line {line}: {column} {_short(row[column])} {problem}{hint}")
    return row


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Rows of a results CSV, as dicts of strings keyed by column name.

    A file that is not a results file (missing columns, no rows) or has a
    damaged line is a one-line :class:`XbarError` naming the file (and line).
    """
    path = Path(path)
    raw = read_bytes(path)
    text = _decode(raw, path)
    records = _records(text, path)
    _, columns = next(records, (0, []))
    missing = [c for c in (*KEY_COLUMNS, *RESULT_COLUMNS) if c not in columns]
    if missing:
        raise XbarError(f"{path}: not an xbar results file (no {', '.join(repr(c) for c in missing)} column)")
    if len(set(columns)) != len(columns):
        raise XbarError(f"{path}, line 1: a column name appears twice")
    last = text.count("\n") + (0 if text.endswith("\n") else 1)
    rows = [
        _check_row(fields, columns, path, line, cut=line == last and not text.endswith("\n"))
        for line, fields in records
    ]
    if not rows:
        raise XbarError(f"{path}: not an xbar results file (no rows)")
    return rows


def swept_params(rows: list[dict]) -> list[str]:
    """Parameter columns of a results file, in file order."""
    return params_of(rows[0]) if rows else []


def summarize_rows(rows: list[dict]) -> list[dict]:
    """One entry per (weights, parameters): mean, std and 95% CI of accuracy over chip instances.

    Each entry holds weights, arch, dataset and the swept parameters as the rows
    do (strings), then ``n`` (chip instances), ``mean``, ``std``, ``ci_low`` and
    ``ci_high`` (``std`` and the interval are None for a single chip instance, see
    :func:`xbar.stats.summarize`); entries come in the order their first row does.
    A row without a column, or whose accuracy is not a number in [0, 1], is an
    :class:`XbarError`.
    """
    params = swept_params(rows)
    groups: dict[tuple, list[float]] = defaultdict(list)
    first: dict[tuple, dict] = {}
    for number, row in enumerate(rows, start=1):
        missing = [c for c in (*KEY_COLUMNS, *params, "accuracy") if c not in row]
        if missing:
            raise XbarError(f"results row {number}: no {', '.join(repr(c) for c in missing)} column")
        problem = _VALUE_CHECKS["accuracy"](str(row["accuracy"]))
        if problem is not None:
            raise XbarError(f"results row {number}: accuracy {_short(str(row['accuracy']))} {problem}")
        key = (row["weights"], *(row[p] for p in params))
        groups[key].append(float(row["accuracy"]))
        first.setdefault(key, row)
    out = []
    for key, accs in groups.items():
        stats = summarize(accs)
        row = first[key]
        out.append(
            {
                **{c: row[c] for c in KEY_COLUMNS},
                **{p: row[p] for p in params},
                "n": len(accs),
                "mean": stats["mean"],
                "std": stats["std"],
                "ci_low": None if stats["ci95"] is None else stats["ci95"][0],
                "ci_high": None if stats["ci95"] is None else stats["ci95"][1],
            }
        )
    return out


# Provenance: what made a results file, beside it.


def provenance_path(path: str | os.PathLike) -> Path:
    """Where the provenance of the results file ``path`` lives: ``<path>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + PROVENANCE_SUFFIX)


def write_provenance(path: str | os.PathLike, provenance: Mapping[str, Any]) -> Path:
    """Write ``provenance`` (JSON-ready) beside the results file ``path``, atomically; return its path."""
    target = provenance_path(path)
    text = json.dumps({"format": PROVENANCE_FORMAT, **provenance}, indent=1, default=str) + "\n"
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return target


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance recorded beside the results file ``path``; None if there is none.

    A provenance file that is not one (not JSON, not an object, another format)
    is an :class:`XbarError`.
    """
    target = provenance_path(path)
    if not os.path.lexists(target):
        return None
    raw = read_bytes(target, max_bytes=256 * 2**20)
    try:
        table = json.loads(_decode(raw, target))
    except json.JSONDecodeError as exc:
        raise XbarError(f"{target}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(table, dict) or table.get("format") != PROVENANCE_FORMAT:
        raise XbarError(f"{target}: not an xbar results provenance file (format {PROVENANCE_FORMAT!r})")
    return table


def _canonical(value: Any) -> str:
    # JSON text tells 1 from 1.0 (which the CSV writes differently) and compares nested values alike.
    return json.dumps(value, sort_keys=True, default=str)


def _flat(table: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(table, dict):
        return {prefix: table}
    out: dict[str, Any] = {}
    for key, value in table.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _changes(old: Any, new: Any, most: int = 4) -> str:
    """The keys where two nested tables differ, ``key old -> new`` (as JSON), at most ``most`` of them.

    A ``name`` comes last: it names what differs, the other keys say how.
    """
    old_flat, new_flat = _flat(old), _flat(new)
    keys = [k for k in {**old_flat, **new_flat} if _canonical(old_flat.get(k)) != _canonical(new_flat.get(k))]
    keys.sort(key=lambda k: k == "name")
    shown = [
        f"{k or 'value'} {_clip(_canonical(old_flat.get(k)))} -> {_clip(_canonical(new_flat.get(k)))}"
        for k in keys[:most]
    ]
    return ", ".join(shown) + (f" and {len(keys) - most} more" if len(keys) > most else "")


COMPARED_SPEC_KEYS = (
    "weights",
    "set",
    "grid",
    "seeds",
    "seed",
    "limit",
    "dataset",
    "data",
    "data_layout",
    "data_scale",
)
"""Spec keys that decide a file's rows. Not compared: ``name``, ``batch_size`` (results do not depend
on it) and the ``hardware`` string, whose resolved hardware is compared instead."""


def provenance_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two provenances, one phrase each (empty when the files may be continued).

    Both have the keys ``xbar`` (version), ``spec`` (the spec's content),
    ``hardware`` (:meth:`Hardware.to_dict` of the spec's hardware before its
    overrides) and ``weights`` ({weights as the rows hold them: SHA-256}); ``data`` ({the data file as the
    rows hold it: SHA-256}, empty or absent for a built-in test set) and ``device_tables`` ({table file: SHA-256}
    of those the spec's [set] and grid name) are compared as ``weights`` are.
    """
    new = json.loads(_canonical(new))  # tuples to lists, as the file holds them
    out = []
    if old.get("xbar") != new.get("xbar"):
        out.append(f"xbar version differs: {old.get('xbar')} -> {new.get('xbar')}")
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    for key in COMPARED_SPEC_KEYS:
        if _canonical(old_spec.get(key)) != _canonical(new_spec.get(key)):
            if isinstance(old_spec.get(key), dict) and isinstance(new_spec.get(key), dict):
                out.append(f"spec {key} differs: {_changes(old_spec[key], new_spec[key])}")
            else:
                old_value, new_value = _canonical(old_spec.get(key)), _canonical(new_spec.get(key))
                out.append(f"spec {key} differs: {_clip(old_value, 80)} -> {_clip(new_value, 80)}")
    if _canonical(old.get("hardware")) != _canonical(new.get("hardware")):
        out.append(f"hardware differs: {_changes(old.get('hardware'), new.get('hardware'))}")
    old_weights, new_weights = old.get("weights") or {}, new.get("weights") or {}
    for name, digest in new_weights.items():
        before = old_weights.get(name)
        if before is not None and before != digest:
            out.append(f"weights {name} content differs (sha256 {str(before)[:12]}... -> {str(digest)[:12]}...)")
    for key, what in (("data", "data"), ("device_tables", "device table")):
        old_files, new_files = old.get(key) or {}, new.get(key) or {}
        for name, digest in new_files.items():
            before = old_files.get(name)
            if before is not None and before != digest:
                out.append(f"{what} {name} content differs (sha256 {str(before)[:12]}... -> {str(digest)[:12]}...)")
    return out


def _lock(fd: int, path: Path) -> None:
    """Hold an exclusive lock on the open file ``fd`` until it is closed; refuse at once if another has it."""
    if sys.platform == "win32":  # no flock there: a second writer is not detected (documented)
        return
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise XbarError(
            f"{path}: another xbar sweep is writing this results file (it is locked); "
            "wait for it to finish, or write to another file"
        ) from None
    except OSError as exc:
        raise XbarError(f"{path}: cannot lock the results file ({exc.strerror})") from None


class ResultsFile:
    """The results CSV: header once, then one complete line per ``write`` call, flushed; locked while open.

    Use it as a context manager (or call :meth:`close`): the lock that keeps a
    second writer out lasts until then.

    Parameters
    ----------
    path : path
    columns : list of str
        The header (:func:`header`).
    resume : bool
        Continue an existing file: drop a line cut short by a kill, check the
        header, the provenance and every line, and collect in ``done`` the
        :func:`task_key` of every row (``lines`` maps each to its line number).
        Without it an existing non-empty file is an error.
    provenance : mapping, optional
        What makes the rows (see :func:`provenance_differences`): written beside
        a new file; on resume, the recorded one must not differ from it. None
        (library use) writes and checks none.
    overwrite : bool
        Start the file afresh even if it has rows (``xbar reproduce`` without ``--resume``).
    is_task : callable, optional
        On resume, whether a row's key is that of a task of the sweep: a row of
        no task is refused, naming its line.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        columns: list[str],
        resume: bool,
        provenance: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        is_task: Callable[[tuple[str, ...]], bool] | None = None,
    ):
        self.path, self.columns = Path(path), list(columns)
        self._is_task = is_task
        self.params = params_of(self.columns)
        self.done: set[tuple[str, ...]] = set()
        self.lines: dict[tuple[str, ...], int] = {}
        if os.path.lexists(self.path):
            check_regular_file(self.path)  # a FIFO or a device is refused before it is opened
        check_output_path(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a+b", buffering=0)  # held open: the lock lasts as long
        except OSError as exc:
            raise XbarError(f"{self.path}: cannot write ({exc.strerror})") from None
        try:
            if not stat.S_ISREG(os.fstat(self._fh.fileno()).st_mode):
                raise XbarError(f"{self.path}: not a regular file")
            _lock(self._fh.fileno(), self.path)
            self._start(resume, provenance, overwrite)
        except BaseException:
            self._fh.close()
            raise

    def _start(self, resume: bool, provenance: Mapping[str, Any] | None, overwrite: bool) -> None:
        size = os.fstat(self._fh.fileno()).st_size
        if size and not resume and not overwrite:
            raise XbarError(f"{self.path} exists: pass --resume to continue it, or choose another file")
        if size and resume and not overwrite:
            self._read_existing(provenance)
            if os.fstat(self._fh.fileno()).st_size:
                return
        # A new file (or one emptied by dropping a cut header): its provenance first, so that a
        # file with a header always has one.
        if provenance is not None:
            write_provenance(self.path, provenance)
        self._fh.truncate(0)
        self._append(_line(self.columns).encode())

    def _read_existing(self, provenance: Mapping[str, Any] | None) -> None:
        self._fh.seek(0)
        raw = self._fh.read() or b""
        # A line cut short by a kill (no newline at its end) is dropped, its task runs again; the file
        # is cut only once everything else has been checked, so a refused resume leaves it as it was.
        whole = raw[: raw.rfind(b"\n") + 1]
        if whole:
            if provenance is not None:
                self._check_provenance(provenance)  # first: it names what differs, the columns only that they do
            records = _records(_decode(whole, self.path), self.path)
            _, found = next(records)
            if found != self.columns:
                raise XbarError(f"{self.path}: its columns {found} are not this spec's {self.columns}")
            for line, fields in records:
                key = task_key(_check_row(fields, found, self.path, line, cut=False), self.params)
                if key in self.lines:
                    raise XbarError(
                        f"{self.path}, line {line}: the same task as line {self.lines[key]} (a duplicated row)"
                    )
                if self._is_task is not None and not self._is_task(key):
                    raise XbarError(f"{self.path}, line {line}: a row of no task of this spec ({', '.join(key)})")
                self.lines[key] = line
            self.done = set(self.lines)
        if len(whole) < len(raw):
            self._fh.truncate(len(whole))

    def _check_provenance(self, provenance: Mapping[str, Any]) -> None:
        recorded = read_provenance(self.path)
        if recorded is None:
            raise XbarError(
                f"{self.path}: no {provenance_path(self.path).name} beside it (a file from before xbar recorded "
                "provenance, or moved without it), so it cannot be checked against this sweep; "
                "--resume refused: write to a new file"
            )
        differences = provenance_differences(recorded, provenance)
        if differences:
            raise XbarError(
                f"{self.path} was written by another sweep: {'; '.join(differences)}; "
                "--resume refused: write to a new file, or resume with the original spec"
            )

    def _append(self, data: bytes) -> None:
        # The descriptor is O_APPEND: each write lands at the end, whole (a regular file's write is
        # not cut by a signal); a short write (a full disk) is finished or raises.
        view = memoryview(data)
        while view:
            written = self._fh.write(view)
            view = view[written or 0 :]
        os.fsync(self._fh.fileno())

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (values keyed by column name) with a single write on the O_APPEND descriptor, then fsync."""
        self._append(_line([format_value(row[c]) for c in self.columns]).encode())

    def close(self) -> None:
        """Release the lock and close the file."""
        self._fh.close()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
