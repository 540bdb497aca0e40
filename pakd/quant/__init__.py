"""Quantization and coding: k-means weight sharing, int8, Huffman, and the size accountant."""

from .int8 import Int8Quantizer, calibrate_activations, dequantize_per_channel, quantize_per_channel
from .kmeans import KMeansConfig, WeightSharing, kmeans_1d

__all__ = [
    "Int8Quantizer",
    "KMeansConfig",
    "WeightSharing",
    "calibrate_activations",
    "dequantize_per_channel",
    "kmeans_1d",
    "quantize_per_channel",
]
