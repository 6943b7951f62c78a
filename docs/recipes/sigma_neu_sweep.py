"""Choose sigma_neu for the noise-prepared networks by a small validation sweep.

Trains the Fashion-MNIST RNN (t = 7) and CNN with sigma_neu in SIGMAS for a few
epochs on 50,000 training images, then measures each on the 10,000 held-out
training images on the `paper` crossbar with static synaptic noise
sigma_syn in SYN (3 chip instances each). Prints one CSV row per (network,
sigma_neu, sigma_syn). Run from the repository root with the train extra and
the training sets:  python docs/recipes/sigma_neu_sweep.py > sweep.csv
"""

import sys

import numpy as np

from xbar import data
from xbar.config import resolve
from xbar.crossbar import program
from xbar.evaluate import evaluate
from xbar.train import TrainConfig, train

SIGMAS = (0.0, 0.05, 0.1, 0.2)
SYN = (0.0, 0.05, 0.1)
HOLDOUT = 10_000
EPOCHS = {"rnn": 8, "cnn": 8}

images, labels = data.load("fashion-mnist", "train")
val_x, val_y = images[-HOLDOUT:], labels[-HOLDOUT:]
print("arch,sigma_neu,sigma_syn,val_accuracy_mean,val_accuracy_std", flush=True)
for arch, epochs in EPOCHS.items():
    for sigma_neu in SIGMAS:
        config = TrainConfig(arch=arch, dataset="fashion-mnist", sigma_neu=sigma_neu, epochs=epochs,
                             lr=2e-3 if arch == "cnn" else 1e-3, holdout=HOLDOUT, seed=0)
        network, _ = train(config)
        for sigma_syn in SYN:
            hw = resolve("paper", [f"device.prog_sigma={sigma_syn}"])
            accs = []
            for chip_seed in range(3):
                chip = program(network, hw, chip_seed, val_x[:256])
                accs.append(evaluate(network, val_x, val_y, forward=chip.forward).accuracy)
            print(f"{arch},{sigma_neu},{sigma_syn},{np.mean(accs):.4f},{np.std(accs):.4f}", flush=True)
sys.exit(0)
