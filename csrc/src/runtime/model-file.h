// Reading a .pakd file (docs/format.md): header, section table, META,
// GRAPH and TENSORS. Every offset, length, count and shape is checked before
// it is used; anything wrong throws FormatError with a message (the C API
// turns it into PAKD_ERR_BAD_FORMAT + pakd_last_error()).
#ifndef PAKD_SRC_RUNTIME_MODEL_FILE_H_
#define PAKD_SRC_RUNTIME_MODEL_FILE_H_

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace pakd::runtime {

class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Limits that keep a hostile file from asking for absurd memory.
constexpr std::size_t kMaxDims = 8;
// 2^26 floats = 256 MiB: above any mobile model's largest layer (Deep
// Compression's 4096x9216 FC layer is 2^25.2), low enough that a 2 KB hostile
// file cannot make the loader allocate gigabytes before refusing it.
constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 26;       // per tensor/value
constexpr std::uint64_t kMaxTotalElements = std::uint64_t{1} << 27;  // all tensors

enum class Encoding : std::uint8_t { kF32 = 0, kInt8 = 1, kCodebook = 2 };

// A weight tensor as decoded at load.
struct Tensor {
  std::string name;
  Encoding encoding = Encoding::kF32;
  std::vector<std::size_t> dims;
  std::size_t numel = 0;
  std::vector<float> values;  // every element, dequantized (set for tensors the graph uses)
  std::vector<float> stored;  // decoded stored elements until expanded
  // Nonzero structure: flattened positions of the stored elements when the
  // file stores the tensor sparse; empty (and `sparse` false) for dense.
  bool sparse = false;
  std::vector<std::uint32_t> positions;
  // Codebook encoding: the table and one code per stored element (per
  // position when sparse, per element when dense).
  std::vector<float> codebook;
  std::vector<std::uint8_t> codes;
  // Int8 encoding: quantized values per element and per-row scales.
  std::vector<std::int8_t> q;
  std::vector<float> scales;
};

// Op types and activations: the numbers pakd/lower/native.py writes.
enum class OpType : std::uint8_t {
  kConv2d = 1,
  kLinear = 2,
  kAffine = 3,
  kAct = 4,
  kAdd = 5,
  kConcat = 6,
  kMaxPool = 7,
  kAvgPool = 8,
  kGlobalAvgPool = 9,
  kReshape = 10,
  kSoftmax = 11,
  kBinary = 12,          // (format 1.1) add/sub/mul/div, broadcasting, or with a scalar constant
  kClamp = 13,           // (1.1) clamp(min, max)
  kPad = 14,             // (1.1) zero padding of H and W
  kUpsample = 15,        // (1.1) nearest-neighbour upsampling by integer factors
  kChannelShuffle = 16,  // (1.1) channel shuffle
};
constexpr int kOpTypeMax = 16;

enum class Act : std::uint8_t {
  kNone = 0,
  kRelu = 1,
  kRelu6 = 2,
  kHardswish = 3,
  kSigmoid = 4,
  kHardsigmoid = 5,  // (1.1)
  kSilu = 6,         // (1.1)
  kGelu = 7,         // (1.1) erf form
  kGeluTanh = 8,     // (1.1) tanh approximation
};
constexpr int kActMax = 8;

// Binary op kinds (attrs[0] of kBinary).
enum class BinaryKind : std::int32_t { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };

struct OpDesc {
  OpType type;
  Act act;
  std::vector<std::uint32_t> inputs;  // value ids
  std::uint32_t output;               // value id
  std::vector<std::int32_t> attrs;
  std::int32_t weight = -1, scale = -1, bias = -1;  // tensor indices or -1
};

struct Graph {
  std::vector<std::vector<std::size_t>> shapes;  // per value, one sample
  std::uint32_t input = 0, output = 0;
  std::vector<OpDesc> ops;
};

struct ModelFile {
  std::string meta = "{}";
  Graph graph;
  std::vector<Tensor> tensors;
};

// Parses and validates `size` bytes. The graph is checked for structure
// (ids in range, topological order, attribute counts, tensor references) and
// every op's output shape is recomputed from its inputs and compared with the
// file's. Throws FormatError.
ModelFile parse_model_file(const std::uint8_t* data, std::size_t size);

std::size_t shape_numel(const std::vector<std::size_t>& dims);

// The NumPy/PyTorch broadcast of two per-sample shapes (aligned on the
// right); false when they do not broadcast.
bool broadcast_shapes(const std::vector<std::size_t>& a, const std::vector<std::size_t>& b,
                      std::vector<std::size_t>* out);

// An i32 attribute holding the bits of an f32 (kBinary's constant, kClamp's bounds).
float attr_float(std::int32_t bits);

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_MODEL_FILE_H_
