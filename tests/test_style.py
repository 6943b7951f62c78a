"""Habits the suite enforces: ruff's lint on the whole tree (xbar/, tests/, bench/, docs/examples/), ruff's format
and mypy on xbar/ (settings in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [
    ["ruff", "check", "."],
    ["ruff", "format", "--check", "xbar"],
    ["mypy"],
], ids=["ruff-check", "ruff-format", "mypy"])
def test_xbar_is_clean(command):
    result = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
