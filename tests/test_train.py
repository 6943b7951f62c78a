"""Training (needs the `train` extra): the loss falls, the file loads, seeds reproduce."""

import numpy as np
import pytest
from click.testing import CliRunner

from xbar import io
from xbar.cli import main

from .conftest import has_training_set

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not has_training_set("mnist"), reason="MNIST training set not available")


@pytest.mark.parametrize("arch", ["mlp", "cnn", "rnn"])
def test_loss_falls_and_file_loads(arch, tmp_path):
    from xbar.train import TrainConfig, torch_forward, train

    network, losses = train(TrainConfig(arch=arch, hidden=64, max_steps=300, train_limit=6000,
                                        batch_size=64, lr=2e-3, seed=1))
    assert len(losses) == 300
    assert np.mean(losses[-30:]) < 0.6 * np.mean(losses[:30])
    path = io.save(network, tmp_path / f"{arch}.h5")
    loaded = io.load(path)
    assert loaded.provenance["steps"] == 300 and loaded.provenance["seed"] == 1
    assert 0.5 < loaded.provenance["test_accuracy"] <= 1.0
    x = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(loaded.forward(x), torch_forward(loaded, x), rtol=1e-5, atol=1e-5)


def test_same_seed_same_weights_with_noise_and_augmentation():
    from xbar.train import TrainConfig, train

    config = TrainConfig(arch="mlp", hidden=16, max_steps=30, train_limit=1000, sigma_neu=0.1,
                         augment_shift_px=2, seed=3)
    a, _ = train(config)
    b, _ = train(config)
    for la, lb in zip(a.weight_layers, b.weight_layers):
        np.testing.assert_array_equal(la.kernel, lb.kernel)


def test_cli_train_writes_provenance(tmp_path):
    out = tmp_path / "rnn.h5"
    result = CliRunner().invoke(main, ["train", "--arch", "rnn", "--timesteps", "14", "--sigma-neu", "0.05",
                                       "--max-steps", "20", "--train-limit", "500", "--seed", "9",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    prov = io.load(out).provenance
    assert (prov["timesteps"], prov["sigma_neu"], prov["seed"], prov["arch"]) == (14, 0.05, 9, "rnn")
