"""Device error models: the registry, a model registered in one place and used end to end."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from xbar import device_models
from xbar.cli import main
from xbar.config import Device, Hardware, Tile, resolve
from xbar.crossbar import AnalogMatrix, InputRange
from xbar.device_models import ERROR_MODELS, ErrorModel, error_model, register_error_model
from xbar.errors import ConfigError
from xbar.kernels import devices as kernels


def _toy_sigma(g, scale, g_min_us, g_max_us, v_read_v):
    """A shot-noise-like width: scale sqrt(G / uS) uS."""
    return scale * np.sqrt(np.maximum(g.astype(np.float64), 0.0))


@pytest.fixture
def toy_model(monkeypatch):
    """A toy model registered for one test (the registry is restored after it)."""
    monkeypatch.setattr(device_models, "ERROR_MODELS", dict(ERROR_MODELS))
    return register_error_model(ErrorModel("toy-sqrt", "sigma_G = scale sqrt(G)", "a test", function=_toy_sigma))


def test_every_built_in_model_is_complete():
    for name, model in ERROR_MODELS.items():
        assert model.name == name and model.description and model.source
        assert model.form in kernels.FORMS  # built-in models run inside the kernels
    assert set(ERROR_MODELS) >= {"additive", "proportional", "reram-program", "sonos-program", "sonos-read",
                                 "pcm-program"}


def test_unknown_model_is_a_one_line_error_listing_the_choices():
    with pytest.raises(ConfigError, match="device.prog_model: 'nope' is not an error model .*additive"):
        Device(prog_model="nope")
    result = CliRunner().invoke(main, ["run", "--hardware", "paper", "--set", "device.read_model=nope", "--limit", "5"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "nope" in result.stderr


def test_a_model_needs_exactly_one_way_to_compute_sigma():
    with pytest.raises(ConfigError):
        ErrorModel("both", "", "", form="range", function=_toy_sigma)
    with pytest.raises(ConfigError):
        ErrorModel("neither", "", "")
    with pytest.raises(ConfigError, match="exists already"):
        register_error_model(ErrorModel("additive", "", "", form="range"))


def test_registered_model_draws_its_own_widths(toy_model):
    """Programmed conductances standardized by the toy model's width are N(0, 1): moments within n-derived bounds."""
    n_rows, n_cols, scale = 100, 200, 0.3
    hw = Hardware(device=Device(g_min_us=0.0, g_max_us=40.0, prog_model="toy-sqrt", prog_sigma=scale, clip=False),
                  tile=Tile(256, 256))
    kernel = np.full((n_rows, n_cols), 0.5, np.float32)  # G+ targets 20 uS, G- targets 0 uS (width 0)
    kernel[0, 0] = 1.0  # w_scale = 1: every other weight is half of it
    g = AnalogMatrix(kernel, None, hw, InputRange(1.0, False), seed=3, layer=0).conductances[0]
    z = (g[0].astype(np.float64).ravel()[1:] - 20.0) / (scale * np.sqrt(20.0))
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var(ddof=1) - 1) < 5 * np.sqrt(2 / (n - 1))
    np.testing.assert_array_equal(g[1], 0.0)  # sqrt(0) = 0: devices at g_min = 0 keep their target


def test_registered_model_runs_end_to_end_from_the_command_line(toy_model, shipped_weights):
    weights = str(shipped_weights / "mlp-mnist.h5")
    runs = {}
    for sigma in (0.0, 2.0):
        result = CliRunner().invoke(main, ["run", weights, "--hardware", "paper", "--set", "device.prog_model=toy-sqrt",
                                           "--set", f"device.prog_sigma={sigma}", "--limit", "300", "--json"])
        assert result.exit_code == 0, result.output
        runs[sigma] = json.loads(result.stdout)
    assert runs[2.0]["hardware"]["device"]["prog_model"] == "toy-sqrt"
    # sigma 2 sqrt(G) on G in [0, 100] uS is a width of up to 20% of the range: the chip must get worse.
    assert runs[2.0]["accuracy"] < runs[0.0]["accuracy"]


def test_solver_is_chosen_by_the_configuration():
    assert resolve("ideal").tile.solver == "dense"
    result = CliRunner().invoke(main, ["run", "--hardware", "paper", "--set", "tile.solver=spice", "--limit", "5"])
    assert result.exit_code == 2 and "tile.solver" in result.stderr and "dense" in result.stderr
    assert error_model("additive").form == "range"
