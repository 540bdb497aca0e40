"""Huffman coding: exact round trips, optimal-length property, corrupt input."""

import numpy as np
import pytest

from pakd.lower import huffman


@pytest.mark.parametrize(
    "symbols, alphabet",
    [
        (np.array([], dtype=np.int64), 4),
        (np.array([3, 3, 3, 3]), 4),
        (np.array([0, 1]), 2),
        (np.random.default_rng(0).integers(0, 32, 5000), 32),
        (np.random.default_rng(1).geometric(0.2, 20000).clip(1, 255) - 1, 256),
    ],
)
def test_round_trip_is_exact(symbols, alphabet):
    blob = huffman.encode(symbols, alphabet)
    decoded, used = huffman.decode(blob)
    assert used == len(blob) == huffman.encoded_size(symbols, alphabet)
    np.testing.assert_array_equal(decoded, symbols)


def test_skewed_data_compresses_below_fixed_width():
    s = np.random.default_rng(0).geometric(0.5, 10000).clip(1, 32) - 1
    assert huffman.encoded_size(s, 32) < 10000 * 5 / 8 * 0.5


def test_code_is_prefix_free_and_canonical():
    lengths = huffman.code_lengths(np.array([0] * 8 + [1] * 4 + [2] * 2 + [3]), 4)
    assert lengths.tolist() == [1, 2, 3, 3]
    codes = huffman.canonical_codes(lengths)
    words = [format(c, f"0{n}b") for c, n in codes.values()]
    assert not any(a != b and b.startswith(a) for a in words for b in words)
    assert sum(2.0 ** -int(n) for n in lengths if n) == 1.0  # Kraft equality: a full tree


def test_truncated_payload_is_an_error():
    blob = huffman.encode(np.arange(16).repeat(10), 16)
    with pytest.raises(ValueError):
        huffman.decode(blob[:-3])
