"""Recipe: a LeNet-5 trained on MNIST with PyTorch, measured on noisy xbar chips.

Trains a classic LeNet-5 (tanh, average pooling) on MNIST with PyTorch, exports it to ONNX, imports it with
``xbar import`` and runs it with ``xbar run`` on the ideal float32 path and on ReRAM and SONOS chip instances.
Writes ``OUT/lenet5_mnist.json`` with every figure and prints a markdown table. See lenet5_mnist.md.

Usage, from the repository root, with the train and import extras installed and the MNIST training set
reachable by xbar's loader (``xbar data fetch --dataset mnist``, or ``XBAR_DATA=FOLDER``)::

    .venv/bin/python docs/recipes/lenet5_mnist.py --out runs/lenet5
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

import xbar
from xbar import io as xbar_io
from xbar.data import load

SEED = 0
EPOCHS = 2
BATCH = 128
LR = 1e-3
CHIPS = 3
PRESETS = ("reram", "sonos")


def lenet5() -> nn.Sequential:
    """Classic LeNet-5 for 1x28x28 inputs (NCHW)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.Tanh(),
        nn.Linear(120, 84),
        nn.Tanh(),
        nn.Linear(84, 10),
    )


def train(x_train: np.ndarray, y_train: np.ndarray) -> nn.Sequential:
    """Adam, fixed seed, data order from a seeded generator: the same weights on every run on one machine."""
    torch.manual_seed(SEED)
    model = lenet5()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.from_numpy(x_train).unsqueeze(1)  # (n, 1, 28, 28)
    y = torch.from_numpy(y_train)
    order = torch.Generator().manual_seed(SEED)
    model.train()
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(x), generator=order)
        total = 0.0
        for start in range(0, len(x), BATCH):
            idx = perm[start : start + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{EPOCHS}: train loss {total / len(x):.4f}", flush=True)
    model.eval()
    return model


@torch.no_grad()
def torch_logits(model: nn.Module, x_test: np.ndarray) -> np.ndarray:
    return torch.cat(
        [model(torch.from_numpy(x_test[i : i + 1000]).unsqueeze(1)) for i in range(0, len(x_test), 1000)]
    ).numpy()


def agreement(h5_path: Path, x_test: np.ndarray, logits_torch: np.ndarray) -> dict:
    """The imported network's float32 logits (xbar's numpy path, NHWC input) against PyTorch's, image by image."""
    network = xbar_io.load(h5_path)
    logits = np.concatenate([network.forward(x_test[i : i + 1000, :, :, None]) for i in range(0, len(x_test), 1000)])
    scale = float(np.abs(logits_torch).max())
    return {
        "same_prediction": float(np.mean(logits.argmax(1) == logits_torch.argmax(1))),
        "max_abs_logit_diff": float(np.abs(logits - logits_torch).max()),
        "max_rel_logit_diff": float(np.abs(logits - logits_torch).max() / scale),
    }


def xbar_cmd() -> list[str]:
    """The venv's ``xbar`` entry point, next to this interpreter; else ``python -m xbar``."""
    exe = Path(sys.executable).parent / "xbar"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "xbar"]


