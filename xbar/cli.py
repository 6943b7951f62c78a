"""The ``xbar`` command line (click). The only module that prints.

Every user error (an :class:`~xbar.errors.XbarError` or a click usage error)
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from pathlib import Path
from typing import NoReturn

import click
import numpy as np

from . import __version__, data, testdata
from .errors import XbarError
from .nets.builders import ARCHS
from .progress import Progress
from .train import MAX_HIDDEN, MAX_LR, MAX_SEED

# click >= 8.2 signals "no subcommand given" with this UsageError; older releases print help themselves.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _fail(message: str) -> None:
    # One line whatever the message holds (click lists choices on lines of their own).
    click.echo(f"xbar: error: {' '.join(message.split())}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """A click group whose usage errors are one line, and which turns XbarError into exit 2."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("xbar: aborted", err=True)
            sys.exit(130)
        except _NO_ARGS_IS_HELP as exc:
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.UsageError as exc:
            ctx = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            _fail(f"{ctx}{exc.format_message()}")
        except click.ClickException as exc:
            _fail(exc.format_message())
        except XbarError as exc:
            _fail(str(exc))


class FiniteFloatRange(click.FloatRange):
    """A float range that refuses NaN and infinities (click's own lets NaN through every bound)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


QUIET = click.option(
    "-q", "--quiet", is_flag=True, help="No progress display, task counts, estimates or notices on stderr."
)


class _Stages:
    """Progress of work in stages (a sweep; reproduce's targets), as a context manager.

    Each stage gets a display of its own, made at the stage's first report (0
    done), so that the stage's plan line (:meth:`plan`) comes before it.
    """

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.name: str | None = None
        self.bar: Progress | None = None

    def __enter__(self) -> _Stages:
        return self

    def __exit__(self, *exc) -> None:
        self._end(*exc)

    def _end(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        self.bar = None

    def report(self, name: str, done: int, total: int) -> None:
        """``done`` of ``total`` tasks of stage ``name`` finished."""
        if name != self.name:
            self._end(None, None, None)
            self.name, self.bar = name, Progress(name, total, quiet=self.quiet).__enter__()
        elif done and self.bar is not None:
            self.bar.advance(1)

    def plan(self, plan) -> None:
        """Show a stage's plan (task count and estimate) before it starts, unless quiet."""
        if not self.quiet:
            click.echo(f"xbar: {plan.describe()}", err=True)

    def stop(self, exc) -> NoReturn:
        """End the display, then the command: one line and the signal's exit code (``exc``: sweep.Interrupted)."""
        self._end(type(exc), exc, None)
        click.echo(f"xbar: {exc}", err=True)
        sys.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xbar")
def main():
    """xbar: circuit-level simulation of analog in-memory (crossbar) inference."""


class _Numbers(click.ParamType):
    """A comma-separated list of finite floats (one for all channels, or one per channel)."""

    name = "FLOAT[,FLOAT...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a number or a comma-separated list of numbers.", param, ctx)
        if not all(math.isfinite(n) for n in numbers):
            self.fail(f"{value!r} holds a non-finite number.", param, ctx)
        return numbers


