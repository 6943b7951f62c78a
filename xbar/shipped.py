"""Where the shipped weights and test sets are: the checkout's ``data/`` folder or its installed copy.

The repository keeps them in its top-level ``data/`` folder (``weights/``, ``mnist/``,
``fashion-mnist/``), and a checkout or an editable install (``pip install -e .``) reads them there.
A wheel (``pip install .``) installs the same files as setuptools ``data_files`` (``setup.cfg``)
under ``<data root>/share/xbar/data``, where the data root is the install scheme's: the venv for
a venv, ``/usr/local`` or ``/usr`` for a system-wide install, ``~/.local`` for ``--user``.
:func:`data_dir` takes the first of:

1. ``$XBAR_SHIPPED_DATA``, when set (taken as given);
2. the checkout's ``data/``: beside the ``xbar`` package, next to ``setup.cfg``;
3. the copy that the installed distribution's RECORD lists (``importlib.metadata``), wherever pip
   put it;
4. ``share/xbar/data`` under the data roots of the default and user install schemes
   (``sysconfig``), and beside the package (``pip install --target``).

It imports nothing of xbar, so that anything may import it.
"""

from __future__ import annotations

import importlib.metadata
import os
import sysconfig
from pathlib import Path

ENV_VAR = "XBAR_SHIPPED_DATA"
"""Environment variable naming the folder of the shipped data, overriding the search."""

INSTALL_SUBDIR = ("share", "xbar", "data")
"""Where a wheel installs the shipped data, below the data root (setup.cfg ``[options.data_files]``)."""

_PACKAGE = Path(__file__).resolve().parent
_MARKER = ("weights", "mlp-mnist.h5")
"""A file every copy of the shipped data holds (the quick start's default weights)."""


def _is_data_dir(folder: Path) -> bool:
    return folder.joinpath(*_MARKER).is_file()


def _checkout() -> Path | None:
    root = _PACKAGE.parent
    if (root / "setup.cfg").is_file() and _is_data_dir(root / "data"):
        return root / "data"
    return None


def _from_metadata() -> Path | None:
    """The installed copy listed in the RECORD of the distribution that holds this package."""
    marker = "/".join((*INSTALL_SUBDIR, *_MARKER))
    try:
        dists = list(importlib.metadata.distributions(name="xbar"))
    except (OSError, ValueError):
        return None
    found: list[tuple[bool, Path]] = []
    for dist in dists:
        try:
            files = dist.files or []
        except (OSError, ValueError):
            continue
        owner, data = False, None
        for entry in files:
            name = str(entry).replace("\\", "/")
            if name == "xbar/shipped.py":
                owner = Path(str(dist.locate_file(entry))).resolve() == Path(__file__).resolve()
            elif name.endswith(marker):
                data = Path(str(dist.locate_file(entry))).resolve().parents[len(_MARKER) - 1]
        if data is not None and _is_data_dir(data):
            found.append((owner, data))
    # The distribution this very module came from first: another one (an egg-info in the working
    # directory, an older install further down sys.path) only when that one has none.
    found.sort(key=lambda item: not item[0])
    return found[0][1] if found else None


def _scheme_roots() -> list[Path]:
    roots = [Path(sysconfig.get_path("data"))]
    try:
        roots.append(Path(sysconfig.get_path("data", sysconfig.get_preferred_scheme("user"))))
    except (KeyError, AttributeError):
        pass
    return [*roots, _PACKAGE.parent]


def data_dir() -> Path:
    """Folder holding the shipped weights (``weights/``) and test sets (``mnist/``, ``fashion-mnist/``).

    See the module's docstring for the search. When nothing is found: the checkout's ``data/`` in a
    checkout, else where a wheel would have put the data, so that a "not found" names a sensible path.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    found = _checkout() or _from_metadata()
    if found is not None:
        return found
    for root in _scheme_roots():
        if _is_data_dir(root.joinpath(*INSTALL_SUBDIR)):
            return root.joinpath(*INSTALL_SUBDIR)
    if (_PACKAGE.parent / "setup.cfg").is_file():
        return _PACKAGE.parent / "data"
    return _scheme_roots()[0].joinpath(*INSTALL_SUBDIR)