def xbar_json(*args: str) -> tuple[dict, float]:
    """Run one xbar command with --json; return its JSON object and the wall time (s). Progress goes to stderr."""
    cmd = [*xbar_cmd(), *args, "--json"]
    print("$ " + " ".join(["xbar", *args, "--json"]), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"xbar {' '.join(args)} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout), wall


def summary(res: dict, wall: float, limit: int | None) -> dict:
    ci = res.get("accuracy_ci95")
    return {
        "chips": res.get("accuracies", [res["accuracy"]]),
        "chip_seeds": res.get("chip_seeds"),
        "mean": res["accuracy"],
        "std": res.get("accuracy_std"),
        "ci95": ci,
        "energy_nj": res["energy_per_inference_j"] * 1e9 if res.get("energy_per_inference_j") is not None else None,
        "energy_breakdown_nj": {k: v * 1e9 for k, v in (res.get("energy_breakdown") or {}).items()},
        "images": res["n_images"],
        "limit": limit,
        "seconds": res.get("seconds"),
        "program_seconds": res.get("program_seconds"),
        "wall_seconds": wall,
    }


def fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def table(report: dict) -> str:
    rows = [
        "| run | images | chips (%) | mean (%) | 95% CI (%) | energy / inference (nJ) | seconds |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: |",
        f"| PyTorch float32 | {report['torch']['images']} | - | {fmt_pct(report['torch']['accuracy'])} | - | - "
        f"| {report['torch']['train_seconds']:.0f} (train) |",
    ]
    for name, r in report["xbar"].items():
        chips = ", ".join(fmt_pct(a) for a in r["chips"]) if len(r["chips"]) > 1 else "-"
        ci = "-" if not r["ci95"] else f"{fmt_pct(r['ci95'][0])} - {fmt_pct(r['ci95'][1])}"
        energy = "-" if r["energy_nj"] is None else f"{r['energy_nj']:.3g}"
        rows.append(
            f"| xbar {name} | {r['images']} | {chips} | {fmt_pct(r['mean'])} | {ci} | {energy} "
            f"| {r['wall_seconds']:.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for lenet5.onnx, lenet5.h5, lenet5_mnist.json")
    ap.add_argument("--sonos-limit", type=int, default=None, help="first N test images for SONOS (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    x_train, y_train = load("mnist", "train")
    x_test, y_test = load("mnist", "test")
    print(f"MNIST: train {x_train.shape}, test {x_test.shape}", flush=True)

    t0 = time.perf_counter()
    model = train(x_train, y_train)
    train_seconds = time.perf_counter() - t0
    logits_torch = torch_logits(model, x_test)
    acc = float((logits_torch.argmax(1) == y_test).mean())
    print(f"PyTorch test accuracy: {100 * acc:.2f}% ({train_seconds:.0f} s training)", flush=True)

    onnx_path = args.out / "lenet5.onnx"
    h5_path = args.out / "lenet5.h5"
    # dynamo=False is the TorchScript exporter, the one docs/import.md names; silence its deprecation notice.
    warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 28, 28),),
        str(onnx_path),
        input_names=["x"],
        output_names=["logits"],
        opset_version=17,
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    imported, import_wall = xbar_json("import", str(onnx_path), "-o", str(h5_path), "--dataset", "mnist")
    agree = agreement(h5_path, x_test, logits_torch)
    print(
        f"xbar float32 vs PyTorch: same prediction on {100 * agree['same_prediction']:.2f}% of the test images, "
        f"max logit difference {agree['max_abs_logit_diff']:.2e} ({agree['max_rel_logit_diff']:.1e} of the largest)",
        flush=True,
    )

    runs: dict[str, dict] = {}
    res, wall = xbar_json("run", str(h5_path), "--hardware", "ideal")
    runs["ideal"] = summary(res, wall, None)
    for preset in PRESETS:
        limit = args.sonos_limit if preset == "sonos" else None
        extra = ["--limit", str(limit)] if limit else []
        res, wall = xbar_json("run", str(h5_path), "--hardware", preset, "--seeds", str(CHIPS), *extra)
        runs[preset] = summary(res, wall, limit)

    report = {
        "recipe": "docs/recipes/lenet5_mnist.py",
        "training": {
            "seed": SEED,
            "epochs": EPOCHS,
            "batch": BATCH,
            "optimizer": "Adam",
            "lr": LR,
            "threads": args.threads,
        },
        "torch": {"accuracy": acc, "images": int(len(y_test)), "train_seconds": train_seconds},
        "import": {"seconds": import_wall, "output": imported},
        "xbar": runs,
        "torch_minus_xbar_ideal": acc - runs["ideal"]["mean"],
        "xbar_float32_vs_torch": agree,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "xbar": getattr(xbar, "__version__", None),
            "numpy": np.__version__,
        },
        "machine": platform.machine(),
        "total_seconds": time.perf_counter() - t_start,
    }
    json_path = args.out / "lenet5_mnist.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(report))
    print()
    print(
        f"PyTorch - xbar ideal (ideal crossbar): {100 * report['torch_minus_xbar_ideal']:+.2f} points; "
        f"total {report['total_seconds']:.0f} s; wrote {json_path}"
    )


if __name__ == "__main__":
    main()
