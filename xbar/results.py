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
resumes a file by the keys of the rows already in it.
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import XbarError
from .stats import summarize

KEY_COLUMNS = ("weights", "arch", "dataset")
"""What was run: the weights file, its architecture, the test set."""
RESULT_COLUMNS = ("chip", "seed", "accuracy", "n_images", "energy_per_inference_j", "seconds")
"""What came out: chip instance index and seed, accuracy in [0, 1], test images, J per inference, wall time (s)."""
NON_PARAMS = frozenset(KEY_COLUMNS + RESULT_COLUMNS)
"""Every column that is not a swept parameter."""


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


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Rows of a results CSV, as dicts of strings keyed by column name."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise XbarError(f"{path}: cannot read ({exc.strerror})") from None
    if not rows or "accuracy" not in rows[0]:
        raise XbarError(f"{path}: not an xbar results file (no rows, or no 'accuracy' column)")
    return rows


def swept_params(rows: list[dict]) -> list[str]:
    """Parameter columns of a results file, in file order."""
    return params_of(rows[0])


def summarize_rows(rows: list[dict]) -> list[dict]:
    """One entry per (weights, parameters): mean, std and 95% CI of accuracy over chip instances.

    Each entry holds weights, arch, dataset and the swept parameters as the rows
    do (strings), then ``n`` (chip instances), ``mean``, ``std``, ``ci_low`` and
    ``ci_high``; entries come in the order their first row does.
    """
    params = swept_params(rows)
    groups: dict[tuple, list[float]] = defaultdict(list)
    first: dict[tuple, dict] = {}
    for row in rows:
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
                "ci_low": stats["ci95"][0],
                "ci_high": stats["ci95"][1],
            }
        )
    return out


class ResultsFile:
    """The results CSV: header once, then one complete line per ``write`` call, flushed.

    Parameters
    ----------
    path : path
    columns : list of str
        The header (:func:`header`).
    resume : bool
        Continue an existing file: drop a line cut short by a kill, check the header,
        and collect in ``done`` the :func:`task_key` of every row. Without it an
        existing non-empty file is an error.
    """

    def __init__(self, path: str | os.PathLike, columns: list[str], resume: bool):
        self.path, self.columns = Path(path), list(columns)
        self.params = params_of(self.columns)
        self.done: set[tuple[str, ...]] = set()
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and not resume:
            raise XbarError(f"{self.path} exists: pass --resume to continue it, or choose another file")
        if exists:
            self._read_existing()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(_line(self.columns))

    def _read_existing(self) -> None:
        raw = self.path.read_bytes()
        if not raw.endswith(b"\n"):
            # A line cut short by a kill: drop it (its task will run again).
            cut = raw.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
            raw = raw[:cut]
        reader = csv.reader(io.StringIO(raw.decode()))
        found = next(reader, None)
        if found != self.columns:
            raise XbarError(f"{self.path}: its columns {found} are not this spec's {self.columns}")
        for values in reader:
            self.done.add(task_key(dict(zip(found, values)), self.params))

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (values keyed by column name) with a single write on an O_APPEND descriptor, then fsync."""
        data = _line([format_value(row[c]) for c in self.columns]).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
