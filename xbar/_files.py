"""Files in and out: only regular files are read, and a reader never sees a half-written output file.

Every failure here is an :class:`~xbar.errors.XbarError` naming the path and the
problem, so a bad path never becomes a traceback (or, for a FIFO, a hang).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from .errors import XbarError


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_regular_file(path: str | os.PathLike, max_bytes: int | None = None) -> Path:
    """``path`` as a :class:`Path` if it is an existing regular file, else a one-line :class:`XbarError`.

    A folder, FIFO, socket or device is refused at once (opening a FIFO would
    block until a writer came). ``max_bytes`` refuses a larger file before it is read.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise XbarError(f"{path}: no such file") from None
    except OSError as exc:
        raise XbarError(f"{path}: cannot read ({_reason(exc)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise XbarError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise XbarError(f"{path}: not a regular file (a FIFO, socket or device); give a file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise XbarError(f"{path}: {info.st_size:,} bytes, more than the {max_bytes:,} this file may have")
    return path


def read_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file (see :func:`check_regular_file`); any OS error is an :class:`XbarError`."""
    path = check_regular_file(path, max_bytes)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise XbarError(f"{path}: cannot read ({_reason(exc)})") from None


def read_text(path: str | os.PathLike, max_bytes: int | None = 64 * 2**20) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (default 64 MiB), or an :class:`XbarError`."""
    raw = read_bytes(path, max_bytes)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XbarError(f"{path}: not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})") from None


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes, read in 1 MiB blocks; an unreadable file is an :class:`XbarError`."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise XbarError(f"{path}: cannot read ({_reason(exc)})") from None
    return digest.hexdigest()


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`Path` if a file can be written there, else a one-line :class:`XbarError`.

    Missing parent folders may be created later (:func:`atomic_path` does),
    so the nearest existing one must be a writable folder. Nothing is created
    here: the check runs before long work starts, so that a bad ``-o`` fails
    at once rather than after the work, and leaves no trace.
    """
    path = Path(path)
    if path.is_dir():
        raise XbarError(f"{path}: is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise XbarError(f"{path}: exists and is not a regular file")
    if path.exists() and not os.access(path, os.W_OK):
        raise XbarError(f"{path}: exists and is not writable")
    _check_writable_ancestor(path.parent, path)
    return path


def _check_writable_ancestor(folder: Path, path: Path) -> None:
    """Raise unless the nearest existing ancestor of ``folder`` (itself included) is a writable folder."""
    ancestor = folder.absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise XbarError(f"{path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise XbarError(f"{path}: cannot write in {ancestor} (permission denied)")
    # Permission bits do not tell everything (root passes them; /proc or a read-only mount still
    # refuse): try an unnamed file, which Linux creates without touching the folder's entries.
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise XbarError(f"{path}: cannot write in {ancestor} ({_reason(exc)})") from None


def check_output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`Path` if it is, or could be made, a writable folder; else an :class:`XbarError`.

    Nothing is created here (see :func:`check_output_path`).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise XbarError(f"{path}: exists and is not a folder")
    _check_writable_ancestor(path, path)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it.

    The file gets the permissions of a normal new file (0666 less the umask),
    not mkstemp's private 0600. A path that cannot be written is an :class:`XbarError`.
    """
    path = check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise XbarError(f"{path}: cannot write ({_reason(exc)})") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
