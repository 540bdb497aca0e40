"""The native loader refuses malformed and hostile files with a ValueError that says why
(PAKD_ERR_BAD_FORMAT), and never crashes or reads out of bounds (the sanitizer/fuzz build in
tests/tools checks the 'never reads out of bounds' part under ASan)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch

from pakd._core import Session
from pakd.lower import native
from pakd.lower.accountant import serialize, tensor_plans
from pakd.lower.format import HEADER, write_pakd
from pakd.models import build_model
from pakd.quant import KMeansConfig, WeightSharing


def _fix_crc(blob: bytearray) -> bytes:
    struct.pack_into("<I", blob, 24, zlib.crc32(bytes(blob[HEADER.size :])))
    return bytes(blob)


@pytest.fixture(scope="module")
def small_blob() -> bytes:
    torch.manual_seed(0)
    model = build_model("lenet5").eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p[p.abs() < p.abs().flatten().quantile(0.9)] = 0
    ws = WeightSharing(KMeansConfig(bits={"conv": 6, "linear": 4}))
    ws.setup(model)
    return serialize(model, {"input_shape": [1, 28, 28]}, ws)


def test_every_truncation_is_refused(small_blob):
    for n in sorted({0, 1, 31, 32, 33, 100, len(small_blob) // 2, len(small_blob) - 1}):
        with pytest.raises(ValueError, match="bad format"):
            Session(small_blob[:n])


def test_truncation_with_a_consistent_header_is_refused(small_blob):
    """Cut the file and rewrite size and checksum: the section and record bounds must catch it."""
    rng = np.random.default_rng(0)
    for n in rng.integers(HEADER.size + 1, len(small_blob), 40):
        cut = bytearray(small_blob[:n])
        struct.pack_into("<Q", cut, 16, n)
        with pytest.raises(ValueError, match="bad format"):
            Session(_fix_crc(cut))


def test_random_corruption_with_valid_checksum_never_crashes(small_blob):
    rng = np.random.default_rng(1)
    refused = 0
    for _ in range(300):
        b = bytearray(small_blob)
        for pos in rng.integers(HEADER.size, len(b), rng.integers(1, 4)):
            b[pos] = int(rng.integers(0, 256))
        try:
            s = Session(_fix_crc(b))
            s.run(np.zeros((1, 28, 28), np.float32))  # a file that still validates must run
        except ValueError as exc:
            assert "bad format" in str(exc)
            refused += 1
    assert refused > 0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:4] + struct.pack("<H", 9) + b[6:], "unsupported .pakd version 9"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum mismatch"),
    ],
)
def test_header_errors_say_why(small_blob, mutate, message):
    with pytest.raises(ValueError, match=message):
        Session(mutate(small_blob))


def test_weights_only_file_is_refused_with_a_reason():
    model = build_model("lenet-300-100")
    blob = write_pakd(tensor_plans(model), {})
    with pytest.raises(ValueError, match="no GRAPH section"):
        Session(blob)


def _lowered_lenet5():
    return native.lower(build_model("lenet5").eval(), (1, 28, 28))


def _blob(lowered) -> bytes:
    return write_pakd(lowered.tensors, {}, graph=lowered.graph_bytes())


def test_inconsistent_output_shape_is_refused():
    lowered = _lowered_lenet5()
    lowered.shapes[lowered.ops[0].output] = (20, 25, 24)
    with pytest.raises(ValueError, match=r"output shape \(20, 25, 24\) but the op gives \(20, 24, 24\)"):
        Session(_blob(lowered))


def test_value_read_before_it_is_computed_is_refused():
    lowered = _lowered_lenet5()
    lowered.ops[0].inputs = [lowered.ops[3].output]
    with pytest.raises(ValueError, match="before it is computed"):
        Session(_blob(lowered))


def test_tensor_reference_out_of_range_is_refused():
    lowered = _lowered_lenet5()
    lowered.refs[0] = (999, -1, -1)
    with pytest.raises(ValueError, match="weight tensor index out of range"):
        Session(_blob(lowered))


def test_weight_that_does_not_fit_the_input_is_refused():
    lowered = _lowered_lenet5()
    w, s, b = lowered.refs[0]
    lowered.refs[0] = (lowered.refs[2][0], s, b)  # conv2's weight on conv1
    with pytest.raises(ValueError, match="does not fit input"):
        Session(_blob(lowered))


def test_absurd_dimensions_are_refused():
    lowered = _lowered_lenet5()
    lowered.shapes[0] = (1, 1 << 20, 1 << 20)
    with pytest.raises(ValueError, match="too many elements"):
        Session(_blob(lowered))


def test_huge_declared_shape_is_refused_before_allocating(small_blob):
    """A few bytes claiming a 2^22-element dense tensor: refused by the block-size check, before
    anything that size is allocated (found by the fuzzer: 1 GB allocated for a 2 KB file)."""
    import resource

    b = bytearray(small_blob)
    name = b"features.0.bias"
    at = b.index(name) + len(name)
    assert b[at + 1] == 0  # dense layout: the block size must match the shape
    struct.pack_into("<I", b, at + 4, 1 << 22)  # dims[0]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="block|bit-packed"):
        Session(_fix_crc(b))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB: < 64 MiB more