def _data_file_options(function, *, at_import: bool = False):
    """--data, --layout, --scale: the user's test-set file and how to read it (run, energy and import)."""
    stored = ", stored: xbar run --data defaults to it" if at_import else ", or as xbar import --data recorded"
    options = [
        click.option(
            "--data",
            "data_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            metavar="FILE.npz|FILE.h5",
            help=(
                "Your test set (arrays x, y; docs/data.md): checked against the network, its ideal accuracy stored."
                if at_import
                else "Your own test set: arrays x (images) and y (integer labels); see docs/data.md."
            ),
        ),
        click.option(
            "--layout",
            type=click.Choice(list(testdata.LAYOUTS)),
            default=None,
            help=f"Axis order of a 4-D x in --data (default nhwc; nchw is transposed to NHWC){stored}.",
        ),
        click.option(
            "--scale",
            type=FiniteFloatRange(min=0, min_open=True),
            default=None,
            help=f"Divide the pixels of --data by this first (e.g. 255; default 1){stored}.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _test_data_options(function):
    """--data, --layout, --scale, --mean, --std (run and energy)."""
    options = [
        click.option(
            "--mean",
            type=_Numbers(),
            default=None,
            help="Subtract this per channel after scaling (default: the weights' provenance input_mean, else 0).",
        ),
        click.option(
            "--std",
            type=_Numbers(),
            default=None,
            help="Then divide by this per channel (default: the weights' provenance input_std, else 1).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return _data_file_options(function)


def _with_data(key, value, data_file):
    """The report's (key, value) pairs for one key of a --data run: "dataset" null, then "data"."""
    return [("dataset", None), ("data", data_file)] if key == "dataset" else [(key, value)]


def _test_set(network, weights, dataset, data_file, layout, scale, mean, std, limit):
    """(images, labels, name of the test set) for run and energy: a built-in dataset or --data, normalised."""
    if data_file is not None and dataset is not None:
        raise XbarError("--data and --dataset are exclusive: give one test set")
    if data_file is None and (layout is not None or scale is not None):
        raise XbarError("--layout and --scale apply to --data only")
    stored_mean, stored_std = testdata.stored_normalization(network.provenance, str(weights))
    mean = stored_mean if mean is None else mean
    std = stored_std if std is None else std
    if data_file is not None:
        stored_layout, stored_scale = testdata.stored_layout(network.provenance, str(weights))
        images, labels = testdata.load_file(
            data_file,
            network.input_shape,
            network.n_classes,
            layout=layout or stored_layout,
            scale=stored_scale if scale is None else scale,
            mean=mean,
            std=std,
            limit=limit,
        )
        return images, labels, str(data_file)
    if dataset is None and network.dataset not in data.DATASETS:
        recorded = network.provenance.get("test_data")
        hint = f" (it was imported with --data {recorded})" if isinstance(recorded, str) else ""
        raise XbarError(
            f"{weights}: the network is for {network.dataset!r}, not a built-in dataset: give its test set with "
            f"--data FILE{hint}, or --dataset NAME"
        )
    dataset = dataset or network.dataset
    images, labels = data.load(dataset, "test", limit=limit)
    return testdata.normalize(images, network.input_shape, mean, std), labels, dataset


DEFAULT_WEIGHTS = data.SHIPPED_DIR / "weights" / "mlp-mnist.h5"


def _load_weights(path):
    from . import io

    return io.load(path)


@main.command("info")
@click.argument("weights", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info_cmd(weights, as_json):
    """Show a weights file: architecture, layers with shapes, parameters, provenance."""
    network = _load_weights(weights)
    layers = [
        {"kind": kind, "output_shape": list(shape), "kernel_shape": None if k is None else list(k), "params": n}
        for kind, shape, k, n in network.summary()
    ]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "weights": str(weights),
                    "arch": network.arch,
                    "dataset": network.dataset,
                    "input_shape": list(network.input_shape),
                    "n_classes": network.n_classes,
                    "n_params": network.n_params,
                    "layers": layers,
                    "provenance": network.provenance,
                }
            )
        )
        return
    click.echo(
        f"{weights}: {network.arch} for {network.dataset}, input {network.input_shape}, "
        f"{network.n_classes} classes, {network.n_params:,} parameters"
    )
    for index, layer in enumerate(layers):
        kernel = "" if layer["kernel_shape"] is None else f"kernel {tuple(layer['kernel_shape'])}"
        click.echo(
            f"  {index:2d} {layer['kind']:<10} -> {str(tuple(layer['output_shape'])):<14} "
            f"{kernel:<24} {layer['params']:>8,} params"
        )
    if network.provenance:
        click.echo("provenance:")
        for key, value in sorted(network.provenance.items()):
            click.echo(f"  {key} = {value}")


@main.command("run")
@click.argument("weights", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--hardware",
    "hardware_spec",
    default=None,
    metavar="PRESET|FILE.toml",
    help="Simulate this crossbar (presets: ideal, paper, reram, sonos, pcm). "
    "Default: ideal float32 numpy inference, no crossbar.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a hardware field, e.g. --set adc.bits=6 (repeatable).",
)
@click.option(
    "--sigma-syn",
    type=FiniteFloatRange(min=0),
    default=None,
    help="Synaptic noise: additive, relative to the conductance range (needs --hardware).",
)
@click.option(
    "--syn-mode",
    type=click.Choice(["static", "read"]),
    default="static",
    show_default=True,
    help="static: programming error drawn once per chip; read: drawn at every read.",
)
@click.option(
    "--dataset",
    type=click.Choice(list(data.DATASETS)),
    default=None,
    help="Test set (default: the one the weights were trained for).",
)
@_test_data_options
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N test images.")
@click.option(
    "--sigma-te",
    type=FiniteFloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Std of Gaussian noise added to each test pixel (pixels in [0, 1]).",
)
@click.option(
    "--seeds",
    "n_seeds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Number of independent chip instances.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED),
    default=0,
    show_default=True,
    help="Seed from which every chip instance's seed is derived.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Images per forward pass (default: what keeps the largest layer operand near 8 MB, at most "
    "1000); results do not depend on it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@QUIET
def run_cmd(
    weights,
    hardware_spec,
    overrides,
    sigma_syn,
    syn_mode,
    dataset,
    data_file,
    layout,
    scale,
    mean,
    std,
    limit,
    sigma_te,
    n_seeds,
    seed,
    batch_size,
    as_json,
    quiet,
):
    """Accuracy and speed of a network over chip instances (default: the shipped MNIST MLP)."""
    from .config import describe_errors, resolve
    from .evaluate import run_chips, with_sigma_syn
    from .kernels import announce_compilation

    if hardware_spec is None and (overrides or sigma_syn is not None):
        raise XbarError("--set and --sigma-syn need --hardware (e.g. --hardware paper)")
    hw = None if hardware_spec is None else with_sigma_syn(resolve(hardware_spec, overrides), sigma_syn, syn_mode)
    weights = DEFAULT_WEIGHTS if weights is None else weights
    network = _load_weights(weights)
    images, labels, test_set = _test_set(network, weights, dataset, data_file, layout, scale, mean, std, limit)
    with Progress("run", len(images) * n_seeds, quiet=quiet) as bar, announce_compilation(bar.note):
        summary = run_chips(
            network, hw, images, labels, seed, n_seeds, sigma_te=sigma_te, batch_size=batch_size, progress=bar.advance
        )
    report = summary.to_dict(weights=str(weights), dataset=test_set, sigma_syn=sigma_syn, syn_mode=syn_mode)
    if data_file is not None:  # the report names the file instead of a dataset: "dataset" null, "data" the file
        report = {k: v for key, value in report.items() for k, v in _with_data(key, value, str(data_file))}
    if as_json:
        click.echo(json.dumps(report))
        return
    chip = "float32 reference (no crossbar)" if hw is None else f"hardware {hw.name}: {describe_errors(hw)}"
    knobs = "" if sigma_syn is None else f", sigma_syn {sigma_syn} ({syn_mode})"
    click.echo(
        f"{weights} on {test_set}: {summary.n_images} images x {n_seeds} chip instance(s), {chip}{knobs}, "
        f"sigma_te {sigma_te}"
    )
    if n_seeds > 1:
        click.echo("accuracies: " + " ".join(f"{a:.4f}" for a in summary.accuracies))
        low, high = summary.accuracy_ci95
        click.echo(
            f"accuracy {summary.accuracy:.4f} +- {summary.accuracy_std:.4f} (std), 95% CI [{low:.4f}, {high:.4f}]"
        )
    else:
        click.echo(f"accuracy {summary.accuracy:.4f}")
    if summary.energy_per_inference_j is not None:
        click.echo(f"energy {summary.energy_per_inference_j * 1e9:.3f} nJ per inference")
    click.echo(f"{summary.images_per_second:,.0f} images/s inference, {summary.seconds:.1f} s in all")


class _Shape(click.ParamType):
    """A comma-separated list of positive integers: H,W,C (or N for vectors)."""

    name = "H,W,C"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            dims = tuple(int(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers.", param, ctx)
        if len(dims) not in (1, 3) or any(d < 1 or d > 2**31 - 1 for d in dims):
            self.fail(f"{value!r} must be H,W,C (or N for vectors) of positive integers.", param, ctx)
        return dims


@main.command("import")
@click.argument("model", metavar="MODEL.onnx|MODEL.keras|MODEL.h5", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Weights file to write."
)
@click.option("--input-shape", type=_Shape(), default=None, help="One sample's shape, NHWC (default: the model's).")
@click.option("--dataset", default=None, help="Dataset the network is for, stored in the file (default: custom).")
@functools.partial(_data_file_options, at_import=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N samples of --data.")
@click.option("--arch", default=None, help="Architecture label stored in the file (default: the model's file name).")
@click.option("--mean", type=_Numbers(), default=None, help="Input normalisation mean, stored (xbar run applies it).")
@click.option("--std", type=_Numbers(), default=None, help="Input normalisation std, stored (xbar run applies it).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def import_cmd(model, output, input_shape, dataset, data_file, layout, scale, limit, arch, mean, std, as_json):
    """Import an ONNX or Keras model as an xbar weights file (docs/import.md)."""
    from . import io
    from ._files import check_output_path
    from .importers import import_model, with_test_set

    if std is not None and any(s <= 0 for s in std):
        raise XbarError(f"--std {','.join(map(str, std))}: every value must be positive")
    if data_file is not None and dataset is not None:
        raise XbarError("--data and --dataset are exclusive: a network is for a built-in dataset or for your data")
    if data_file is None and (layout is not None or scale is not None or limit is not None):
        raise XbarError("--layout, --scale and --limit apply to --data only")
    check_output_path(output)
    network = import_model(model, input_shape, dataset, arch=arch, input_mean=mean, input_std=std)
    accuracy = None
    if data_file is not None:
        network, accuracy, n_images = with_test_set(
            network, data_file, layout=layout or "nhwc", scale=1.0 if scale is None else scale, limit=limit
        )
    io.save(network, output)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": str(model),
                    "weights": str(output),
                    "arch": network.arch,
                    "input_shape": list(network.input_shape),
                    "n_classes": network.n_classes,
                    "n_layers": len(network.layers),
                    "n_params": network.n_params,
                    "data": None if data_file is None else str(data_file),
                    "ideal_accuracy": accuracy,
                    "provenance": network.provenance,
                }
            )
        )
        return
    click.echo(
        f"{model} -> {output}: {len(network.layers)} layers, input {network.input_shape}, "
        f"{network.n_classes} classes, {network.n_params:,} parameters"
    )
    if accuracy is not None:
        click.echo(f"ideal float32 accuracy on {data_file}: {accuracy:.4f} ({n_images:,} samples)")


@main.command("energy")
@click.argument("weights", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--hardware",
    "hardware_spec",
    default="paper",
    show_default=True,
    metavar="PRESET|FILE.toml",
    help="Crossbar whose energy constants and layout to use.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a hardware field.")
@click.option(
    "--images",
    "n_images",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Test images whose inputs set the cells' read energy (the only data-dependent part).",
)
@_test_data_options
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@QUIET
def energy_cmd(weights, hardware_spec, overrides, n_images, data_file, layout, scale, mean, std, seed, as_json, quiet):
    """Energy per inference (J) of a network on a crossbar, by layer and by part."""
    from .config import resolve
    from .crossbar import program
    from .energy import PARTS, energy_report
    from .kernels import announce_compilation

    hw = resolve(hardware_spec, overrides)
    network = _load_weights(weights)
    images, _, test_set = _test_set(network, weights, None, data_file, layout, scale, mean, std, n_images)
    with Progress("energy", quiet=quiet) as bar, announce_compilation(bar.note):
        chip = program(network, hw, seed, images[: hw.calibration_images])
        chip.forward(images, 0)
    report = {
        "weights": str(weights),
        "hardware": hw.name,
        "n_images": len(images),
        "test_set": test_set,
        **energy_report(chip.operation_counts(), hw),
    }
    if as_json:
        report["hardware"] = hw.to_dict()
        click.echo(json.dumps(report))
        return
    click.echo(
        f"{weights} on {hw.name}: {report['total_j'] * 1e9:.4g} nJ per inference "
        f"(cells' energy from {len(images)} test images of {test_set})"
    )
    click.echo("  " + "".join(f"{p:>11}" for p in ("layer", "total", *PARTS)) + "   (nJ)")
    rows = [(layer["layer"], layer["total_j"], layer["parts_j"]) for layer in report["layers"]]
    rows.append(("all", report["total_j"], report["parts_j"]))
    for name, total, parts in rows:
        click.echo("  " + f"{name:>11}{total * 1e9:>11.4g}" + "".join(f"{parts[p] * 1e9:>11.4g}" for p in PARTS))


@main.command("sweep")
@click.argument("spec_path", metavar="SPEC.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Results CSV (rows are appended as tasks finish).",
)
@click.option("--resume", is_flag=True, help="Continue an existing results file, skipping finished tasks.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Local worker processes (default: the number of cores)."
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run the tasks on this Dask distributed scheduler instead (the dist extra); 'local' or 'local:N' "
    "starts a LocalCluster of N one-thread worker processes (default: --workers, else the cores).",
)
@QUIET
@click.option(
    "--max-tasks",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse a sweep of more tasks than this (default: 1,000,000).",
)
def sweep_cmd(spec_path, output, resume, workers, scheduler, quiet, max_tasks):
    """Run a Monte Carlo sweep over weights, hardware keys, sigma_syn and sigma_te.

    Before it starts, the task count and an estimate of the run time go to stderr; then progress (a bar
    on a terminal, else a line at most every 30 s). SIGINT or SIGTERM stops it within seconds with every
    row written complete (exit 130 or 143); --resume continues it.
    """
    from ._files import check_output_path
    from .sweep import MAX_TASKS, Interrupted, load_spec, run_sweep

    limit = max_tasks or MAX_TASKS
    spec = load_spec(spec_path, max_tasks=limit)
    check_output_path(output)  # before any work: a bad -o is one line now, not after the spec's weights load
    started = time.perf_counter()
    with _Stages(quiet) as stages:
        try:
            n = run_sweep(
                spec,
                output,
                resume=resume,
                workers=workers,
                scheduler=scheduler,
                progress=lambda done, total: stages.report(f"sweep {spec.name}", done, total),
                on_plan=None if quiet else stages.plan,
                estimate=not quiet,
                max_tasks=limit,
            )
        except Interrupted as exc:
            stages.stop(exc)
    click.echo(f"{output}: {n} task(s) run in {time.perf_counter() - started:.1f} s")


@main.command("plot")
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Figure file; its extension chooses the format (.png, .pdf, .svg).",
)
@click.option("--x", "x_param", default=None, help="Swept parameter on the x axis (default: sigma_syn or the first).")
@click.option(
    "--dpi",
    type=click.IntRange(min=10, max=2400),
    default=120,
    show_default=True,
    help="Resolution of a PNG (dots per inch; vector formats ignore it for lines and text).",
)
def plot_cmd(results, output, x_param, dpi):
    """Plot a sweep's accuracy (mean and 95% confidence band over chip instances)."""
    from ._files import check_output_path
    from .plot import figure_format, plot_sweep
    from .results import read_rows

    figure_format(output)
    check_output_path(output)
    plot_sweep(read_rows(results), output, x=x_param, dpi=dpi)
    click.echo(f"{output}")


@main.command("reproduce")
@click.argument("target", type=click.Choice(["table2", "fig3", "fig4", "sigma-te", "table3", "all"]))
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reproduction"),
    show_default=True,
    help="Folder for the CSV, PNG and markdown files.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Chip instances per point, per training seed in Table II [default: 3, or 10 with --full].",
)
@click.option(
    "--full",
    is_flag=True,
    help="Everything: the per-read reading of sigma_syn in Fig. 3, the other readings of the networks (MLP-128, "
    "plain RNN) in Table II and Fig. 4, all training seeds in the sigma_te curves, 10 chips a point.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local worker processes.")
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run on a Dask distributed scheduler ('local' or 'local:N': a LocalCluster started for the run).",
)
@click.option("--resume", is_flag=True, help="Continue the CSVs already in the folder.")
@QUIET
def reproduce_cmd(target, out_dir, seeds, full, workers, scheduler, resume, quiet):
    """Reproduce the paper's Table II, Figures 3 and 4, its input-noise claims and Table III from the shipped
    weights (docs/reproduction.md); the default scope takes about 6 minutes, --full about 80 on 2 cores."""
    from ._files import check_output_folder
    from .reproduce import reproduce
    from .sweep import Interrupted

    check_output_folder(out_dir)  # before any work
    started = time.perf_counter()
    with _Stages(quiet) as stages:
        try:
            files = reproduce(
                target,
                out_dir,
                seeds=seeds,
                full=full,
                workers=workers,
                scheduler=scheduler,
                resume=resume,
                progress=lambda name, done, total: stages.report(f"reproduce {name}", done, total),
                on_plan=None if quiet else stages.plan,
            )
        except Interrupted as exc:
            stages.stop(exc)
    for path in files:
        click.echo(str(path))
    click.echo(f"reproduce {target}: {time.perf_counter() - started:.1f} s")


@main.group("data", cls=_Group)
def data_cmd():
    """Datasets: fetch the training sets, show where they are, verify checksums."""


_DATASET_CHOICE = click.Choice([*data.DATASETS, "all"])


_FETCHED_BY_DEFAULT = ("mnist", "fashion-mnist")
"""What a bare ``xbar data fetch`` obtains: the training sets of the shipped weights (CIFAR-10 is 170 MB)."""


def _datasets(name):
    return list(data.DATASETS) if name == "all" else [name]


@data_cmd.command("fetch")
@click.option(
    "--dataset",
    type=_DATASET_CHOICE,
    default=None,
    help="Default: mnist and fashion-mnist; 'all' adds cifar10 (a 170 MB download).",
)
@click.option(
    "--source",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder holding the dataset files (gzip or raw; for cifar10 also cifar-10-binary.tar.gz); "
    "default: $XBAR_DATA, the Debian package path, then the canonical download.",
)
def data_fetch_cmd(dataset, source):
    """Obtain and verify the train and test files into the local store."""
    if source is not None and not source.is_dir():
        raise XbarError(f"--source {source}: no such folder")
    for name in _FETCHED_BY_DEFAULT if dataset is None else _datasets(dataset):
        for path, origin in data.fetch(name, source):
            click.echo(f"{path} <- {origin} (SHA-256 verified)")


@data_cmd.command("path")
@click.option("--dataset", type=_DATASET_CHOICE, default="all", show_default=True)
def data_path_cmd(dataset):
    """Print where each split of each dataset is found (or that it is missing)."""
    for name in _datasets(dataset):
        for split in data.SPLITS:
            try:
                paths = data.locate(name, split)
                click.echo(f"{name} {split}: {paths[0].parent}")
            except XbarError:
                click.echo(f"{name} {split}: missing (run 'xbar data fetch --dataset {name}')")
    click.echo(f"store: {data.store_dir()}")


@data_cmd.command("verify")
@click.option("--dataset", type=_DATASET_CHOICE, default="all", show_default=True)
def data_verify_cmd(dataset):
    """Check every dataset file found against its recorded SHA-256; exit 2 on a mismatch."""
    bad = []
    for name in _datasets(dataset):
        for path, ok in data.verify(name):
            click.echo(f"{'ok' if ok else 'MISMATCH'} {path}")
            if not ok:
                bad.append(str(path))
    if bad:
        raise XbarError(f"{len(bad)} file(s) fail their SHA-256 check: {', '.join(bad)}")


@main.command("train")
@click.option(
    "--arch",
    type=click.Choice(list(ARCHS)),
    required=True,
    help="mlp, cnn, rnn (the Mosaic core) or srnn (a plain recurrent layer of 400 - 784/t units).",
)
@click.option("--dataset", type=click.Choice(list(_FETCHED_BY_DEFAULT)), default="mnist", show_default=True)
@click.option(
    "--timesteps", type=click.IntRange(min=1), default=7, show_default=True, help="RNN time steps (a divisor of 784)."
)
@click.option(
    "--hidden", type=click.IntRange(min=1, max=MAX_HIDDEN), default=300, show_default=True, help="MLP hidden size."
)
@click.option(
    "--sigma-neu",
    type=FiniteFloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Std of Gaussian noise at every hidden activation during training.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option(
    "--lr",
    type=FiniteFloatRange(min=0, min_open=True, max=MAX_LR),
    default=1e-3,
    show_default=True,
    help="Adam learning rate (cosine-decayed to 0).",
)
@click.option(
    "--augment-shift",
    type=click.IntRange(min=0, max=4),
    default=0,
    show_default=True,
    help="Random translation of training images by up to this many pixels.",
)
@click.option("--train-limit", type=click.IntRange(min=1), default=None, help="Use only the first N training images.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after N optimiser steps.")
@click.option(
    "--holdout",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Keep the last N training images out of training (for validation).",
)
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Weights file (.h5) to write.",
)
@QUIET
def train_cmd(
    arch,
    dataset,
    timesteps,
    hidden,
    sigma_neu,
    epochs,
    batch_size,
    lr,
    augment_shift,
    train_limit,
    max_steps,
    holdout,
    seed,
    output,
    quiet,
):
    """Train one of the paper's networks with PyTorch and write it as an xbar weights file."""
    from . import io
    from ._files import check_output_path
    from .train import TrainConfig, train

    check_output_path(output)
    config = TrainConfig(
        arch=arch,
        dataset=dataset,
        hidden=hidden,
        timesteps=timesteps,
        sigma_neu=sigma_neu,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        augment_shift_px=augment_shift,
        seed=seed,
        train_limit=train_limit,
        max_steps=max_steps,
        holdout=holdout,
    )
    with Progress(f"train {arch} {dataset}", quiet=quiet) as bar:

        def progress(step, total, loss):
            bar.set_total(total)
            bar.advance(1)

        network, losses = train(config, progress)
    io.save(network, output)
    prov = network.provenance
    click.echo(
        f"{output}: {arch} on {dataset}, {prov['steps']} steps in {prov['train_seconds']} s, "
        f"final loss {np.mean(losses[-50:]):.4f}, test accuracy {prov['test_accuracy']:.4f}"
    )


if __name__ == "__main__":
    main()
