"""`xbar plot`: the output's extension chooses the format, --dpi the PNG's resolution."""

import struct

import pytest
from click.testing import CliRunner

from xbar.cli import main

pytest.importorskip("matplotlib")

HEADER = "weights,arch,dataset,sigma_syn,chip,seed,accuracy,n_images,energy_per_inference_j,seconds\n"


@pytest.fixture
def results(tmp_path):
    rows = [f"w.h5,mlp,mnist,{s},{c},{c},{0.9 - s - 0.01 * c},100,,0.1\n" for s in (0.0, 0.1) for c in range(3)]
    # One chip at a third point: a mean with no interval, drawn without a band.
    rows.append("w.h5,mlp,mnist,0.2,0,0,0.6,100,,0.1\n")
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "".join(rows))
    return path


def _png_size(path):
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


@pytest.mark.parametrize("suffix,magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_the_extension_chooses_the_format(results, tmp_path, suffix, magic):
    out = tmp_path / f"fig.{suffix}"
    result = CliRunner().invoke(main, ["plot", str(results), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)


def test_dpi_scales_the_png(results, tmp_path):
    sizes = []
    for dpi in (50, 100):
        out = tmp_path / f"fig{dpi}.png"
        assert CliRunner().invoke(main, ["plot", str(results), "-o", str(out), "--dpi", str(dpi)]).exit_code == 0
        sizes.append(_png_size(out))
    assert sizes[1][0] == pytest.approx(2 * sizes[0][0], abs=2)
