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
