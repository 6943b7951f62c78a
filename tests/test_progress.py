"""Progress display: log lines at most every interval off a terminal, nothing when quiet."""

import io

from xbar.progress import Progress, format_duration


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _lines(stream):
    return [line for line in stream.getvalue().splitlines() if line]


def test_off_a_terminal_one_line_at_most_every_interval_with_an_eta():
    clock, stream = _Clock(), io.StringIO()
    with Progress("sweep", 100, stream=stream, interval_s=30.0, clock=clock) as progress:
        for _ in range(100):
            clock.now += 1.0  # one unit per second: 100 s in all
            progress.advance()
    lines = _lines(stream)
    # A line when 30 s have passed since the last (at 30, 60, 90 s), then one for the end.
    assert len(lines) == 4
    assert lines[0] == "xbar: sweep: 30/100 (30%), 30s elapsed, ETA 1m10s"
    assert lines[2].startswith("xbar: sweep: 90/100")
    assert lines[-1] == "xbar: sweep: 100/100 (100%), 1m40s elapsed"


def test_short_work_off_a_terminal_prints_nothing():
    clock, stream = _Clock(), io.StringIO()
    with Progress("run", 10, stream=stream, clock=clock) as progress:
        for _ in range(10):
            clock.now += 0.1
            progress.advance()
    assert stream.getvalue() == ""


def test_quiet_prints_nothing_at_all():
    clock, stream = _Clock(), io.StringIO()
    with Progress("sweep", 10, stream=stream, quiet=True, clock=clock) as progress:
        for _ in range(10):
            clock.now += 60.0
            progress.advance()
        progress.note("xbar: compiling")
    assert stream.getvalue() == ""


def test_eta_is_the_mean_rate_times_the_work_left():
    clock = _Clock()
    with Progress("x", 10, stream=io.StringIO(), clock=clock) as progress:
        assert progress.eta_s() is None
        clock.now += 8.0
        progress.advance(4)
        assert progress.eta_s() == 12.0


def test_format_duration():
    assert [format_duration(s) for s in (0, 42, 185, 3720)] == ["0s", "42s", "3m05s", "1h02m"]
