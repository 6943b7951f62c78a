"""Installs: a wheel (built from the sdist) works from anywhere, and the kernel cache finds a writable home.

Nothing is downloaded: sdist and wheel are built by setuptools' own backend in this interpreter,
and pip installs the wheel with ``--no-index --no-deps`` into a fresh venv that sees this
environment's dependencies (numpy, numba, h5py, click, ...) through a ``.pth`` file.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPENDENCIES = ("numpy", "numba", "llvmlite", "h5py", "click", "threadpoolctl", "tomli")
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", ".benchmarks", "*.py[cod]"
)


def _clean_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "XBAR_HOME": str(home), "XBAR_NUMBA_CACHE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("PYTHONPATH", "XBAR_SHIPPED_DATA", "NUMBA_CACHE_DIR", "PYTHONHOME"):
        env.pop(name, None)
    return env


def _check(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout}\n{result.stderr}"
    return result


def _build(backend_call: str, source: Path, out: Path) -> Path:
    code = f"from setuptools import build_meta; print(build_meta.{backend_call}({str(out)!r}))"
    name = _check([sys.executable, "-c", code], cwd=source, env=_clean_env(out.parent / "home")).stdout.split()[-1]
    return out / name


def _dependency_paths() -> list[str]:
    paths = []
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            folder = str(Path(spec.origin).parent.parent)
            if folder not in paths:
                paths.append(folder)
    return paths


def _pip_version() -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in importlib.metadata.version("pip").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return (0,)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv holding only the wheel of xbar, built from an sdist of this tree: (venv, its python, xbar)."""
    if importlib.util.find_spec("setuptools.command.bdist_wheel") is None and importlib.util.find_spec("wheel") is None:
        pytest.skip("cannot build a wheel offline: setuptools >= 70.1 (or the wheel package) is not installed")
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE)
    sdist = _build("build_sdist", source, work / "sdist")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        archive.extractall(work / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    top = names[0].split("/")[0]
    assert f"{top}/data/weights/mlp-mnist.h5" in names and f"{top}/data/mnist/t10k-images-idx3-ubyte.gz" in names
    wheel = _build("build_wheel", work / "unpacked" / top, work / "wheel")
    with zipfile.ZipFile(wheel) as archive:
        shipped = [n for n in archive.namelist() if "/share/xbar/data/" in n]
    assert len(shipped) == len([p for p in (ROOT / "data").rglob("*") if p.is_file()]), shipped

    venv = work / "venv"
    python = venv / "bin" / "python"
    install = ["install", "--no-index", "--no-deps", "--disable-pip-version-check", str(wheel)]
    if _pip_version() >= (22, 3):  # this pip installs into the new venv (--python): no ensurepip, 10 s saved
        _check([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        _check([sys.executable, "-m", "pip", "--python", str(python), *install])
    else:
        _check([sys.executable, "-m", "venv", str(venv)])
        _check([str(python), "-m", "pip", *install])
    site = Path(_check([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (site / "_xbar_test_dependencies.pth").write_text("\n".join(_dependency_paths()) + "\n")
    return venv, python, venv / "bin" / "xbar"


def test_wheel_install_runs_the_quick_start_from_anywhere(installed, tmp_path):
    venv, python, xbar = installed
    env = _clean_env(tmp_path / "home")
    code = "import json, xbar, xbar.data; print(json.dumps([xbar.__file__, str(xbar.data.SHIPPED_DIR)]))"
    located = json.loads(_check([str(python), "-c", code], cwd=tmp_path, env=env).stdout)
    package, shipped = (Path(p) for p in located)
    assert package.resolve().is_relative_to(venv.resolve())
    assert shipped.resolve() == (venv / "share" / "xbar" / "data").resolve()

    report = json.loads(_check([str(xbar), "run", "--limit", "200", "--json"], cwd=tmp_path, env=env).stdout)
    assert Path(report["weights"]) == shipped / "weights" / "mlp-mnist.h5"
    assert report["dataset"] == "mnist" and report["n_images"] == 200 and report["accuracy"] > 0.9

    rnn = shipped / "weights" / "rnn-mnist-t7.h5"
    info = json.loads(_check([str(xbar), "info", str(rnn), "--json"], cwd=tmp_path, env=env).stdout)
    assert info["arch"] == "rnn" and info["dataset"] == "mnist"

    # The override wins over the installed copy.
    moved = tmp_path / "moved"
    shutil.copytree(shipped, moved)
    report = json.loads(
        _check(
            [str(xbar), "run", "--limit", "50", "--json"], cwd=tmp_path, env={**env, "XBAR_SHIPPED_DATA": str(moved)}
        ).stdout
    )
    assert Path(report["weights"]) == moved / "weights" / "mlp-mnist.h5"


def test_wheel_install_with_unwritable_package_caches_kernels_in_xbar_home(installed, tmp_path):
    """A read-only install (here: kernels/__pycache__ is a file, which stops root too) caches under $XBAR_HOME."""
    venv, python, xbar = installed
    code = "import xbar.kernels as k; print(k.__file__)"
    kernels = Path(_check([str(python), "-c", code], cwd=tmp_path, env=_clean_env(tmp_path)).stdout.strip()).parent
    blocker = kernels / "__pycache__"
    shutil.rmtree(blocker, ignore_errors=True)
    blocker.write_text("not a folder\n")
    try:
        env = _clean_env(tmp_path / "home")
        command = [str(xbar), "run", "--hardware", "ideal", "--limit", "20", "--json"]
        first = _check(command, cwd=tmp_path, env=env)
        second = _check(command, cwd=tmp_path, env=env)
    finally:
        blocker.unlink()
    assert json.loads(first.stdout)["accuracy"] > 0.9
    cached = list((tmp_path / "home" / "numba").glob("xbar-kernels-*/*/*.nbi"))
    assert cached, "no kernel index written under $XBAR_HOME/numba"
    assert "compiling" in first.stderr and "compiling" not in second.stderr, (first.stderr, second.stderr)


KERNEL_PROBE = textwrap.dedent(
    """
    import json, numpy as np
    from kernels_copy import _jit, rng
    warm = _jit.cache_is_warm()
    said = []
    with _jit.announce_compilation(said.append):
        rng.normal(np.uint64(7), np.uint64(3))
    print(json.dumps(dict(dir=_jit.CACHE_DIR, caching=_jit.CACHING, warm=warm, said=said)))
    """
)


def _probe(package_parent: Path, home: Path) -> dict:
    env = {**_clean_env(home), "PYTHONPATH": str(package_parent)}
    return json.loads(_check([sys.executable, "-c", KERNEL_PROBE], cwd=package_parent, env=env).stdout)


def _kernels_copy(parent: Path) -> Path:
    package = parent / "kernels_copy"
    package.mkdir(parents=True)
    for source in (ROOT / "xbar" / "kernels").glob("*.py"):
        (package / source.name).write_text(source.read_text())
    return package


def test_kernel_cache_lives_beside_the_kernels_when_writable(tmp_path):
    package = _kernels_copy(tmp_path / "writable")
    first = _probe(tmp_path / "writable", tmp_path / "home")
    assert Path(first["dir"]).parent == package / "__pycache__" and first["caching"]
    assert not first["warm"] and len(first["said"]) == 1 and first["dir"] in first["said"][0]
    second = _probe(tmp_path / "writable", tmp_path / "home")
    assert second["warm"] and second["said"] == []
    assert not (tmp_path / "home" / "numba").exists()


def test_kernel_cache_falls_back_to_xbar_home_when_the_package_is_read_only(tmp_path):
    package = _kernels_copy(tmp_path / "readonly")
    (package / "__pycache__").write_text("a file where the cache folder would go: unwritable, even for root\n")
    first = _probe(tmp_path / "readonly", tmp_path / "home")
    folder = Path(first["dir"])
    assert folder.parent == tmp_path / "home" / "numba" and folder.name.startswith("xbar-kernels-")
    assert first["caching"] and not first["warm"] and len(first["said"]) == 1
    assert list(folder.glob("*/rng.normal-*.nbi")), "numba wrote no index into the fallback folder"
    second = _probe(tmp_path / "readonly", tmp_path / "home")
    assert second["dir"] == first["dir"] and second["warm"] and second["said"] == []
