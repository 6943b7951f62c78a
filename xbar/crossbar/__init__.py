"""The crossbar: a network programmed onto analog tiles, one module per hardware part.

Data flows ``program(network, hw, seed, calibration)`` (:mod:`.chip`) ->
one :class:`AnalogMatrix` per weight layer (:mod:`.matrix`), composed of
:mod:`.mapping` (weights -> device targets), :mod:`.devices` (a chip
instance's static errors, read-noise widths; models in
:mod:`xbar.device_models`), :mod:`.array` (one tile read: the place where
another array solver plugs in), :mod:`.periphery` (DAC and ADC ranges and
codes). Reads carry a :class:`ReadContext` (:mod:`.context`); a chip's
operation counts are a :class:`ChipCounts` (:mod:`.counts`), the energy
model's only input from here.
"""

from .array import ARRAY_SOLVERS, DenseArray
from .chip import ProgrammedNetwork, program
from .context import LayerReads, ReadContext
from .counts import ChipCounts, LayerCounts
from .matrix import AnalogMatrix
from .periphery import InputRange

__all__ = [
    "ARRAY_SOLVERS",
    "AnalogMatrix",
    "ChipCounts",
    "DenseArray",
    "InputRange",
    "LayerCounts",
    "LayerReads",
    "ProgrammedNetwork",
    "ReadContext",
    "program",
]
