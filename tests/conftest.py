"""Shared fixtures. Tests never touch the network or the user's ~/.cache.

XBAR_HOME points at a fresh temporary store for the session. Where the
project's ``../shared/data`` folder exists (CI puts it beside the clone) and
XBAR_DATA is unset, XBAR_DATA points at it, so that tests needing the training
sets find them there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tolerances live in one place (STYLE.md section 5).
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def pytest_configure(config):
    os.environ["XBAR_HOME"] = tempfile.mkdtemp(prefix="xbar-test-home-")
    # Keras (the Keras import tests) writes its settings under KERAS_HOME, by default ~/.keras.
    os.environ.setdefault("KERAS_HOME", os.path.join(os.environ["XBAR_HOME"], "keras"))
    if "XBAR_DATA" not in os.environ and SHARED_DATA.is_dir():
        os.environ["XBAR_DATA"] = str(SHARED_DATA)


def has_training_set(name: str = "mnist") -> bool:
    """Whether the training split of dataset ``name`` can be located."""
    from xbar import data
    from xbar.errors import DataError

    try:
        data.locate(name, "train")
        return True
    except DataError:
        return False


@pytest.fixture
def rng():
    """A seeded generator: test data is random but fixed."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def shipped_weights():
    """Folder of the shipped trained weights."""
    return ROOT / "data" / "weights"
