"""Run the sweep of docs/parasitics.md's "Accuracy against wire resistance": square tiles x equal row and column
wire resistance, which a [grid] cannot pair.

    python docs/examples/parasitics_sweep.py docs/examples/parasitics.toml -o docs/parasitics-accuracy.csv \
        --workers 2

For each tile size N and resistance r (0 = ideal wires, the reference), the spec is written again with
``[grid] "tile.rows" = [N], "tile.cols" = [N], "parasitics.r_row_ohm" = [r], "parasitics.r_col_ohm" = [r]``
into ``--workdir`` and run by ``xbar sweep --resume`` into its own CSV (with its own ``.meta.json``); an
interrupted run continues where it stopped. The CSVs, which have the same columns, are then joined (header
once) into the output, and the output's ``.meta.json`` lists the provenance of every part (it is not a
``--resume``-able spec: xbar refuses it, on purpose).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import tomllib

KEYS = ("tile.rows", "tile.cols", "parasitics.r_row_ohm", "parasitics.r_col_ohm")
SIZES = (64, 128, 256, 512)
RESISTANCES = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def write_spec(base: dict, size: int, r: float, path: Path) -> None:
    lines = [f"{k} = {toml_value(v)}" for k, v in base.items() if k not in ("set", "grid", "name")]
    lines.append(f"name = {toml_value(f'parasitics-{size}-{r:g}ohm')}")
    lines.append("[set]")
    lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in base.get("set", {}).items() if k not in KEYS]
    lines.append("[grid]")
    lines += [f"{json.dumps(k)} = [{toml_value(v)}]" for k, v in zip(KEYS, (size, size, r, r))]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="the base spec (docs/examples/parasitics.toml); its [grid] is replaced")
    parser.add_argument("-o", "--output", required=True, help="joined results CSV")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="square tile sizes (comma-separated)")
    parser.add_argument("--resistances", default=",".join(map(repr, RESISTANCES)),
                        help="ohm per segment, rows and columns alike (comma-separated; 0 = ideal wires)")
    parser.add_argument("--seeds", type=int, help="chip instances per point (default: the spec's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", default="parasitics-sweep", help="per-point specs and CSVs (kept, resumable)")
    args = parser.parse_args()

    spec_path = Path(args.spec)
    base = tomllib.loads(spec_path.read_text())
    if args.seeds is not None:
        base["seeds"] = args.seeds
    sizes = [int(s) for s in args.sizes.split(",")]
    resistances = [float(r) for r in args.resistances.split(",")]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)

    parts = []
    start = time.perf_counter()
    for size in sizes:
        for r in resistances:
            stem = f"tile{size}-r{r:g}"
            spec, csv = work / f"{stem}.toml", work / f"{stem}.csv"
            write_spec(base, size, r, spec)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "xbar", "sweep", str(spec), "-o", str(csv), "--resume",
                            "--workers", str(args.workers), "--quiet"], check=True)
            print(f"{stem}: {time.perf_counter() - t0:.1f} s (total {time.perf_counter() - start:.1f} s)",
                  file=sys.stderr, flush=True)
            parts.append(csv)

    header, body = None, []
    for csv in parts:
        lines = csv.read_text().splitlines(keepends=True)
        if header is None:
            header = lines[0]
        elif lines[0] != header:
            sys.exit(f"{csv}: columns differ from {parts[0]}")
        body += lines[1:]
    output = Path(args.output)
    output.write_text(header + "".join(body))
    meta = {"format": "parasitics_sweep.py: joined xbar results", "base_spec": str(spec_path),
            "keys_paired": list(KEYS), "sizes": sizes, "resistances": resistances,
            "parts": {csv.name: json.loads(Path(f"{csv}.meta.json").read_text()) for csv in parts}}
    Path(f"{output}.meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(body)} rows -> {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
