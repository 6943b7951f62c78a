"""Write the golden outputs that hold the crossbar to its behaviour at one commit.

Run from the repository root: ``python tests/golden/make_golden.py``. It writes
``tests/golden/logits.npz`` (float32 logits of the first 200 MNIST test images,
one array per network x configuration x chip seed) and
``tests/golden/energy.json`` (energy per inference, J, total and by part).
tests/test_golden.py recomputes both and requires the logits bit for bit and
the energies to float rounding. Regenerate only on purpose, when a change of
outputs is intended, and say so in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.golden.cases import CONFIGS, N_IMAGES, NETWORKS, SEEDS, run_case  # noqa: E402


def main() -> None:
    logits, energy = {}, {}
    for net in NETWORKS:
        for config in CONFIGS:
            for seed in SEEDS:
                name = f"{net}/{config}/{seed}"
                out, report = run_case(net, config, seed)
                logits[name] = out
                energy[name] = {"total_j": report["total_j"], "parts_j": report["parts_j"]}
                print(name, f"{report['total_j']:.6g} J", flush=True)
    np.savez_compressed(HERE / "logits.npz", **logits)
    (HERE / "energy.json").write_text(json.dumps({"n_images": N_IMAGES, "cases": energy}, indent=1,
                                                 sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
