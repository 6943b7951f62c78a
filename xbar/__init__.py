"""xbar: a fast, circuit-level simulator of analog in-memory (resistive crossbar) inference.

Data flows weights.h5 -> :class:`~xbar.nets.Network` -> crossbar tiles ->
kernels -> accuracy and energy. See ``docs/`` and DESIGN.md.
"""

__version__ = "0.1.0"

from .errors import ConfigError, DataError, WeightsFormatError, XbarError  # noqa: E402

__all__ = ["__version__", "ConfigError", "DataError", "WeightsFormatError", "XbarError"]
