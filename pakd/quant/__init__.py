"""Quantization: k-means weight sharing and int8, both giving the encoder (pakd.lower) their codes
through the :class:`Quantizer` protocol."""

from .base import Int8Codes, Quantizer, SharedCodes, WeightCodes
from .int8 import Int8Quantizer, calibrate_activations, dequantize_per_channel, quantize_per_channel
from .kmeans import KMeansConfig, WeightSharing, kmeans_1d

__all__ = [
    "Int8Codes",
    "Int8Quantizer",
    "Quantizer",
    "SharedCodes",
    "WeightCodes",
    "KMeansConfig",
    "WeightSharing",
    "calibrate_activations",
    "dequantize_per_channel",
    "kmeans_1d",
    "quantize_per_channel",
]
