"""The ``.pakd`` container: header, section table, sections. Documented in docs/format.md.

This module writes (and, for tests and tools, reads back) the file. The size accountant is
``len(write_pakd(...))``: the reported compressed size is the byte count of this very file,
counting every header, index, codebook and scale.

Weight tensors are stored dense or sparse, with values as f32, per-channel int8 or codebook
indices (b bits). Sparse tensors list their nonzeros in flattened order with *relative* indices:
each gap (distance to the previous nonzero, >= 1) is a b-bit symbol, and the symbol 0 is an
escape meaning "advance 2^b - 1 positions without a value" (Deep Compression's filler, without
spending a value on it). Codebook indices and gaps are bit-packed, or Huffman-coded
(``pakd.lower.huffman``) when that is smaller.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PakdError
from . import huffman

MAGIC = b"PAKD"
VERSION = (1, 1)  # 1.1: op types 12-16 and activations 5-8 (docs/format.md)
HEADER = struct.Struct("<4sHHIIQII")  # magic, major, minor, flags, sections, file size, crc32, reserved
SECTION = struct.Struct("<IIQQ")  # kind, reserved, offset, length
SECTION_META, SECTION_GRAPH, SECTION_TENSORS = 1, 2, 3
ALIGN = 8

ENC_F32, ENC_INT8, ENC_CODEBOOK = 0, 1, 2
LAYOUT_DENSE, LAYOUT_SPARSE = 0, 1
FLAG_VALUES_HUFFMAN, FLAG_GAPS_HUFFMAN = 1, 2
GAP_BITS = range(2, 9)


class FormatError(PakdError):
    """A .pakd file that is truncated, corrupted or not a .pakd file at all."""


@dataclass(frozen=True)
class TensorPlan:
    """One tensor and how to store it. ``codebook``+``indices`` (int per element, -1 = zero) for
    weight sharing; ``int8``+``scales`` for int8; otherwise ``values`` in f32."""

    name: str
    values: np.ndarray  # float32, the exact values the file reproduces
    codebook: np.ndarray | None = None
    indices: np.ndarray | None = None
    int8: np.ndarray | None = None
    scales: np.ndarray | None = None
    allow_sparse: bool = True

    @property
    def encoding(self) -> int:
        if self.codebook is not None:
            return ENC_CODEBOOK
        return ENC_INT8 if self.int8 is not None else ENC_F32


def _pack_bits(symbols: np.ndarray, bits: int) -> bytes:
    """LSB-first bit packing of non-negative ints < 2^bits."""
    if symbols.size == 0:
        return b""
    s = symbols.astype(np.uint32)
    bitplanes = ((s[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(bitplanes.reshape(-1), bitorder="little").tobytes()


def _unpack_bits(blob: bytes, bits: int, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    need = (n * bits + 7) // 8
    if len(blob) < need:
        raise FormatError("bit-packed block truncated")
    planes = np.unpackbits(np.frombuffer(blob, np.uint8, count=need), bitorder="little")[: n * bits]
    return (planes.reshape(n, bits).astype(np.int64) << np.arange(bits)).sum(1)


def _gap_symbols(positions: np.ndarray, bits: int) -> np.ndarray:
    """Relative indices with escapes: gaps >= 1, symbol 0 = skip (2^bits - 1) positions."""
    limit = (1 << bits) - 1
    gaps = np.diff(positions, prepend=-1)
    escapes = (gaps - 1) // limit  # how many escapes before each entry
    out = np.zeros(int(escapes.sum()) + gaps.size, dtype=np.int64)
    where = np.cumsum(escapes + 1) - 1  # slot of each real entry
    out[where] = gaps - escapes * limit
    return out


def _positions_from_gaps(symbols: np.ndarray, bits: int, n_values: int, total: int) -> np.ndarray:
    limit = (1 << bits) - 1
    steps = np.where(symbols == 0, limit, symbols)
    pos = np.cumsum(steps) - 1
    real = pos[symbols != 0]
    if real.size != n_values or (real.size and (real[-1] >= total or np.any(np.diff(real) <= 0))):
        raise FormatError("sparse index stream inconsistent with tensor shape")
    return real


def _block(packed: bytes, symbols: np.ndarray, alphabet: int, allow_huffman: bool) -> tuple[bytes, bool]:
    """The smaller of the bit-packed and the Huffman form; (bytes, is_huffman)."""
    if allow_huffman and symbols.size and huffman.encoded_size(symbols, alphabet) < len(packed):
        return huffman.encode(symbols, alphabet), True
    return packed, False


def _value_stream(plan: TensorPlan, flat_mask: np.ndarray | None, huff: bool) -> tuple[bytes, bytes, bool]:
    """(encoding parameters, value block, huffman?) for the selected elements."""
    sel = (lambda a: a.reshape(-1)) if flat_mask is None else (lambda a: a.reshape(-1)[flat_mask])
    if plan.encoding == ENC_CODEBOOK:
        assert plan.codebook is not None and plan.indices is not None
        k = plan.codebook.size
        bits = max(1, int(np.ceil(np.log2(max(k, 2)))))
        idx = sel(plan.indices)
        if idx.size and idx.min() < 0:
            raise PakdError(f"{plan.name}: a stored element has no codebook index")
        params = struct.pack("<BxH", bits, k) + plan.codebook.astype("<f4").tobytes()
        block, is_huff = _block(_pack_bits(idx, bits), idx, k, huff)
        return params, block, is_huff
    if plan.encoding == ENC_INT8:
        assert plan.scales is not None and plan.int8 is not None
        params = plan.scales.astype("<f4").tobytes()
        return params, sel(plan.int8).astype(np.int8).tobytes(), False
    return b"", sel(plan.values).astype("<f4").tobytes(), False


def _tensor_record(plan: TensorPlan, huff: bool) -> bytes:
    shape = plan.values.shape
    name = plan.name.encode()
    flat = plan.values.reshape(-1)
    nz = flat != 0

    def head(layout: int, flags: int) -> bytes:
        return (
            struct.pack("<H", len(name))
            + name
            + struct.pack("<BBBB", plan.encoding, layout, len(shape), flags)
            + struct.pack(f"<{len(shape)}I", *shape)
        )

    dense = None
    if plan.indices is None or not (plan.indices < 0).any():  # dense codebook needs an index everywhere
        params, values, vh = _value_stream(plan, None, huff)
        dense = head(LAYOUT_DENSE, FLAG_VALUES_HUFFMAN * vh) + params + struct.pack("<I", len(values)) + values
    if not plan.allow_sparse or flat.size == 0:
        if dense is None:
            raise PakdError(f"{plan.name}: zeros without codebook indices need the sparse layout")
        return dense
    positions = np.flatnonzero(nz)
    params, values, vh = _value_stream(plan, nz, huff)
    best = None
    for bits in GAP_BITS:
        sym = _gap_symbols(positions, bits)
        gaps, gh = _block(_pack_bits(sym, bits), sym, 1 << bits, huff)
        if best is None or len(gaps) < len(best[1]):
            best = (bits, gaps, gh, sym.size)
    assert best is not None  # GAP_BITS is not empty
    bits, gaps, gh, n_sym = best
    sparse = (
        head(LAYOUT_SPARSE, FLAG_VALUES_HUFFMAN * vh | FLAG_GAPS_HUFFMAN * gh)
        + params
        + struct.pack("<BxxxII", bits, positions.size, n_sym)
        + struct.pack("<I", len(values))
        + values
        + struct.pack("<I", len(gaps))
        + gaps
    )
    return sparse if dense is None or len(sparse) < len(dense) else dense


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % ALIGN)


def write_pakd(tensors: list[TensorPlan], meta: dict, huffman_coding: bool = True, graph: bytes | None = None) -> bytes:
    """Serialize to .pakd bytes. ``graph`` is the op-graph section (added by the native runtime)."""
    sections = [(SECTION_META, json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())]
    if graph is not None:
        sections.append((SECTION_GRAPH, graph))
    body = struct.pack("<I", len(tensors)) + b"".join(_tensor_record(t, huffman_coding) for t in tensors)
    sections.append((SECTION_TENSORS, body))
    offset = HEADER.size + SECTION.size * len(sections)
    offset += -offset % ALIGN
    table, payload = b"", b""
    for kind, data in sections:
        table += SECTION.pack(kind, 0, offset + len(payload), len(data))
        payload += _pad(data)
    after_header = _pad(table) + payload
    size = HEADER.size + len(after_header)
    crc = zlib.crc32(after_header)
    return HEADER.pack(MAGIC, *VERSION, 0, len(sections), size, crc, 0) + after_header


class _Reader:
    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise FormatError(f"record runs past its section (offset {self.pos}, {n} bytes)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))


def read_pakd(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse and validate a .pakd file: (meta, tensors decoded to dense float32)."""
    try:
        return _read(data)
    except (ValueError, struct.error) as exc:  # Huffman, JSON and struct failures inside sections
        raise FormatError(f"malformed .pakd file: {exc}") from None


