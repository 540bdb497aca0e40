// .pakd reader. Layout: docs/format.md; writer: pakd/lower/format.py and
// pakd/lower/native.py. Nothing here trusts a number from the file before
// checking it against what is left of the buffer.
#include "runtime/model-file.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

namespace pakd::runtime {
namespace {

constexpr std::uint32_t kSectionMeta = 1, kSectionGraph = 2, kSectionTensors = 3;
constexpr std::size_t kHeaderSize = 32, kSectionEntrySize = 24;
constexpr std::uint8_t kLayoutDense = 0, kLayoutSparse = 1;
constexpr std::uint8_t kFlagValuesHuffman = 1, kFlagGapsHuffman = 2;
constexpr int kMaxHuffmanLength = 24;

[[noreturn]] void fail(const std::string& message) { throw FormatError(message); }

// Bounds-checked little-endian cursor over [begin, end).
class Reader {
 public:
  Reader(const std::uint8_t* begin, std::size_t size, std::string what)
      : p_(begin), end_(begin + size), what_(std::move(what)) {}

  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }

  const std::uint8_t* take(std::size_t n, const char* field) {
    if (n > left()) {
      fail(what_ + ": " + field + " runs past the end (" + std::to_string(n) + " bytes wanted, " +
           std::to_string(left()) + " left)");
    }
    const std::uint8_t* out = p_;
    p_ += n;
    return out;
  }
  std::uint8_t u8(const char* f) { return *take(1, f); }
  std::uint16_t u16(const char* f) {
    const std::uint8_t* b = take(2, f);
    return static_cast<std::uint16_t>(b[0] | (b[1] << 8));
  }
  std::uint32_t u32(const char* f) {
    const std::uint8_t* b = take(4, f);
    return static_cast<std::uint32_t>(b[0]) | (static_cast<std::uint32_t>(b[1]) << 8) |
           (static_cast<std::uint32_t>(b[2]) << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
  }
  std::int32_t i32(const char* f) {
    const std::uint32_t u = u32(f);
    std::int32_t v;
    std::memcpy(&v, &u, 4);
    return v;
  }
  std::uint64_t u64(const char* f) {
    const std::uint64_t lo = u32(f);
    const std::uint64_t hi = u32(f);
    return lo | (hi << 32);
  }
  float f32(const char* f) {
    const std::uint32_t u = u32(f);
    float v;
    std::memcpy(&v, &u, 4);
    return v;
  }
  const std::string& what() const { return what_; }
  void set_what(std::string w) { what_ = std::move(w); }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
  std::string what_;
};

std::uint32_t crc32(const std::uint8_t* data, std::size_t n) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// ---------------------------------------------------------------------------
// Symbol streams: bit-packed (LSB first) or canonical Huffman (MSB first)
// ---------------------------------------------------------------------------

std::vector<std::uint32_t> unpack_bits(const std::uint8_t* block, std::size_t bytes, unsigned bits, std::size_t n,
                                       const std::string& what) {
  if (bits == 0 || bits > 16) fail(what + ": bad bit width " + std::to_string(bits));
  if (n > (std::numeric_limits<std::size_t>::max() - 7) / bits || (n * bits + 7) / 8 > bytes) {
    fail(what + ": bit-packed block is shorter than its " + std::to_string(n) + " symbols");
  }
  std::vector<std::uint32_t> out(n);
  std::size_t bit = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t v = 0;
    for (unsigned b = 0; b < bits; ++b, ++bit) {
      v |= static_cast<std::uint32_t>((block[bit >> 3] >> (bit & 7)) & 1u) << b;
    }
    out[i] = v;
  }
  return out;
}

// Decodes a Huffman block that must hold exactly `expected` symbols of an
// alphabet of at most `alphabet_max` symbols; the block must fill `bytes`.
std::vector<std::uint32_t> huffman_decode(const std::uint8_t* block, std::size_t bytes, std::size_t expected,
                                          std::size_t alphabet_max, const std::string& what) {
  Reader r(block, bytes, what + " (Huffman block)");
  const std::uint16_t alphabet = r.u16("alphabet size");
  if (alphabet > alphabet_max) fail(r.what() + ": alphabet of " + std::to_string(alphabet) + " symbols");
  const std::uint8_t* lengths = r.take(alphabet, "code lengths");
  const std::uint32_t n = r.u32("symbol count");
  const std::uint32_t payload = r.u32("payload size");
  const std::uint8_t* bits = r.take(payload, "payload");
  if (r.left() != 0) fail(r.what() + ": trailing bytes");
  if (n > std::uint64_t{payload} * 8) fail(r.what() + ": more symbols than payload bits");
  if (n != expected) {
    fail(r.what() + ": holds " + std::to_string(n) + " symbols, expected " + std::to_string(expected));
  }
  // Canonical code: symbols sorted by (length, symbol).
  std::array<std::uint32_t, kMaxHuffmanLength + 2> count{};
  for (std::size_t s = 0; s < alphabet; ++s) {
    if (lengths[s] > kMaxHuffmanLength) fail(r.what() + ": code length out of range");
    if (lengths[s]) ++count[lengths[s]];
  }
  std::array<std::uint32_t, kMaxHuffmanLength + 2> offset{};
  for (int l = 1; l <= kMaxHuffmanLength; ++l) offset[l + 1] = offset[l] + count[l];
  std::vector<std::uint32_t> sorted(offset[kMaxHuffmanLength + 1]);
  {
    auto next = offset;
    for (std::size_t s = 0; s < alphabet; ++s) {
      if (lengths[s]) sorted[next[lengths[s]]++] = static_cast<std::uint32_t>(s);
    }
  }
  // Kraft check: an over-full code would make decoding ambiguous.
  std::uint64_t kraft = 0;
  for (int l = 1; l <= kMaxHuffmanLength; ++l) kraft += std::uint64_t{count[l]} << (kMaxHuffmanLength - l);
  if (kraft > (std::uint64_t{1} << kMaxHuffmanLength)) fail(r.what() + ": invalid code lengths");

  std::vector<std::uint32_t> out(n);
  std::size_t i = 0;
  std::uint32_t code = 0, first = 0;
  int len = 0;
  const std::size_t total_bits = std::size_t{payload} * 8;
  for (std::size_t bit = 0; bit < total_bits && i < n; ++bit) {
    code = (code << 1) | ((bits[bit >> 3] >> (7 - (bit & 7))) & 1u);
    ++len;
    // first code of this length: (first of previous length + count) << 1
    if (len > 1) first = (first + count[len - 1]) << 1;
    if (code - first < count[len]) {
      out[i++] = sorted[offset[len] + (code - first)];
      code = first = 0;
      len = 0;
    } else if (len >= kMaxHuffmanLength) {
      fail(r.what() + ": invalid code in payload");
    }
  }
  if (i != n) fail(r.what() + ": payload ended after " + std::to_string(i) + " of " + std::to_string(n) + " symbols");
  return out;
}

// ---------------------------------------------------------------------------
// TENSORS
// ---------------------------------------------------------------------------

std::size_t checked_numel(const std::vector<std::size_t>& dims, const std::string& what) {
  std::uint64_t n = 1;
  for (std::size_t d : dims) {
    if (d == 0) fail(what + ": zero-sized dimension");
    if (d > kMaxElements || n * d > kMaxElements) fail(what + ": too many elements");
    n *= d;
  }
  return static_cast<std::size_t>(n);
}

Tensor read_tensor(Reader& r, std::size_t index) {
  Tensor t;
  const std::string where = "tensor #" + std::to_string(index);
  r.set_what(where);
  const std::uint16_t name_len = r.u16("name length");
  const std::uint8_t* name = r.take(name_len, "name");
  t.name.assign(reinterpret_cast<const char*>(name), name_len);
  const std::string what = where + " '" + t.name + "'";
  r.set_what(what);
  const std::uint8_t enc = r.u8("encoding");
  const std::uint8_t layout = r.u8("layout");
  const std::uint8_t ndim = r.u8("ndim");
  const std::uint8_t flags = r.u8("flags");
  if (enc > 2) fail(what + ": unknown value encoding " + std::to_string(enc));
  if (layout != kLayoutDense && layout != kLayoutSparse) fail(what + ": unknown layout " + std::to_string(layout));
  if (ndim == 0 || ndim > kMaxDims) fail(what + ": bad number of dimensions " + std::to_string(ndim));
  if (flags & ~(kFlagValuesHuffman | kFlagGapsHuffman)) fail(what + ": unknown flags");
  t.encoding = static_cast<Encoding>(enc);
  for (unsigned d = 0; d < ndim; ++d) t.dims.push_back(r.u32("dims"));
  t.numel = checked_numel(t.dims, what);

  unsigned bits = 0;
  if (t.encoding == Encoding::kCodebook) {
    bits = r.u8("codebook bits");
    r.u8("pad");
    const std::uint16_t k = r.u16("codebook size");
    if (bits < 1 || bits > 8) fail(what + ": codebook index width " + std::to_string(bits) + " (1..8 supported)");
    if (k == 0 || k > (1u << bits))
      fail(what + ": codebook of " + std::to_string(k) + " entries for " + std::to_string(bits) + "-bit indices");
    t.codebook.resize(k);
    for (auto& c : t.codebook) c = r.f32("centroids");
  } else if (t.encoding == Encoding::kInt8) {
    t.scales.resize(t.dims[0]);
    for (auto& s : t.scales) s = r.f32("scales");
  }

  std::size_t n_values = t.numel;
  unsigned gap_bits = 0;
  std::uint32_t n_symbols = 0;
  if (layout == kLayoutSparse) {
    gap_bits = r.u8("gap bits");
    r.take(3, "pad");
    n_values = r.u32("nonzeros");
    n_symbols = r.u32("gap symbols");
    if (gap_bits < 2 || gap_bits > 8) fail(what + ": gap width " + std::to_string(gap_bits) + " (2..8 allowed)");
    if (n_values > t.numel) fail(what + ": more nonzeros than elements");
    if (n_symbols < n_values) fail(what + ": fewer gap symbols than nonzeros");
  }
  const std::uint32_t value_bytes = r.u32("value block size");
  const std::uint8_t* vblock = r.take(value_bytes, "value block");
  // Sizes implied by the block, checked before anything is allocated.
  if (t.encoding == Encoding::kF32 && value_bytes / 4 != n_values) {
    fail(what + ": f32 block has " + std::to_string(value_bytes) + " bytes, expected " + std::to_string(4 * n_values));
  }
  if (t.encoding == Encoding::kInt8 && value_bytes != n_values) {
    fail(what + ": int8 block has " + std::to_string(value_bytes) + " bytes, expected " + std::to_string(n_values));
  }
  if (t.encoding == Encoding::kCodebook && !(flags & kFlagValuesHuffman) &&
      (static_cast<std::uint64_t>(n_values) * bits + 7) / 8 > value_bytes) {
    fail(what + ": bit-packed block is shorter than its " + std::to_string(n_values) + " symbols");
  }
  if (layout == kLayoutSparse && r.left() < 4) fail(what + ": gap block size runs past the end");

  std::vector<float> stored(n_values);
  if (t.encoding == Encoding::kCodebook) {
    std::vector<std::uint32_t> idx =
        (flags & kFlagValuesHuffman)
            ? huffman_decode(vblock, value_bytes, n_values, t.codebook.size(), what + " values")
            : unpack_bits(vblock, value_bytes, bits, n_values, what + " values");
    t.codes.resize(n_values);
    for (std::size_t i = 0; i < n_values; ++i) {
      if (idx[i] >= t.codebook.size()) fail(what + ": codebook index out of range");
      t.codes[i] = static_cast<std::uint8_t>(idx[i]);
      stored[i] = t.codebook[idx[i]];
    }
  } else if (t.encoding == Encoding::kInt8) {
    if (flags & kFlagValuesHuffman) fail(what + ": Huffman-coded int8 values are not defined");
    if (value_bytes != n_values)
      fail(what + ": int8 block has " + std::to_string(value_bytes) + " bytes, expected " + std::to_string(n_values));
    t.q.resize(n_values);
    if (n_values != 0) std::memcpy(t.q.data(), vblock, n_values);  // q.data() is NULL when empty
  } else {
    if (flags & kFlagValuesHuffman) fail(what + ": Huffman-coded f32 values are not defined");
    if (value_bytes / 4 != n_values || value_bytes % 4)
      fail(what + ": f32 block has " + std::to_string(value_bytes) + " bytes, expected " +
           std::to_string(4 * n_values));
    for (std::size_t i = 0; i < n_values; ++i) std::memcpy(&stored[i], vblock + 4 * i, 4);
  }

  if (layout == kLayoutSparse) {
    t.sparse = true;
    const std::uint32_t gap_bytes = r.u32("gap block size");
    const std::uint8_t* gblock = r.take(gap_bytes, "gap block");
    std::vector<std::uint32_t> sym =
        (flags & kFlagGapsHuffman)
            ? huffman_decode(gblock, gap_bytes, n_symbols, std::size_t{1} << gap_bits, what + " gaps")
            : unpack_bits(gblock, gap_bytes, gap_bits, n_symbols, what + " gaps");
    const std::uint64_t limit = (std::uint64_t{1} << gap_bits) - 1;
    std::uint64_t pos = 0;  // one past the previous element (start: -1 + 1)
    t.positions.reserve(n_values);
    for (std::uint32_t s : sym) {
      if (s > limit) fail(what + ": gap symbol out of range");
      if (s == 0) {
        pos += limit;
        if (pos > t.numel) fail(what + ": sparse index stream runs past the tensor");
        continue;
      }
      // position = previous + gap, with "previous" = -1 for the first element
      const std::uint64_t p = pos + s - 1;
      if (p >= t.numel) fail(what + ": sparse index stream runs past the tensor");
      if (t.positions.size() >= n_values) fail(what + ": more positions than nonzeros");
      t.positions.push_back(static_cast<std::uint32_t>(p));
      pos = p + 1;
    }
    if (t.positions.size() != n_values) fail(what + ": sparse index stream inconsistent with the nonzero count");
  }

  t.stored = std::move(stored);
  return t;
}

// Dense dequantized values of a tensor the graph uses (after the graph has
// checked its shape against the model, so a hostile shape never gets this far).
void expand_values(Tensor& t) {
  const std::vector<float>& stored = t.stored;
  const std::size_t n_values = t.sparse ? t.positions.size() : t.numel;
  t.values.assign(t.numel, 0.0f);
  if (t.encoding == Encoding::kInt8) {
    const std::size_t row = t.numel / t.dims[0];
    for (std::size_t i = 0; i < n_values; ++i) {
      const std::size_t p = t.sparse ? t.positions[i] : i;
      t.values[p] = static_cast<float>(t.q[i]) * t.scales[p / row];
    }
    if (t.sparse) {  // keep q per element for dense int8 kernels
      std::vector<std::int8_t> full(t.numel, 0);
      for (std::size_t i = 0; i < n_values; ++i) full[t.positions[i]] = t.q[i];
      t.q.swap(full);
    }
  } else {
    for (std::size_t i = 0; i < n_values; ++i) t.values[t.sparse ? t.positions[i] : i] = stored[i];
  }
  t.stored.clear();
  t.stored.shrink_to_fit();
}

// ---------------------------------------------------------------------------
// GRAPH
// ---------------------------------------------------------------------------

std::size_t attr_count(OpType type) {
  switch (type) {
    case OpType::kConv2d: return 7;
    case OpType::kConcat: return 1;
    case OpType::kMaxPool:
    case OpType::kAvgPool: return 10;
    case OpType::kBinary: return 3;
    case OpType::kClamp: return 2;
    case OpType::kPad: return 4;
    case OpType::kUpsample: return 2;
    case OpType::kChannelShuffle: return 1;
    default: return 0;
  }
}

const char* op_name(OpType type) {
  switch (type) {
    case OpType::kConv2d: return "conv2d";
    case OpType::kLinear: return "linear";
    case OpType::kAffine: return "affine";
    case OpType::kAct: return "act";
    case OpType::kAdd: return "add";
    case OpType::kConcat: return "concat";
    case OpType::kMaxPool: return "maxpool";
    case OpType::kAvgPool: return "avgpool";
    case OpType::kGlobalAvgPool: return "global-avgpool";
    case OpType::kReshape: return "reshape";
    case OpType::kSoftmax: return "softmax";
    case OpType::kBinary: return "binary";
    case OpType::kClamp: return "clamp";
    case OpType::kPad: return "pad";
    case OpType::kUpsample: return "upsample";
    case OpType::kChannelShuffle: return "channel-shuffle";
  }
  return "?";
}

std::string dims_string(const std::vector<std::size_t>& d) {
  std::string s = "(";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + ")";
}

// PyTorch's pooling output size.
std::int64_t pool_out(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d, bool ceil) {
  const std::int64_t span = in + 2 * p - d * (k - 1) - 1;
  if (span < 0) return 0;
  std::int64_t out = (span + (ceil ? s - 1 : 0)) / s + 1;
  if (ceil && (out - 1) * s >= in + p) --out;
  return out;
}

void check_op(const ModelFile& f, const OpDesc& op, std::size_t index) {
  const std::string what = "op #" + std::to_string(index) + " (" + op_name(op.type) + ")";
  const auto& shapes = f.graph.shapes;
  const auto& in = shapes[op.inputs[0]];
  const auto& out = shapes[op.output];
  auto tensor = [&](std::int32_t id, const char* role, bool required) -> const Tensor* {
    if (id == -1) {
      if (required) fail(what + ": needs a " + role + " tensor");
      return nullptr;
    }
    if (id < 0 || static_cast<std::size_t>(id) >= f.tensors.size())
      fail(what + ": " + role + " tensor index out of range");
    return &f.tensors[static_cast<std::size_t>(id)];
  };
  auto vector_of = [&](const Tensor* t, std::size_t n, const char* role) {
    if (t && (t->dims.size() != 1 || t->dims[0] != n)) {
      fail(what + ": " + role + " tensor '" + t->name + "' has shape " + dims_string(t->dims) + ", expected (" +
           std::to_string(n) + ")");
    }
  };
  auto expect_out = [&](const std::vector<std::size_t>& expected) {
    if (out != expected)
      fail(what + ": output shape " + dims_string(out) + " but the op gives " + dims_string(expected));
  };
  const bool has_tensors = op.type == OpType::kConv2d || op.type == OpType::kLinear || op.type == OpType::kAffine;
  if (!has_tensors && (op.weight != -1 || op.scale != -1 || op.bias != -1)) fail(what + ": takes no tensors");
  const std::size_t n_in = op.inputs.size();
  if (op.type == OpType::kAdd      ? n_in != 2
      : op.type == OpType::kConcat ? n_in < 2
      : op.type == OpType::kBinary ? (n_in != 1 && n_in != 2)
                                   : n_in != 1) {
    fail(what + ": wrong number of inputs (" + std::to_string(n_in) + ")");
  }
  if (op.act != Act::kNone &&
      !(op.type == OpType::kConv2d || op.type == OpType::kLinear || op.type == OpType::kAffine ||
        op.type == OpType::kAdd || op.type == OpType::kAct || op.type == OpType::kBinary)) {
    fail(what + ": cannot carry an activation");
  }
  const auto& a = op.attrs;
  switch (op.type) {
    case OpType::kConv2d: {
      const Tensor* w = tensor(op.weight, "weight", true);
      if (in.size() != 3) fail(what + ": input must be C x H x W, got " + dims_string(in));
      if (w->dims.size() != 4) fail(what + ": weight must be 4-D");
      const std::int64_t sh = a[0], sw = a[1], ph = a[2], pw = a[3], dh = a[4], dw = a[5], g = a[6];
      if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || ph < 0 || pw < 0 || g < 1 || sh > 65536 || sw > 65536 || dh > 65536 ||
          dw > 65536 || ph > 65536 || pw > 65536) {
        fail(what + ": bad stride/padding/dilation/groups");
      }
      const std::size_t cout = w->dims[0], cin_g = w->dims[1], kh = w->dims[2], kw = w->dims[3];
      if (in[0] % static_cast<std::size_t>(g) || cout % static_cast<std::size_t>(g) ||
          in[0] / static_cast<std::size_t>(g) != cin_g) {
        fail(what + ": weight " + dims_string(w->dims) + " does not fit input " + dims_string(in) +
             " with groups=" + std::to_string(g));
      }
      const std::int64_t ho =
          pool_out(static_cast<std::int64_t>(in[1]), static_cast<std::int64_t>(kh), sh, ph, dh, false);
      const std::int64_t wo =
          pool_out(static_cast<std::int64_t>(in[2]), static_cast<std::int64_t>(kw), sw, pw, dw, false);
      if (ho < 1 || wo < 1) fail(what + ": kernel larger than the padded input");
      vector_of(tensor(op.scale, "scale", false), cout, "scale");
      vector_of(tensor(op.bias, "bias", false), cout, "bias");
      expect_out({cout, static_cast<std::size_t>(ho), static_cast<std::size_t>(wo)});
      break;
    }
    case OpType::kLinear: {
      const Tensor* w = tensor(op.weight, "weight", true);
      if (w->dims.size() != 2) fail(what + ": weight must be 2-D");
      if (in.size() != 1 || in[0] != w->dims[1])
        fail(what + ": input " + dims_string(in) + " does not fit weight " + dims_string(w->dims));
      vector_of(tensor(op.scale, "scale", false), w->dims[0], "scale");
      vector_of(tensor(op.bias, "bias", false), w->dims[0], "bias");
      expect_out({w->dims[0]});
      break;
    }
    case OpType::kAffine: {
      if (op.weight != -1) fail(what + ": takes no weight tensor");  // (fuzzer finding: an unchecked index)
      vector_of(tensor(op.scale, "scale", true), in[0], "scale");
      vector_of(tensor(op.bias, "bias", true), in[0], "bias");
      expect_out(in);
      break;
    }
    case OpType::kAct:
      if (op.act == Act::kNone) fail(what + ": no activation");
      expect_out(in);
      break;
    case OpType::kAdd:
      if (shapes[op.inputs[1]] != in) fail(what + ": inputs of different shapes");
      expect_out(in);
      break;
    case OpType::kConcat: {
      if (op.inputs.size() < 2 || a[0] != 0) fail(what + ": needs >= 2 inputs, concatenated along channels");
      std::vector<std::size_t> expected = in;
      for (std::size_t i = 1; i < op.inputs.size(); ++i) {
        const auto& s = shapes[op.inputs[i]];
        if (s.size() != in.size() || !std::equal(s.begin() + 1, s.end(), in.begin() + 1))
          fail(what + ": inputs differ beyond the channel dimension");
        expected[0] += s[0];
      }
      checked_numel(expected, what);
      expect_out(expected);
      break;
    }
    case OpType::kMaxPool:
    case OpType::kAvgPool: {
      if (in.size() != 3) fail(what + ": input must be C x H x W");
      const std::int64_t kh = a[0], kw = a[1], sh = a[2], sw = a[3], ph = a[4], pw = a[5], dh = a[6], dw = a[7];
      if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || dh < 1 || dw < 1 || ph < 0 || pw < 0 || kh > 65536 || kw > 65536 ||
          sh > 65536 || sw > 65536 || dh > 65536 || dw > 65536 || 2 * ph > kh || 2 * pw > kw ||
          (a[8] != 0 && a[8] != 1) || (a[9] != 0 && a[9] != 1)) {
        fail(what + ": bad kernel/stride/padding/dilation");
      }
      if (op.type == OpType::kAvgPool && (dh != 1 || dw != 1)) fail(what + ": average pooling has no dilation");
      const std::int64_t ho = pool_out(static_cast<std::int64_t>(in[1]), kh, sh, ph, dh, a[8] != 0);
      const std::int64_t wo = pool_out(static_cast<std::int64_t>(in[2]), kw, sw, pw, dw, a[8] != 0);
      if (ho < 1 || wo < 1) fail(what + ": window larger than the padded input");
      expect_out({in[0], static_cast<std::size_t>(ho), static_cast<std::size_t>(wo)});
      break;
    }
    case OpType::kGlobalAvgPool:
      if (in.size() != 3) fail(what + ": input must be C x H x W");
      if (out != std::vector<std::size_t>{in[0]} && out != std::vector<std::size_t>{in[0], 1, 1}) {
        fail(what + ": output shape " + dims_string(out) + " for input " + dims_string(in));
      }
      break;
    case OpType::kReshape:
      if (shape_numel(out) != shape_numel(in)) fail(what + ": reshape changes the element count");
      break;
    case OpType::kSoftmax:
      if (in.size() != 1) fail(what + ": softmax over a vector only");
      expect_out(in);
      break;
    case OpType::kBinary: {
      if (a[0] < 0 || a[0] > 3) fail(what + ": unknown kind " + std::to_string(a[0]));
      if (n_in == 2) {
        if (a[1] != 0 || a[2] != 0) fail(what + ": a constant operand beside two inputs");
        std::vector<std::size_t> expected;
        if (!broadcast_shapes(in, shapes[op.inputs[1]], &expected))
          fail(what + ": shapes " + dims_string(in) + " and " + dims_string(shapes[op.inputs[1]]) +
               " do not broadcast");
        expect_out(expected);
      } else {
        if (a[1] != 0 && a[1] != 1) fail(what + ": bad constant side");
        if (!std::isfinite(attr_float(a[2]))) fail(what + ": constant is not finite");
        expect_out(in);
      }
      break;
    }
    case OpType::kClamp: {
      const float lo = attr_float(a[0]), hi = attr_float(a[1]);
      if (std::isnan(lo) || std::isnan(hi) || lo > hi) fail(what + ": bad bounds");
      expect_out(in);
      break;
    }
    case OpType::kPad: {
      if (in.size() != 3) fail(what + ": input must be C x H x W");
      for (int k = 0; k < 4; ++k) {
        if (a[k] < 0 || a[k] > 65536) fail(what + ": bad padding");
      }
      const std::vector<std::size_t> expected{in[0],
                                              in[1] + static_cast<std::size_t>(a[0]) + static_cast<std::size_t>(a[1]),
                                              in[2] + static_cast<std::size_t>(a[2]) + static_cast<std::size_t>(a[3])};
      checked_numel(expected, what);
      expect_out(expected);
      break;
    }
    case OpType::kUpsample: {
      if (in.size() != 3) fail(what + ": input must be C x H x W");
      if (a[0] < 1 || a[1] < 1 || a[0] > 64 || a[1] > 64) fail(what + ": bad scale factors");
      const std::vector<std::size_t> expected{in[0], in[1] * static_cast<std::size_t>(a[0]),
                                              in[2] * static_cast<std::size_t>(a[1])};
      checked_numel(expected, what);
      expect_out(expected);
      break;
    }
    case OpType::kChannelShuffle: {
      const std::int64_t g = a[0];
      if (g < 1) fail(what + ": bad group count");
      if (in.size() == 3) {
        if (in[0] % static_cast<std::size_t>(g)) fail(what + ": channels not divisible by the groups");
        expect_out(in);
      } else if (in.size() == 4) {  // (g, C/g, H, W) -> (C/g, g, H, W): the view-transpose-view idiom
        if (in[0] != static_cast<std::size_t>(g)) fail(what + ": groups differ from the first dimension");
        expect_out({in[1], in[0], in[2], in[3]});
      } else {
        fail(what + ": input must be C x H x W or G x C/G x H x W");
      }
      break;
    }
  }
}

