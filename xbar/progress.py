"""Progress of long work on stderr: a bar with ETA on a terminal, log lines elsewhere, nothing when quiet.

Batch jobs (stderr a file or a pipe) get one line at most every ``interval_s``
seconds (tasks done, total, elapsed, ETA), so a log shows a sweep is alive
without filling up. The command line owns the display; library code reports
through a plain ``progress`` callback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

LOG_INTERVAL_S = 30.0
"""Least time between two progress lines when stderr is not a terminal (s)."""


def format_duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``3m05s`` or ``42s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """A progress display for ``total`` units of work, used as a context manager.

    Parameters
    ----------
    label : str
        What is being done, shown first.
    total : int
        Units of work (may be set later with :meth:`set_total`).
    quiet : bool
        Show nothing at all.
    stream : text stream
        Where to write (default: stderr).
    interval_s : float
        Least time between log lines when ``stream`` is not a terminal (s).
    clock : callable
        Seconds on a monotonic clock (for tests).
    """

    def __init__(
        self,
        label: str,
        total: int = 0,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.done = label, int(total), 0
        self.quiet, self.interval_s, self.clock = quiet, interval_s, clock
        self.stream = sys.stderr if stream is None else stream
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)()) and not quiet
        self._bar: Any = None
        self._started = self._last_line = 0.0
        self._lines = 0

    def __enter__(self) -> Progress:
        self._started = self._last_line = self.clock()
        if self.terminal:
            import click

            self._bar = click.progressbar(
                length=max(self.total, 1),
                label=self.label,
                file=self.stream,
                show_eta=True,
                show_percent=True,
                show_pos=True,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> Literal[False]:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif self._lines and exc[0] is None and not self.quiet:
            self._line()  # a log that showed progress also shows the end
        return False

    def set_total(self, total: int) -> None:
        """Change the amount of work (units)."""
        self.total = int(total)
        if self._bar is not None:
            self._bar.length = max(self.total, 1)

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more units done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self.quiet and self.clock() - self._last_line >= self.interval_s:
            self._line()

    def note(self, message: str) -> None:
        """Write one line of news (unless quiet), on a line of its own even while a bar is drawn."""
        if self.quiet:
            return
        prefix = "\n" if self._bar is not None else ""
        print(prefix + message, file=self.stream, flush=True)

    def eta_s(self) -> float | None:
        """Estimated seconds left from the mean rate so far, None before the first unit."""
        if self.done <= 0 or self.total <= 0:
            return None
        elapsed = self.clock() - self._started
        return elapsed / self.done * max(self.total - self.done, 0)

    def _line(self) -> None:
        now = self.clock()
        self._last_line = now
        self._lines += 1
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = self.eta_s()
        tail = "" if eta is None or self.done >= self.total else f", ETA {format_duration(eta)}"
        print(
            f"xbar: {self.label}: {self.done}/{self.total}{percent}, "
            f"{format_duration(now - self._started)} elapsed{tail}",
            file=self.stream,
            flush=True,
        )
