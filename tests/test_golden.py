"""The crossbar's outputs held bit for bit to the golden files of tests/golden/ (see make_golden.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from .golden.cases import CONFIGS, NETWORKS, SEEDS, run_case

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture(scope="module")
def golden():
    logits = dict(np.load(GOLDEN / "logits.npz"))
    energy = json.loads((GOLDEN / "energy.json").read_text())["cases"]
    return logits, energy


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("net", list(NETWORKS))
def test_logits_bit_identical_and_energy_equal_to_golden(golden, net, config):
    logits, energy = golden
    for seed in SEEDS:
        name = f"{net}/{config}/{seed}"
        out, report = run_case(net, config, seed)
        np.testing.assert_array_equal(out, logits[name], err_msg=name)
        expected = energy[name]
        assert report["total_j"] == pytest.approx(expected["total_j"], rel=1e-9), name
        for part, value in expected["parts_j"].items():
            assert report["parts_j"][part] == pytest.approx(value, rel=1e-9, abs=1e-30), (name, part)
