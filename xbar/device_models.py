"""Device error models: how wide a conductance error is at each conductance, one registry entry per model.

``device.prog_model`` (static programming error, drawn once per chip
instance) and ``device.read_model`` (read noise, drawn at every read) name an
entry of :data:`ERROR_MODELS`. An entry holds everything about its model: a
description, its published source, and how sigma(G) is computed: a closed form
of :mod:`xbar.kernels.devices` with its parameters (evaluated inside the Numba
kernels), or a numpy function. The width is multiplied by the configured
``prog_sigma`` / ``read_sigma`` (a fraction of the range, of G, or a scale on
the published fit, as the entry says).

Adding a model is one call::

    register_error_model(ErrorModel(
        name="my-device", description="sigma_G = scale 0.1 sqrt(G uS) uS", source="my measurements",
        function=lambda g, scale, g_min_us, g_max_us, v_read_v: scale * 0.1 * np.sqrt(g)))

after which ``--set device.prog_model=my-device`` selects it. Models registered
at run time exist in the process that registered them: a sweep's worker
processes see them when the module that registers them is imported there.

This module imports no other part of xbar but the kernels, so that the
configuration can validate model names against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError
from .kernels import devices as kernels

SigmaFunction = Callable[[np.ndarray, float, float, float, float], np.ndarray]
"""sigma(g uS, scale, g_min_us, g_max_us, v_read_v) -> widths in uS (float64), elementwise."""


@dataclass(frozen=True)
class ErrorModel:
    """One device error model: sigma(G) in uS, times the configured scale.

    Give either ``form`` (a closed form of :mod:`xbar.kernels.devices`, by name)
    with ``params``, or ``function``.
    """

    name: str
    description: str
    source: str
    form: str | None = None
    params: tuple[float, ...] = ()
    function: SigmaFunction | None = field(default=None, compare=False)

    def __post_init__(self):
        if (self.form is None) == (self.function is None):
            raise ConfigError(f"error model {self.name!r}: give exactly one of form and function")
        if self.form is not None and self.form not in kernels.FORMS:
            raise ConfigError(
                f"error model {self.name!r}: unknown form {self.form!r} (choose from {', '.join(kernels.FORMS)})"
            )

    def sigma_us(
        self, g: np.ndarray, scale: float, g_min_us: float, g_max_us: float, v_read_v: float, dtype: type = np.float64
    ) -> np.ndarray:
        """Width (uS) of every device of the flat conductance array ``g`` (uS), as ``dtype``."""
        out: np.ndarray = np.empty(g.size, dtype)
        if self.form is not None:
            kernels.sigma_map(
                g,
                kernels.FORMS[self.form],
                np.asarray(self.params + (0.0,) * 4, np.float64),
                float(scale),
                float(g_min_us),
                float(g_max_us),
                float(v_read_v),
                out,
            )
        else:
            assert self.function is not None
            values = np.asarray(self.function(g, float(scale), float(g_min_us), float(g_max_us), float(v_read_v)))
            if values.shape != g.shape:
                raise ConfigError(
                    f"error model {self.name!r}: its function returned shape {values.shape} "
                    f"for conductances of shape {g.shape}"
                )
            out[:] = values
        return out


BUILT_IN = (
    ErrorModel(
        "additive",
        "sigma_G = scale (g_max - g_min): the same width for every device",
        "the paper's synaptic noise (Bennett et al., NICE 2020)",
        form="range",
    ),
    ErrorModel("proportional", "sigma_G = scale G", "textbook multiplicative noise", form="proportional"),
    ErrorModel(
        "sqrt",
        "sigma_G = scale sqrt(G (g_max - g_min)): variance proportional to G, as shot noise",
        "shot noise of the read current (variance 2 q I B), in conductance units",
        form="sqrt",
    ),
    ErrorModel(
        "reram-program",
        "sigma_G = scale (4.782 uS - 0.009107 G)",
        "Milo et al., IRPS 2021, doi:10.1109/IRPS46558.2021.9405119",
        form="clamped-quadratic",
        params=(4.782, -0.009107, 0.0, 1.0),
    ),
    ErrorModel(
        "sonos-program",
        "sigma_I = scale 19.89 nA (1 - exp(-I / 176.3 nA)), I = G V_read",
        "Agrawal et al., IEDM 2022 (via CrossSim's device files)",
        form="saturating-current",
        params=(19.89, 176.3),
    ),
    ErrorModel(
        "sonos-read",
        "sigma_I = scale 12.58 nA (1 - exp(-I / 215.4 nA)), I = G V_read",
        "Agrawal et al., IEDM 2022 (via CrossSim's device files)",
        form="saturating-current",
        params=(12.58, 215.4),
    ),
    ErrorModel(
        "pcm-program",
        "sigma_G = scale (0.26348 + 1.9650 g - 1.1731 g^2) uS, g = G / 25 uS",
        "Joshi et al., Nature Comm. 2020, doi:10.1038/s41467-020-16108-9, as fitted in IBM aihwkit",
        form="clamped-quadratic",
        params=(0.26348, 1.9650, -1.1731, 25.0),
    ),
)

ERROR_MODELS: dict[str, ErrorModel] = {model.name: model for model in BUILT_IN}
"""Every known error model by name: the built-in ones, then those registered."""


def register_error_model(model: ErrorModel, *, replace: bool = False) -> ErrorModel:
    """Add ``model`` to :data:`ERROR_MODELS` (``replace`` to redefine a name); return it."""
    if model.name in ERROR_MODELS and not replace:
        raise ConfigError(f"error model {model.name!r} exists already (pass replace=True to redefine it)")
    ERROR_MODELS[model.name] = model
    return model


def error_model(name: str) -> ErrorModel:
    """The registered model ``name``, or a :class:`ConfigError` listing the choices."""
    try:
        return ERROR_MODELS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"{name!r} is not an error model (choose from {', '.join(ERROR_MODELS)})") from None
