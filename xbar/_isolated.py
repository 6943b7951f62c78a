"""Child processes: a function run in a forked child with a deadline and a memory cap, and children that end
with their parent.

A damaged input can make a C library loop forever or crash (fuzzing the HDF5
reader found both), which no exception handler can catch: :func:`call_in_child`
runs such code in a forked child and reports a hang, a crash or a kill as a
:class:`ChildFailed`. :func:`die_with_parent` is for any child of xbar's (the
reader, sweep workers): the kernel ends it when its parent dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pickle
import selectors
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends a process when its parent dies (Linux)."""


class ChildFailed(Exception):
    """The child gave no answer: ``kind`` is ``timeout``, ``crashed`` (a signal), ``killed`` (SIGKILL from
    outside: the out-of-memory killer or a person), ``exited`` (a bare exit) or ``memory`` (MemoryError)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}{': ' + detail if detail else ''}")
        self.kind, self.detail = kind, detail


def die_with_parent(parent: int) -> bool:
    """Have the kernel SIGKILL this process when ``parent`` dies (Linux); exit at once if it already has.

    Returns whether the kernel will do it (False elsewhere: the caller needs
    another way, such as polling ``os.getppid()``).
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            armed = ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL)) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    return armed


def call_in_child(
    function: Callable[[Any], Any],
    argument: Any,
    timeout_s: float,
    memory_headroom_bytes: int,
    passed: tuple[type[BaseException], ...] = (),
) -> Any:
    """``function(argument)`` computed in a forked child, its value pickled back through a pipe.

    An exception of a type in ``passed`` is raised here as the child raised it
    (pickled); MemoryError and no answer by ``timeout_s`` seconds, a crash or an
    exit are a :class:`ChildFailed`; any other exception, a bug, is a RuntimeError
    holding the child's traceback. The child's address space is capped at its
    size at the fork plus ``memory_headroom_bytes`` (Linux), its output goes
    nowhere, and it never outlives this call or this process.
    """
    parent = os.getpid()
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(ImportError, AttributeError, OSError):
        import fcntl

        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 2**20)  # Linux: 1 MiB per wake-up rather than 64 KiB
    pid = _fork()
    if pid == 0:  # pragma: no cover (the child never returns; its outcome is what the parent tests)
        os.close(read_fd)
        _child(function, argument, passed, write_fd, timeout_s, memory_headroom_bytes, parent)
    os.close(write_fd)
    payload, status = None, None
    try:
        payload, status = _receive(read_fd, pid, time.monotonic() + timeout_s)
    finally:
        os.close(read_fd)
        if status is None:  # not reaped: timed out, or interrupted (Ctrl-C); it must not outlive the call
            _kill(pid)
    if payload is None:
        if status is None:
            raise ChildFailed("timeout", f"{timeout_s:.0f} s")
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
            raise ChildFailed("killed" if number == signal.SIGKILL else "crashed", name)
        raise ChildFailed("exited", f"exit status {os.waitstatus_to_exitcode(status)}")
    outcome, value = pickle.loads(payload)
    if outcome == "ok":
        return value
    if outcome == "passed":
        raise value
    if outcome == "memory":
        raise ChildFailed("memory")
    raise RuntimeError(f"the child process failed; its traceback:\n{value}")


def _fork() -> int:
    # Holding h5py's lock across the fork (where h5py is loaded): no other thread of ours is inside HDF5
    # when the child is copied, so the child never starts with that lock held by a thread it lacks.
    h5py = sys.modules.get("h5py")
    lock = h5py._objects.phil if h5py is not None else contextlib.nullcontext()
    with lock:
        return os.fork()


def _receive(fd: int, pid: int, deadline: float) -> tuple[bytearray | None, int | None]:
    """The child's message from ``fd`` and its wait status; None for what did not come by ``deadline``.

    The message is an 8-byte length and that many bytes. The child's exit is
    watched as well as the pipe: another child forked meanwhile may hold this
    pipe open, so EOF alone would not tell a crash.
    """
    os.set_blocking(fd, False)
    buffer = bytearray(8)  # the length, then the message (read in place: it may be gigabytes)
    filled, sized = 0, False
    status: int | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            while filled < len(buffer):
                try:
                    n = os.readv(fd, [memoryview(buffer)[filled:]])
                except BlockingIOError:
                    break
                if n == 0:  # EOF: no writer left
                    break
                filled += n
                if filled == len(buffer) and not sized:
                    (size,) = struct.unpack("<Q", buffer)
                    buffer, filled, sized = bytearray(size), 0, True
            if sized and filled == len(buffer):
                return buffer, _reap(pid, block=True)
            if status is not None:  # exited, and everything it wrote has been drained
                return None, status
            status = _reap(pid, block=False)
            if status is not None:
                continue  # drain what it wrote before exiting, then decide
            left = deadline - time.monotonic()
            if left <= 0:
                return None, None
            selector.select(min(left, 0.05))


def _reap(pid: int, block: bool) -> int | None:
    """The child's wait status once it has exited (None while it runs)."""
    try:
        got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): it has exited, status unknown
        return 0
    return status if got else None


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _child(
    function: Callable[[Any], Any],
    argument: Any,
    passed: tuple[type[BaseException], ...],
    fd: int,
    timeout_s: float,
    memory_headroom_bytes: int,
    parent: int,
) -> None:  # pragma: no cover (in the child)
    """The child: compute, write the outcome to ``fd``, exit without running the parent's cleanup."""
    code = 0
    try:
        die_with_parent(parent)
        # The parent's handlers are not the child's business; SIGALRM's default action ends the child even
        # inside an endless loop in C, should the parent die before it can kill it.
        with contextlib.suppress(ValueError):  # only the main thread may; a fork's thread is the child's main
            for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
                signal.signal(number, signal.SIG_DFL)
        signal.alarm(int(timeout_s) + 5)
        # A crash is reported by the parent in one line: no fault dump, no library diagnostics on the terminal.
        faulthandler.disable()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        _cap_memory(memory_headroom_bytes)
        try:
            outcome: tuple[str, Any] = ("ok", function(argument))
        except passed as exc:
            outcome = ("passed", exc)
        except MemoryError:
            outcome = ("memory", None)
        except BaseException:
            outcome = ("bug", traceback.format_exc())
        payload = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as out:
            out.write(struct.pack("<Q", len(payload)))
            out.write(payload)
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _cap_memory(headroom_bytes: int) -> None:  # pragma: no cover (runs in the child)
    """Cap this process's address space at what it has plus ``headroom_bytes`` (Linux).

    Then an allocation that a damaged input drives inside a C library fails
    (an error) rather than exhausting the machine.
    """
    try:
        import resource  # imported here, in the child, only where it exists (not on Windows)

        with open("/proc/self/statm") as statm:
            current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = current + headroom_bytes
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft == resource.RLIM_INFINITY or cap < soft:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, ValueError):
        pass  # no /proc or no rlimits: the callers' declared-size limits still hold
