"""Importers of models from other frameworks: a registry by file suffix, and the dispatcher behind ``xbar import``.

Each importer module defines ``import_model(path: Path, input_shape: tuple[int, ...] | None) -> Network``
(``input_shape`` NHWC without the batch axis, or None to take it from the model) and ``FRAMEWORK``; it is
imported only when a file of its suffix is imported, so that its framework's package (``onnx``) is needed
only then. :func:`import_model` adds the provenance every imported network carries.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path

from .. import __version__
from .._files import check_regular_file, sha256_of
from ..errors import XbarError
from ..nets.network import Network

IMPORTERS: dict[str, str] = {
    ".onnx": "xbar.importers.onnx",
    ".keras": "xbar.importers.keras",
    ".h5": "xbar.importers.keras",
}
"""File suffix (lower case) -> module defining ``import_model``."""


def importer_for(path: str | os.PathLike) -> str:
    """The module name of the importer of ``path``, by its suffix, or a one-line :class:`XbarError`."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMPORTERS:
        known = ", ".join(sorted(IMPORTERS))
        raise XbarError(f"{path}: no importer for files named '*{suffix}' (known: {known})")
    return IMPORTERS[suffix]


def import_model(
    path: str | os.PathLike,
    input_shape: tuple[int, ...] | None = None,
    dataset: str | None = None,
    *,
    arch: str | None = None,
    input_mean: tuple[float, ...] | None = None,
    input_std: tuple[float, ...] | None = None,
) -> Network:
    """The network of the model file ``path``, with its provenance.

    Parameters
    ----------
    path : path
        ``.onnx`` (ONNX), ``.keras`` or ``.h5`` (Keras); the importer is chosen by the suffix.
    input_shape : tuple of int, optional
        One sample's shape, NHWC without the batch axis (default: the model's own input shape).
    dataset : str, optional
        The dataset the network is for, stored in the file (default ``custom``).
    arch : str, optional
        Architecture label (default: the file name without its suffix).
    input_mean, input_std : tuple of float, optional
        Input normalisation stored as provenance ``input_mean`` / ``input_std`` (``xbar run`` applies it).

    Returns
    -------
    Network
        Provenance: ``source`` (file name), ``source_sha256``, ``framework``, the importer's own keys
        (``opset``, ``producer``, ``keras_version``, ...) and ``xbar_version``.
    """
    module_name = importer_for(path)
    path = check_regular_file(path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise XbarError(f"{path}: the importer for '*{path.suffix}' files is not available in this xbar") from None
    network = module.import_model(path, input_shape)
    channels = network.input_shape[-1]
    for option, values in (("--mean", input_mean), ("--std", input_std)):
        if values is not None and len(values) not in (1, channels):
            raise XbarError(
                f"{option}: {len(values)} values for an input of {channels} channels (give 1 or {channels})"
            )
    provenance = dict(network.provenance)
    provenance.setdefault("framework", getattr(module, "FRAMEWORK", module_name.rsplit(".", 1)[-1]))
    provenance.update(source=path.name, source_sha256=sha256_of(path), xbar_version=__version__)
    if input_mean is not None:
        provenance["input_mean"] = list(input_mean)
    if input_std is not None:
        provenance["input_std"] = list(input_std)
    return dataclasses.replace(
        network,
        arch=arch or network.arch or path.stem,
        dataset=dataset or network.dataset or "custom",
        provenance=provenance,
    )


def with_test_set(
    network: Network,
    path: str | os.PathLike,
    *,
    layout: str = "nhwc",
    scale: float = 1.0,
    limit: int | None = None,
) -> tuple[Network, float, int]:
    """``network`` checked against the user's test set ``path``, and its ideal float32 accuracy on it.

    The test set is read and normalised as ``xbar run --data`` does (:func:`xbar.testdata.load_file`, with
    the network's stored ``input_mean`` / ``input_std``), so a file that does not fit the network (shape,
    labels beyond its outputs) fails here, at import. The provenance gains ``test_data`` (file name),
    ``test_data_sha256``, ``test_data_layout``, ``test_data_scale`` (``xbar run --data`` defaults to these
    two), ``ideal_accuracy`` and ``ideal_n_images``.

    Returns
    -------
    (network with that provenance, ideal accuracy in [0, 1], images evaluated)
    """
    from .. import testdata
    from ..evaluate import evaluate

    mean, std = testdata.stored_normalization(network.provenance, "the imported network")
    images, labels = testdata.load_file(
        path, network.input_shape, network.n_classes, layout=layout, scale=scale, mean=mean, std=std, limit=limit
    )
    result = evaluate(network, images, labels)
    provenance = dict(network.provenance)
    provenance.update(
        test_data=Path(path).name,
        test_data_sha256=sha256_of(path),
        test_data_layout=layout,
        test_data_scale=float(scale),
        ideal_accuracy=result.accuracy,
        ideal_n_images=result.n_images,
    )
    return dataclasses.replace(network, provenance=provenance), result.accuracy, result.n_images
