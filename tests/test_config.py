"""Hardware configuration: presets, TOML, --set overrides, and one-line errors."""

import json

import pytest
from click.testing import CliRunner

from xbar.cli import main
from xbar.config import PRESETS, ConfigError, load_toml, resolve


def test_presets_are_valid_and_named():
    assert set(PRESETS) == {"ideal", "paper", "reram", "sonos", "pcm"}
    for name, hw in PRESETS.items():
        assert hw.name == name and hw.device.g_min_us < hw.device.g_max_us
        json.dumps(hw.to_dict())


def test_published_numbers_in_presets():
    assert (PRESETS["reram"].device.g_min_us, PRESETS["reram"].device.g_max_us) == (50.0, 225.0)
    assert PRESETS["reram"].device.prog_model == "reram-program"
    sonos = PRESETS["sonos"].device
    assert sonos.g_max_us * sonos.v_read_v * 1e3 == pytest.approx(1600.0)  # I_max in nA
    assert sonos.g_max_us / sonos.g_min_us == pytest.approx(1e7)
    assert (PRESETS["pcm"].device.g_min_us, PRESETS["pcm"].device.g_max_us) == (0.25, 25.0)


def test_overrides_with_types():
    hw = resolve("sonos", ["adc.bits=6", "device.read_noise_mode=device", "tile.rows=128", "device.clip=false",
                           "device.prog_sigma=0.5"])
    assert (hw.adc.bits, hw.device.read_noise_mode.value, hw.tile.rows, hw.device.clip, hw.device.prog_sigma) == \
        (6, "device", 128, False, 0.5)


def test_toml_file_starts_from_a_preset(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('preset = "reram"\n[adc]\nbits = 5\nrange = "max"\n[tile]\nrows = 64\n')
    hw = load_toml(path)
    assert (hw.name, hw.adc.bits, hw.adc.range.value, hw.tile.rows, hw.device.g_max_us) == ("mine", 5, "max", 64, 225.0)


@pytest.mark.parametrize("overrides, message", [
    (["adc.bitz=3"], "unknown hardware key 'adc.bitz'"),
    (["nosection.x=1"], "unknown hardware section"),
    (["adc.bits=1.5"], "expected an integer"),
    (["adc.bits=-1"], "adc.bits must be in"),
    (["device.g_min_us=500"], "must be < device.g_max_us"),
    (["device.read_sigma=-0.1"], "must be >= 0"),
    (["device.clip=3"], "expected true or false"),
    (["dac.range=sometimes"], "is not one of"),
    (["dac.bits=6", "dac.input_slices=4"], "must divide dac.bits"),
    (["adc.bits"], "expects key=value"),
])
def test_bad_overrides_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve("reram", overrides)


@pytest.mark.parametrize("text, message", [
    ("[adc\nbits=", "not valid TOML"),
    ('preset = "nope"\n', "unknown hardware preset"),
    ("[device]\ng_max_us = 'high'\n", "expected a finite number"),
])
def test_bad_toml_files(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_toml(path)


@pytest.mark.parametrize("args", [
    ["--hardware", "nope"],
    ["--hardware", "reram", "--set", "adc.bitz=2"],
    ["--hardware", "reram", "--set", "device.g_min_us=900"],
    ["--hardware", "missing.toml"],
    ["--sigma-syn", "0.1"],
    ["--hardware", "paper", "--sigma-syn", "-0.1"],
    ["--hardware", "paper", "--syn-mode", "sometimes"],
    ["--hardware", "paper", "--seeds", "0"],
])
def test_cli_hardware_errors_are_one_line_exit_2(args):
    result = CliRunner().invoke(main, ["run", "--limit", "10", *args])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("xbar: error:")