def _read(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    if len(data) < HEADER.size:
        raise FormatError("file shorter than the .pakd header")
    magic, major, _minor, _flags, n_sections, size, crc, _ = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("not a .pakd file (bad magic)")
    if major != VERSION[0]:
        raise FormatError(f"unsupported .pakd version {major}")
    if size != len(data):
        raise FormatError(f"file size {len(data)} does not match the header's {size} (truncated?)")
    if zlib.crc32(data[HEADER.size :]) != crc:
        raise FormatError("checksum mismatch (file corrupted)")
    if HEADER.size + n_sections * SECTION.size > size:
        raise FormatError("section table runs past the end of the file")
    meta, tensors = {}, {}
    for i in range(n_sections):
        kind, _, off, length = SECTION.unpack_from(data, HEADER.size + i * SECTION.size)
        if off + length > size:
            raise FormatError(f"section {i} runs past the end of the file")
        if kind == SECTION_META:
            meta = json.loads(data[off : off + length])
        elif kind == SECTION_TENSORS:
            tensors = _read_tensors(_Reader(data, off, off + length))
    return meta, tensors


def _read_tensors(r: _Reader) -> dict[str, np.ndarray]:
    out = {}
    (count,) = r.unpack("<I")
    for _ in range(count):
        (name_len,) = r.unpack("<H")
        name = r.take(name_len).decode()
        enc, layout, ndim, flags = r.unpack("<BBBB")
        shape = r.unpack(f"<{ndim}I")
        total = int(np.prod(shape, dtype=np.int64))
        codebook = scales = np.zeros(0, np.float32)  # read below for the encodings that have them
        if enc == ENC_CODEBOOK:
            bits, k = r.unpack("<BxH")
            codebook = np.frombuffer(r.take(4 * k), "<f4")
        elif enc == ENC_INT8:
            scales = np.frombuffer(r.take(4 * shape[0]), "<f4")
        elif enc != ENC_F32:
            raise FormatError(f"{name}: unknown value encoding {enc}")
        n_values, positions = total, None
        if layout == LAYOUT_SPARSE:
            gap_bits, n_values, n_sym = r.unpack("<BxxxII")
            if gap_bits not in GAP_BITS or n_values > total:
                raise FormatError(f"{name}: bad sparse header")
        elif layout != LAYOUT_DENSE:
            raise FormatError(f"{name}: unknown layout {layout}")
        (vlen,) = r.unpack("<I")
        vblock = r.take(vlen)
        if enc == ENC_CODEBOOK:
            idx = huffman.decode(vblock)[0] if flags & FLAG_VALUES_HUFFMAN else _unpack_bits(vblock, bits, n_values)
            if idx.size != n_values or (idx.size and idx.max() >= codebook.size):
                raise FormatError(f"{name}: codebook indices out of range")
            values = codebook[idx]
        elif enc == ENC_INT8:
            if vlen != n_values:
                raise FormatError(f"{name}: int8 block has {vlen} bytes, expected {n_values}")
            q = np.frombuffer(vblock, np.int8).astype(np.float32)
            values = q  # scaled below, once rows are known
        else:
            if vlen != 4 * n_values:
                raise FormatError(f"{name}: f32 block has {vlen} bytes, expected {4 * n_values}")
            values = np.frombuffer(vblock, "<f4")
        if layout == LAYOUT_SPARSE:
            (glen,) = r.unpack("<I")
            gblock = r.take(glen)
            sym = huffman.decode(gblock)[0] if flags & FLAG_GAPS_HUFFMAN else _unpack_bits(gblock, gap_bits, n_sym)
            positions = _positions_from_gaps(sym, gap_bits, n_values, total)
        dense = np.zeros(total, dtype=np.float32)
        if positions is None:
            dense[:] = values
        else:
            dense[positions] = values
        if enc == ENC_INT8:
            rows = shape[0]
            dense = (dense.reshape(rows, -1) * scales[:, None]).reshape(-1)
        out[name] = dense.reshape(shape)
    return out