void read_graph(Reader& r, ModelFile& f) {
  Graph g;
  r.set_what("graph");
  const std::uint32_t n_values = r.u32("value count");
  if (n_values < 2 || n_values > (1u << 20)) fail("graph: bad value count " + std::to_string(n_values));
  g.shapes.resize(n_values);
  for (std::uint32_t v = 0; v < n_values; ++v) {
    const std::uint8_t ndim = r.u8("value ndim");
    r.take(3, "pad");
    if (ndim == 0 || ndim > kMaxDims)
      fail("graph: value " + std::to_string(v) + " has " + std::to_string(ndim) + " dimensions");
    for (unsigned d = 0; d < ndim; ++d) g.shapes[v].push_back(r.u32("value dims"));
    checked_numel(g.shapes[v], "graph: value " + std::to_string(v));
  }
  g.input = r.u32("input");
  g.output = r.u32("output");
  const std::uint32_t n_ops = r.u32("op count");
  if (g.input >= n_values || g.output >= n_values || g.input == g.output) fail("graph: bad input/output value");
  if (n_ops == 0 || n_ops > (1u << 20)) fail("graph: bad op count " + std::to_string(n_ops));
  std::vector<bool> defined(n_values, false);
  defined[g.input] = true;
  for (std::uint32_t i = 0; i < n_ops; ++i) {
    const std::string what = "graph: op #" + std::to_string(i);
    r.set_what(what);
    OpDesc op;
    const std::uint8_t type = r.u8("type");
    const std::uint8_t act = r.u8("activation");
    const std::uint8_t n_in = r.u8("input count");
    const std::uint8_t n_attr = r.u8("attribute count");
    if (type < 1 || type > kOpTypeMax) fail(what + ": unknown op type " + std::to_string(type));
    if (act > kActMax) fail(what + ": unknown activation " + std::to_string(act));
    op.type = static_cast<OpType>(type);
    op.act = static_cast<Act>(act);
    if (n_attr != attr_count(op.type))
      fail(what + ": " + std::to_string(n_attr) + " attributes, expected " + std::to_string(attr_count(op.type)));
    if (n_in == 0) fail(what + ": no inputs");
    op.output = r.u32("output");
    for (unsigned k = 0; k < n_in; ++k) op.inputs.push_back(r.u32("inputs"));
    for (unsigned k = 0; k < n_attr; ++k) op.attrs.push_back(r.i32("attributes"));
    op.weight = r.i32("weight");
    op.scale = r.i32("scale");
    op.bias = r.i32("bias");
    for (std::uint32_t v : op.inputs) {
      if (v >= n_values || !defined[v]) fail(what + ": reads value " + std::to_string(v) + " before it is computed");
    }
    if (op.output >= n_values || defined[op.output])
      fail(what + ": writes value " + std::to_string(op.output) + " that exists already");
    defined[op.output] = true;
    g.ops.push_back(std::move(op));
  }
  if (r.left() != 0) fail("graph: trailing bytes");
  if (!defined[g.output]) fail("graph: the output value is never computed");
  f.graph = std::move(g);
  for (std::size_t i = 0; i < f.graph.ops.size(); ++i) check_op(f, f.graph.ops[i], i);
  for (const OpDesc& op : f.graph.ops) {
    for (std::int32_t id : {op.weight, op.scale, op.bias}) {
      if (id >= 0 && f.tensors[static_cast<std::size_t>(id)].values.empty())
        expand_values(f.tensors[static_cast<std::size_t>(id)]);
    }
  }
}

}  // namespace

