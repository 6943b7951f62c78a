"""Numpy networks: layers, the network container and the paper's three builders."""

from .builders import ARCHS, build, cnn, mlp, rnn
from .layers import LAYER_KINDS, Conv2D, Dense, Flatten, IdealMatrix, Layer, Matmul, MaxPool2D, Mosaic
from .network import Network

__all__ = [
    "ARCHS",
    "build",
    "cnn",
    "mlp",
    "rnn",
    "LAYER_KINDS",
    "Conv2D",
    "Dense",
    "Flatten",
    "IdealMatrix",
    "Layer",
    "Matmul",
    "MaxPool2D",
    "Mosaic",
    "Network",
]
