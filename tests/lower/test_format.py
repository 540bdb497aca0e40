"""The .pakd container: exact round trips for every encoding, and hostile input rejected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pakd.lower.accountant import serialize, tensor_plans
from pakd.lower.format import FormatError, TensorPlan, read_pakd, write_pakd
from pakd.models import build_model
from pakd.quant import KMeansConfig, WeightSharing


def _sparse(shape, density, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    w[rng.random(shape) > density] = 0
    return w


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("density", [1.0, 0.3, 0.05, 0.001])
def test_f32_round_trip(huffman, density):
    w = _sparse((64, 33), density)
    meta, tensors = read_pakd(write_pakd([TensorPlan("w", w)], {"k": "v"}, huffman))
    assert meta == {"k": "v"}
    np.testing.assert_array_equal(tensors["w"], w)


@pytest.mark.parametrize("huffman", [False, True])
def test_codebook_round_trip_with_long_gaps(huffman):
    w = np.zeros((10, 1000), dtype=np.float32)
    w[0, 0] = w[3, 999] = w[9, 5] = 1.0  # gaps far beyond any gap width: escapes needed
    codebook = np.array([-0.5, 1.0], dtype=np.float32)
    idx = np.where(w != 0, 1, -1)
    _, tensors = read_pakd(write_pakd([TensorPlan("w", w, codebook=codebook, indices=idx)], {}, huffman))
    np.testing.assert_array_equal(tensors["w"], w)


def test_int8_round_trip_reproduces_dequantized_values():
    from pakd.quant import dequantize_per_channel, quantize_per_channel

    w = torch.randn(8, 4, 3, 3)
    w[w.abs() < 1] = 0
    q, s = quantize_per_channel(w)
    deq = dequantize_per_channel(q, s).numpy()
    _, tensors = read_pakd(write_pakd([TensorPlan("w", deq, int8=q.numpy(), scales=s.numpy())], {}))
    np.testing.assert_allclose(tensors["w"], deq, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_accountant_bytes_are_the_file_and_the_file_is_the_model():
    torch.manual_seed(0)
    model = build_model("lenet5")
    with torch.no_grad():
        for p in model.parameters():
            p[p.abs() < p.abs().median()] = 0
    ws = WeightSharing(KMeansConfig(bits={"conv": 8, "linear": 5}))
    ws.setup(model)
    blob = serialize(model, {"model": "lenet5"}, ws)
    _, tensors = read_pakd(blob)
    for name, t in model.state_dict().items():
        np.testing.assert_array_equal(tensors[name], t.numpy())
    dense = 4 * sum(p.numel() for p in model.parameters())
    assert len(blob) < dense / 8  # half zeros, ~5-bit codes + ~2-bit gaps per nonzero: ~9-10x
    assert {p.name for p in tensor_plans(model, ws)} == set(model.state_dict())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:10], "shorter than the .pakd header"),
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:-8], "does not match the header"),
        (lambda b: b[:40] + bytes([b[40] ^ 0xFF]) + b[41:], "checksum mismatch"),
    ],
)
def test_hostile_files_are_rejected(mutate, message):
    blob = write_pakd([TensorPlan("w", _sparse((16, 16), 0.2))], {})
    with pytest.raises(FormatError, match=message):
        read_pakd(mutate(blob))


def test_record_lengths_are_checked_even_with_a_valid_checksum():
    """A forged file (checksum recomputed) whose record claims more bytes than its section has."""
    import struct
    import zlib

    blob = bytearray(write_pakd([TensorPlan("w", np.ones((4, 4), np.float32), allow_sparse=False)], {}))
    i = blob.find(struct.pack("<I", 64))  # the dense value block's byte length
    blob[i : i + 4] = struct.pack("<I", 1 << 30)
    blob[24:28] = struct.pack("<I", zlib.crc32(bytes(blob[32:])))
    with pytest.raises(FormatError):
        read_pakd(bytes(blob))
