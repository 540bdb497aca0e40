"""Canonical Huffman coding of small-alphabet symbol streams (codebook indices, index gaps).

Serialized form (what the size accountant counts and the native loader decodes):
    u16 alphabet size A, then A code lengths (u8 each, 0 = symbol absent),
    u32 symbol count N, u32 payload bytes P, then P bytes of MSB-first bitstream.
Canonical codes are rebuilt from the lengths alone, so no tree is stored.
"""

from __future__ import annotations

import heapq
import struct
from collections import Counter

import numpy as np

MAX_CODE_LENGTH = 24


def code_lengths(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    """Huffman code length per symbol of the alphabet (0 for absent symbols)."""
    counts = Counter(symbols.tolist())
    lengths = np.zeros(alphabet, dtype=np.uint8)
    if not counts:
        return lengths
    if len(counts) == 1:
        lengths[next(iter(counts))] = 1
        return lengths
    heap = [(c, i, (s,)) for i, (s, c) in enumerate(sorted(counts.items()))]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    if lengths.max() > MAX_CODE_LENGTH:  # pathological skew; cannot happen below 2^24 symbols
        raise ValueError("Huffman code too long")
    return lengths


def canonical_codes(lengths: np.ndarray) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length), canonical order: by length, then by symbol."""
    code, prev_len, out = 0, 0, {}
    for length, sym in sorted((int(n), s) for s, n in enumerate(lengths) if n):
        code <<= length - prev_len
        out[sym] = (code, length)
        code += 1
        prev_len = length
    return out


def encode(symbols: np.ndarray, alphabet: int) -> bytes:
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet):
        raise ValueError("symbol outside the alphabet")
    lengths = code_lengths(symbols, alphabet)
    codes = canonical_codes(lengths)
    acc, nbits, out = 0, 0, bytearray()
    for s in symbols.tolist():
        code, length = codes[s]
        acc = (acc << length) | code
        nbits += length
        while nbits >= 8:
            nbits -= 8
            out.append((acc >> nbits) & 0xFF)
        acc &= (1 << nbits) - 1
    if nbits:
        out.append((acc << (8 - nbits)) & 0xFF)
    return struct.pack("<H", alphabet) + lengths.tobytes() + struct.pack("<II", symbols.size, len(out)) + bytes(out)


def decode(blob: bytes) -> tuple[np.ndarray, int]:
    """Inverse of :func:`encode`; returns (symbols, bytes consumed). Validates every length."""
    if len(blob) < 2:
        raise ValueError("Huffman block truncated")
    (alphabet,) = struct.unpack_from("<H", blob, 0)
    pos = 2 + alphabet
    if len(blob) < pos + 8:
        raise ValueError("Huffman block truncated")
    lengths = np.frombuffer(blob, dtype=np.uint8, count=alphabet, offset=2)
    if lengths.size and lengths.max() > MAX_CODE_LENGTH:
        raise ValueError("Huffman code length out of range")
    n, payload = struct.unpack_from("<II", blob, pos)
    pos += 8
    if len(blob) < pos + payload:
        raise ValueError("Huffman payload truncated")
    lookup = {(length, code): sym for sym, (code, length) in canonical_codes(lengths).items()}
    out = np.empty(n, dtype=np.int64)
    code = length = i = 0
    for byte in blob[pos : pos + payload]:
        for bit in range(7, -1, -1):
            if i == n:
                break
            code = (code << 1) | ((byte >> bit) & 1)
            length += 1
            sym = lookup.get((length, code))
            if sym is not None:
                out[i] = sym
                i += 1
                code = length = 0
            elif length > MAX_CODE_LENGTH:
                raise ValueError("invalid Huffman code in payload")
    if i != n:
        raise ValueError("Huffman payload ended early")
    return out, pos + payload


def encoded_size(symbols: np.ndarray, alphabet: int) -> int:
    """Bytes :func:`encode` would produce, without building the bitstream."""
    symbols = np.asarray(symbols, dtype=np.int64)
    lengths = code_lengths(symbols, alphabet).astype(np.int64)
    bits = int(np.bincount(symbols, minlength=alphabet) @ lengths) if symbols.size else 0
    return 2 + alphabet + 8 + (bits + 7) // 8