float attr_float(std::int32_t bits) {
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

bool broadcast_shapes(const std::vector<std::size_t>& a, const std::vector<std::size_t>& b,
                      std::vector<std::size_t>* out) {
  const std::size_t n = std::max(a.size(), b.size());
  out->assign(n, 1);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::size_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    (*out)[i] = std::max(da, db);
  }
  return true;
}

std::size_t shape_numel(const std::vector<std::size_t>& dims) {
  std::size_t n = 1;
  for (std::size_t d : dims) n *= d;
  return n;
}

ModelFile parse_model_file(const std::uint8_t* data, std::size_t size) {
  if (data == nullptr || size < kHeaderSize)
    fail("file shorter than the .pakd header (" + std::to_string(size) + " bytes)");
  Reader h(data, size, "header");
  const std::uint8_t* magic = h.take(4, "magic");
  if (std::memcmp(magic, "PAKD", 4) != 0) fail("not a .pakd file (bad magic)");
  const std::uint16_t major = h.u16("version"), minor = h.u16("version");
  (void)minor;
  if (major != 1) fail("unsupported .pakd version " + std::to_string(major));
  h.u32("flags");
  const std::uint32_t n_sections = h.u32("section count");
  const std::uint64_t file_size = h.u64("file size");
  const std::uint32_t crc = h.u32("checksum");
  if (file_size != size)
    fail("file size " + std::to_string(size) + " does not match the header's " + std::to_string(file_size) +
         " (truncated?)");
  if (crc32(data + kHeaderSize, size - kHeaderSize) != crc) fail("checksum mismatch (file corrupted)");
  if (n_sections > 64 || kHeaderSize + std::uint64_t{n_sections} * kSectionEntrySize > size)
    fail("section table runs past the end of the file");

  ModelFile f;
  const std::uint8_t* graph_data = nullptr;
  std::size_t graph_size = 0;
  bool have_tensors = false;
  Reader table(data + kHeaderSize, n_sections * kSectionEntrySize, "section table");
  for (std::uint32_t i = 0; i < n_sections; ++i) {
    const std::uint32_t kind = table.u32("kind");
    table.u32("reserved");
    const std::uint64_t off = table.u64("offset");
    const std::uint64_t len = table.u64("length");
    if (off < kHeaderSize || off > size || len > size - off)
      fail("section " + std::to_string(i) + " runs past the end of the file");
    const std::uint8_t* p = data + off;
    if (kind == kSectionMeta) {
      f.meta.assign(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len));
    } else if (kind == kSectionGraph) {
      graph_data = p;
      graph_size = static_cast<std::size_t>(len);
    } else if (kind == kSectionTensors) {
      if (have_tensors) fail("two TENSORS sections");
      have_tensors = true;
      Reader r(p, static_cast<std::size_t>(len), "tensors");
      const std::uint32_t count = r.u32("tensor count");
      if (count > (1u << 20)) fail("tensors: bad count");
      f.tensors.reserve(count);
      std::uint64_t total = 0;
      for (std::uint32_t t = 0; t < count; ++t) {
        f.tensors.push_back(read_tensor(r, t));
        total += f.tensors.back().numel;
        if (total > kMaxTotalElements)
          fail("tensors: more than " + std::to_string(kMaxTotalElements) + " elements in all");
      }
      if (r.left() != 0) fail("tensors: trailing bytes");
    }
    // Unknown section kinds are skipped (forward compatible).
  }
  if (graph_data == nullptr)
    fail("the file has no GRAPH section (a weights-only file cannot run; re-export it with pakd)");
  Reader g(graph_data, graph_size, "graph");
  read_graph(g, f);
  return f;
}

}  // namespace pakd::runtime
