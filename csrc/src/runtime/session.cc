// Session: construction (weight preparation per op), memory planning, the
// run loop and the ops without weights. The convolutions and linear layers
// run in session-layers.cc.
//
// Activations are NCHW, one sample after another. Each convolution runs the
// method plan_conv (conv-plan.h) chose for it, with its weight packed in that
// method's form (weights.h, pack.h); a linear layer is Y[B, out] = X[B, in] x
// W^T (dense, W^T packed at load) or W x X^T (CSR, or the blocked batch-1
// form). The per-channel epilogue applies the folded batch-norm scale, the
// bias, a fused residual add and the fused activation.
#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include "kernels/f32-elementwise-scalar.h"
#include "runtime/activation.h"
#include "runtime/fusion.h"
#include "runtime/pack.h"

namespace pakd::runtime {
namespace {

constexpr std::size_t kAlignFloats = 16;  // 64-byte aligned value buffers
// A batch-1 sparse linear layer runs the blocked kernel (F32BlockSpmvFn)
// when it has at least this many nonzeros per step of 8 lanes: a step costs
// about 2x a CSR nonzero (random 231 x 336 matrices: equal at 1.5 nonzeros
// per step (2% density); lenet5-fast's fc1, 3.2 per step: 2.1 vs 3.3 us).
constexpr std::size_t kBlockSpmvMinNonzerosPerStep = 2;

std::size_t count_nonzeros(const Tensor& t) {
  std::size_t nnz = 0;
  for (float v : t.values) nnz += v != 0.0f;
  return nnz;
}

// Floats of scratch memory the op needs while it runs (im2col, padded or
// packed inputs, transposes).
std::size_t scratch_floats(const PreparedOp& op, std::size_t max_batch) {
  if (op.desc.type == OpType::kLinear) {
    const bool sparse = std::holds_alternative<CsrWeight>(op.weight) ||
                        std::holds_alternative<CsrCodebookWeight>(op.weight) ||
                        std::holds_alternative<BlockSpmvWeight>(op.weight);
    return sparse ? (op.rows + op.cols) * max_batch : 0;
  }
  if (op.desc.type != OpType::kConv2d) return 0;
  const ConvGeometry g = op.geometry();
  switch (op.method) {
    case ConvMethod::kReference: return 0;
    case ConvMethod::kDepthwise: return g.dwconv_shape() ? g.cin * g.hp() * g.wp() + kDwconvReadSlack : 0;
    case ConvMethod::kSparseDirect: return sdconv_input_size(g.cin, g.hp(), g.wo, g.kw) + 16;  // + alignment slack
    case ConvMethod::kWinograd: return g.wino_cin() * g.wino_hpp() * g.wino_wpp();
    case ConvMethod::kDirectOc: return g.padded_input();
    case ConvMethod::kDirectWide: return g.padded_input() + g.cout * g.wide_n();
    case ConvMethod::kGemm:
    case ConvMethod::kCsr:
    case ConvMethod::kCsrCodebook: return g.pointwise() ? 0 : g.k() * g.n();
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------
// Preparation
// ---------------------------------------------------------------------------

Session::Session(const std::uint8_t* data, std::size_t size, const SessionConfig& config)
    : config_(config),
      kernels_(config.kernels != nullptr ? *config.kernels
               : config.reference        ? KernelConfig::reference()
                                         : KernelConfig::best()),
      pool_(std::max(1, config.num_threads)) {
  if (config_.max_batch == 0) config_.max_batch = 1;
  if (config_.gemm != nullptr) kernels_.gemm = config_.gemm;
  if (config_.max_batch > (1u << 20)) throw std::invalid_argument("max_batch too large");
  ModelFile file = parse_model_file(data, size);
  meta_ = std::move(file.meta);
  prepare(file);
  plan_memory(file.graph);
}

void Session::prepare(const ModelFile& file) {
  const Graph& g = file.graph;
  input_value_ = g.input;
  output_value_ = g.output;
  input_dims_ = g.shapes[g.input];
  output_dims_ = g.shapes[g.output];
  input_size_ = shape_numel(input_dims_);
  output_size_ = shape_numel(output_dims_);
  std::vector<bool> fused;
  std::vector<OpDesc> op_list;
  if (config_.reference) {  // the oracle runs the graph as it is
    op_list = g.ops;
    fused.assign(op_list.size(), false);
  } else {
    op_list = fuse_residual_adds(g, &fused);
  }
  for (std::size_t op_index = 0; op_index < op_list.size(); ++op_index) {
    const OpDesc& d = op_list[op_index];
    PreparedOp p;
    p.desc = d;
    p.residual = fused[op_index];
    p.in_dims = g.shapes[d.inputs[0]];
    p.out_dims = g.shapes[d.output];
    p.in_size = shape_numel(p.in_dims);
    p.out_size = shape_numel(p.out_dims);
    for (std::uint32_t v : d.inputs) p.input_sizes.push_back(shape_numel(g.shapes[v]));
    if (d.scale >= 0) p.scale = file.tensors[static_cast<std::size_t>(d.scale)].values;
    if (d.bias >= 0) p.bias = file.tensors[static_cast<std::size_t>(d.bias)].values;
    if (d.type == OpType::kMaxPool || d.type == OpType::kAvgPool) p.pool = PoolAttrs::of(d);
    if (d.type == OpType::kReshape) p.alias = true;
    if (d.type == OpType::kBinary) prepare_binary(g, &p);
    if (d.type == OpType::kConv2d || d.type == OpType::kLinear) {
      const Tensor& t = file.tensors[static_cast<std::size_t>(d.weight)];
      p.rows = t.dims[0];
      p.cols = t.numel / t.dims[0];
      if (d.type == OpType::kConv2d) {
        prepare_conv(t, &p);
      } else {
        prepare_linear(t, &p);
      }
    }
    ops_.push_back(std::move(p));
  }
}

// The convolution's method (plan_conv) and its weight in that method's form.
void Session::prepare_conv(const Tensor& t, PreparedOp* p) const {
  p->conv = ConvAttrs::of(p->desc);
  p->kh = t.dims[2];
  p->kw = t.dims[3];
  const ConvGeometry g = p->geometry();
  const std::size_t nnz = count_nonzeros(t);
  p->method = plan_conv(g, p->desc.act, t, nnz, config_);
  const float* w = t.values.data();
  switch (p->method) {
    case ConvMethod::kReference: p->weight = ReferenceWeight{t.values}; break;
    case ConvMethod::kDepthwise:
    case ConvMethod::kGemm: p->weight = DenseWeight{t.values}; break;  // [Cout, Cin/g * kh * kw]
    case ConvMethod::kCsr: p->weight = csr_from_dense(w, p->rows, p->cols); break;
    case ConvMethod::kCsrCodebook: p->weight = csr_codebook_from_tensor(t, p->rows, p->cols); break;
    case ConvMethod::kSparseDirect:
      p->weight = pack_sparse_direct_conv(w, g.cout, g.cin, g.kh, g.kw, g.hp(), g.wo);
      break;
    case ConvMethod::kDirectWide: p->weight = pack_direct_conv(w, g.cout, g.k(), kDconvOcBlock); break;
    case ConvMethod::kDirectOc: p->weight = pack_direct_conv(w, g.cout, g.k(), kDconvOcVector); break;
    case ConvMethod::kWinograd:
      // scale folded into the transformed weights; bias and ReLU in the output transform
      p->weight = pack_winograd(w, g.cout, g.cin, p->scale.empty() ? nullptr : p->scale.data(),
                                p->bias.empty() ? nullptr : p->bias.data());
      break;
  }
}

// A linear layer's weight: the reference, dense W^T, CSR (f32 or codebook),
// or, in a batch-1 session with a blocked kernel, the blocked form where it
// has enough nonzeros per step.
void Session::prepare_linear(const Tensor& t, PreparedOp* p) const {
  const std::size_t rows = p->rows, cols = p->cols;
  if (config_.reference) {
    p->weight = ReferenceWeight{t.values};
    return;
  }
  const std::size_t nnz = count_nonzeros(t);
  const double density = static_cast<double>(nnz) / static_cast<double>(t.numel);
  if (config_.sparse_max_density < 0.0f || density > config_.sparse_max_density) {
    p->weight = transpose_linear(t.values.data(), rows, cols);
    return;
  }
  if (use_codebook(t, nnz, config_)) {
    p->weight = csr_codebook_from_tensor(t, rows, cols);
    return;
  }
  CsrWeight csr = csr_from_dense(t.values.data(), rows, cols);
  if (kernels_.spmv != nullptr && config_.max_batch == 1) {
    const std::size_t steps = block_spmv_steps(csr, rows, cols);
    if (steps > 0 && nnz >= kBlockSpmvMinNonzerosPerStep * steps) {
      // a batch-1 session never runs the CSR form then: keep one copy of the weight
      p->weight = pack_block_spmv(csr, rows, cols, steps);
      return;
    }
  }
  p->weight = std::move(csr);
}

// How a binary op's operands meet: equal shapes, one operand constant per
// row of the other (the squeeze-excite scale: C x H x W times C x 1 x 1; a
// scalar), or the general broadcast (also every op of a reference session).
void Session::prepare_binary(const Graph& graph, PreparedOp* p) const {
  const OpDesc& d = p->desc;
  p->bin_kind = d.attrs[0];
  if (d.inputs.size() == 1) {  // x op c or c op x
    p->bin_mode = PreparedOp::BinaryMode::kRows;
    p->bin_const = attr_float(d.attrs[2]);
    p->bin_r_first = d.attrs[1];
    p->bin_rows = 1;
    p->bin_inner = p->out_size;
    return;
  }
  const std::vector<std::size_t>& out = p->out_dims;
  const std::size_t n = out.size();
  auto padded = [&](const std::vector<std::size_t>& s) {
    std::vector<std::size_t> r(n - s.size(), 1);
    r.insert(r.end(), s.begin(), s.end());
    return r;
  };
  const std::vector<std::size_t> da = padded(graph.shapes[d.inputs[0]]), db = padded(graph.shapes[d.inputs[1]]);
  if (!config_.reference) {
    if (da == out && db == out) {
      p->bin_mode = PreparedOp::BinaryMode::kSame;
      return;
    }
    // the constant-per-row operand: out's leading k dims, then ones
    for (int r = 1; r >= 0; --r) {
      const std::vector<std::size_t>& full = r == 1 ? da : db;
      const std::vector<std::size_t>& part = r == 1 ? db : da;
      if (full != out) continue;
      std::size_t k = 0;
      while (k < n && part[k] == out[k]) ++k;
      bool ones = true;
      for (std::size_t j = k; j < n; ++j) ones &= part[j] == 1;
      if (!ones) continue;
      p->bin_mode = PreparedOp::BinaryMode::kRows;
      p->bin_r = r;
      p->bin_r_first = r == 0 ? 1 : 0;
      p->bin_rows = 1;
      for (std::size_t j = 0; j < k; ++j) p->bin_rows *= out[j];
      p->bin_inner = p->out_size / p->bin_rows;
      return;
    }
  }
  p->bin_mode = PreparedOp::BinaryMode::kGeneral;
  p->bin_dims = out;
  auto strides = [&](const std::vector<std::size_t>& s) {
    std::vector<std::size_t> st(n, 0);
    std::size_t step = 1;
    for (std::size_t j = n; j-- > 0;) {
      st[j] = s[j] == 1 ? 0 : step;
      step *= s[j];
    }
    return st;
  };
  p->bin_sa = strides(da);
  p->bin_sb = strides(db);
}

void Session::plan_memory(const Graph& graph) {
  const std::size_t n_values = graph.shapes.size();
  const std::size_t never = std::numeric_limits<std::size_t>::max();
  // A reshape's output lives in its input's memory: the memory belongs to
  // the root value and lives until the last reader of any of its aliases.
  value_root_.resize(n_values);
  for (std::uint32_t v = 0; v < n_values; ++v) value_root_[v] = v;
  for (const PreparedOp& op : ops_) {
    if (op.alias) value_root_[op.desc.output] = value_root_[op.desc.inputs[0]];
  }
  std::vector<std::size_t> last_use(n_values, 0);
  for (std::size_t i = 0; i < ops_.size(); ++i) {
    for (std::uint32_t v : ops_[i].desc.inputs) last_use[value_root_[v]] = i;
  }
  last_use[value_root_[output_value_]] = never;

  // First-fit over a sorted free list; a value's block is released after the
  // last op that reads it (never before its producer's output is placed, so
  // an op's output never overlaps its inputs).
  struct Block {
    std::size_t offset, size;
  };
  std::vector<Block> free_list;
  std::size_t end = 0;
  value_offset_.assign(n_values, 0);
  std::vector<std::size_t> value_size(n_values, 0);
  auto allocate = [&](std::size_t size) {
    for (std::size_t i = 0; i < free_list.size(); ++i) {
      if (free_list[i].size >= size) {
        const std::size_t off = free_list[i].offset;
        free_list[i].offset += size;
        free_list[i].size -= size;
        if (free_list[i].size == 0) free_list.erase(free_list.begin() + static_cast<std::ptrdiff_t>(i));
        return off;
      }
    }
    // grow: merge with a free block at the end if there is one
    if (!free_list.empty() && free_list.back().offset + free_list.back().size == end) {
      const std::size_t off = free_list.back().offset;
      free_list.pop_back();
      end = off + size;
      return off;
    }
    const std::size_t off = end;
    end += size;
    return off;
  };
  auto release = [&](std::size_t offset, std::size_t size) {
    auto it = std::lower_bound(free_list.begin(), free_list.end(), offset,
                               [](const Block& b, std::size_t o) { return b.offset < o; });
    it = free_list.insert(it, Block{offset, size});
    // merge with the next, then with the previous
    auto next = it + 1;
    if (next != free_list.end() && it->offset + it->size == next->offset) {
      it->size += next->size;
      free_list.erase(next);
    }
    if (it != free_list.begin()) {
      auto prev = it - 1;
      if (prev->offset + prev->size == it->offset) {
        prev->size += it->size;
        free_list.erase(it);
      }
    }
  };

  std::size_t scratch = 0;
  for (std::size_t i = 0; i < ops_.size(); ++i) {
    const PreparedOp& op = ops_[i];
    const std::uint32_t out = op.desc.output;
    if (!op.alias) {
      value_size[out] = round_up(op.out_size * config_.max_batch, kAlignFloats);
      value_offset_[out] = allocate(value_size[out]);
    }
    for (std::size_t k = 0; k < op.desc.inputs.size(); ++k) {
      const std::uint32_t v = value_root_[op.desc.inputs[k]];
      bool seen = false;
      for (std::size_t j = 0; j < k; ++j) seen |= value_root_[op.desc.inputs[j]] == v;
      if (!seen && v != input_value_ && last_use[v] == i) release(value_offset_[v], value_size[v]);
    }
  }
  // Scratch: the largest any op needs while it runs.
  for (const PreparedOp& op : ops_) {
    if (config_.reference) break;
    scratch = std::max(scratch, scratch_floats(op, config_.max_batch));
  }
  arena_.assign(end, 0.0f);
  scratch_.assign(scratch, 0.0f);
  value_ptr_.assign(n_values, nullptr);
}

std::size_t Session::weight_bytes() const {
  std::size_t b = 0;
  for (const PreparedOp& op : ops_) b += runtime::weight_bytes(op.weight) + (op.scale.size() + op.bias.size()) * 4;
  return b;
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

void Session::run(const float* input, std::size_t batch, float* output) { run_profiled(input, batch, output, nullptr); }

void Session::run_profiled(const float* input, std::size_t batch, float* output, double* op_ns) {
  for (std::size_t v = 0; v < value_ptr_.size(); ++v) {
    const std::uint32_t r = value_root_[v];
    value_ptr_[v] = r == input_value_ ? input : arena_.data() + value_offset_[r];
  }
  for (std::size_t i = 0; i < ops_.size(); ++i) {
    if (op_ns == nullptr) {
      run_op(ops_[i], batch);
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    run_op(ops_[i], batch);
    op_ns[i] += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  std::memcpy(output, value_ptr_[output_value_], batch * output_size_ * sizeof(float));
}

std::string Session::op_description(std::size_t i) const {
  static const char* const kOps[] = {"?",       "conv2d",   "linear",         "affine",  "act",     "add",    "concat",
                                     "maxpool", "avgpool",  "global-avgpool", "reshape", "softmax", "binary", "clamp",
                                     "pad",     "upsample", "channel-shuffle"};
  static const char* const kActs[] = {"",      "+relu", "+relu6",    "+hardswish", "+sigmoid", "+hardsigmoid",
                                      "+silu", "+gelu", "+gelu-tanh"};
  static const char* const kBinary[] = {" add", " sub", " mul", " div"};
  const PreparedOp& op = ops_[i];
  std::string s = std::string(kOps[static_cast<int>(op.desc.type)]) + (op.residual ? "+add" : "") +
                  kActs[static_cast<int>(op.desc.act)];
  if (op.desc.type == OpType::kBinary) {
    s += kBinary[op.bin_kind];
    s += op.bin_mode == PreparedOp::BinaryMode::kSame   ? ""
         : op.bin_mode == PreparedOp::BinaryMode::kRows ? " rows"
                                                        : " broadcast";
  }
  if (op.desc.type == OpType::kConv2d && op.conv.groups > 1) {
    s += op.in_dims[0] == op.out_dims[0] && op.conv.groups == op.in_dims[0] ? " depthwise" : " grouped";
  }
  if (op.desc.type == OpType::kConv2d || op.desc.type == OpType::kLinear)
    s += std::string(" ") + weight_form(op.weight);
  s += " ";
  for (std::size_t d = 0; d < op.out_dims.size(); ++d) s += (d ? "x" : "") + std::to_string(op.out_dims[d]);
  return s;
}

void Session::run_op(const PreparedOp& op, std::size_t batch) {
  const OpDesc& d = op.desc;
  const float* x = value_ptr_[d.inputs[0]];
  float* y = const_cast<float*>(value_ptr_[d.output]);  // arena memory, owned here
  switch (d.type) {
    case OpType::kConv2d:
      switch (op.method) {
        case ConvMethod::kReference: conv_reference(op, x, y, batch); break;
        case ConvMethod::kDepthwise: depthwise(op, x, y, batch); break;
        case ConvMethod::kWinograd: winograd_conv(op, x, y, batch); break;
        case ConvMethod::kSparseDirect: sparse_direct_conv(op, x, y, batch); break;
        case ConvMethod::kDirectWide:
        case ConvMethod::kDirectOc: direct_conv(op, x, y, batch); break;
        case ConvMethod::kGemm:
        case ConvMethod::kCsr:
        case ConvMethod::kCsrCodebook: conv(op, x, y, batch); break;
      }
      break;
    case OpType::kLinear: linear(op, x, y, batch); break;
    case OpType::kAffine: {
      const std::size_t c = op.in_dims[0], s = op.in_size / c;
      if (x != y) std::memcpy(y, x, batch * op.in_size * sizeof(float));
      for (std::size_t b = 0; b < batch; ++b) epilogue(op, y + b * op.out_size, s, 0, c, 0, s);
      break;
    }
    case OpType::kAct:
      for (std::size_t i = 0; i < batch * op.in_size; ++i) y[i] = activate(x[i], d.act);
      break;
    case OpType::kAdd: {
      const float* x2 = value_ptr_[d.inputs[1]];
      const std::size_t n = batch * op.out_size;
      if (d.act == Act::kRelu) {  // one pass (a residual block's add + ReLU)
        for (std::size_t i = 0; i < n; ++i) {
          const float v = x[i] + x2[i];
          y[i] = v > 0.0f ? v : 0.0f;
        }
        break;
      }
      for (std::size_t i = 0; i < n; ++i) y[i] = x[i] + x2[i];
      activate_range(y, n, d.act);
      break;
    }
    case OpType::kConcat:
      for (std::size_t b = 0; b < batch; ++b) {
        float* out = y + b * op.out_size;
        for (std::size_t k = 0; k < d.inputs.size(); ++k) {
          const std::size_t n = op.input_sizes[k];
          std::memcpy(out, value_ptr_[d.inputs[k]] + b * n, n * sizeof(float));
          out += n;
        }
      }
      break;
    case OpType::kMaxPool:
    case OpType::kAvgPool: {
      const std::size_t planes = batch * op.in_dims[0];
      if (d.type == OpType::kMaxPool && op.pool.is_2x2_stride_2()) {  // the common window: no bounds checks
        pakd_f32_maxpool2x2_ukernel__scalar(planes, op.in_dims[1], op.in_dims[2], op.out_dims[1], op.out_dims[2], x, y);
        break;
      }
      const PoolAttrs& a = op.pool;
      const F32PoolParams params{static_cast<std::int64_t>(op.in_dims[1]),
                                 static_cast<std::int64_t>(op.in_dims[2]),
                                 static_cast<std::int64_t>(op.out_dims[1]),
                                 static_cast<std::int64_t>(op.out_dims[2]),
                                 a.kh,
                                 a.kw,
                                 a.sh,
                                 a.sw,
                                 a.ph,
                                 a.pw,
                                 a.dh,
                                 a.dw,
                                 a.include_pad ? 1 : 0};
      if (d.type == OpType::kMaxPool) {
        pakd_f32_maxpool_ukernel__reference(planes, params, x, y);
      } else {
        pakd_f32_avgpool_ukernel__reference(planes, params, x, y);
      }
      break;
    }
    case OpType::kGlobalAvgPool: {
      const std::size_t c = op.in_dims[0];
      pakd_f32_gavgpool_ukernel__scalar(batch * c, op.in_size / c, x, y);
      break;
    }
    case OpType::kReshape:
      if (!op.alias) std::memcpy(y, x, batch * op.in_size * sizeof(float));
      break;
    case OpType::kBinary: binary(op, batch, y); break;
    case OpType::kClamp: {
      const float lo = attr_float(d.attrs[0]), hi = attr_float(d.attrs[1]);
      for (std::size_t i = 0; i < batch * op.in_size; ++i) y[i] = std::min(std::max(x[i], lo), hi);
      break;
    }
    case OpType::kPad: {
      const std::size_t c = op.in_dims[0], h = op.in_dims[1], w = op.in_dims[2];
      const std::size_t ho = op.out_dims[1], wo = op.out_dims[2];
      const std::size_t top = static_cast<std::size_t>(d.attrs[0]), left = static_cast<std::size_t>(d.attrs[2]);
      std::memset(y, 0, batch * op.out_size * sizeof(float));
      for (std::size_t p = 0; p < batch * c; ++p) {
        for (std::size_t r = 0; r < h; ++r)
          std::memcpy(y + (p * ho + top + r) * wo + left, x + (p * h + r) * w, w * sizeof(float));
      }
      break;
    }
    case OpType::kUpsample: {
      const std::size_t h = op.in_dims[1], w = op.in_dims[2];
      const std::size_t fh = static_cast<std::size_t>(d.attrs[0]), fw = static_cast<std::size_t>(d.attrs[1]);
      const std::size_t wo = w * fw;
      for (std::size_t p = 0; p < batch * op.in_dims[0]; ++p) {
        for (std::size_t r = 0; r < h; ++r) {
          const float* src = x + (p * h + r) * w;
          float* dst = y + (p * h + r) * fh * wo;
          for (std::size_t ox = 0; ox < wo; ++ox) dst[ox] = src[ox / fw];
          for (std::size_t k = 1; k < fh; ++k) std::memcpy(dst + k * wo, dst, wo * sizeof(float));
        }
      }
      break;
    }
    case OpType::kChannelShuffle: {
      // input (g, C/g, S) -> output (C/g, g, S) per sample
      const std::size_t g = static_cast<std::size_t>(d.attrs[0]);
      const std::size_t channels = op.in_dims.size() == 3 ? op.in_dims[0] : op.in_dims[0] * op.in_dims[1];
      const std::size_t cpg = channels / g, plane = op.in_size / channels;
      for (std::size_t b = 0; b < batch; ++b) {
        const float* xb = x + b * op.in_size;
        float* yb = y + b * op.out_size;
        for (std::size_t i = 0; i < g; ++i) {
          for (std::size_t j = 0; j < cpg; ++j)
            std::memcpy(yb + (j * g + i) * plane, xb + (i * cpg + j) * plane, plane * sizeof(float));
        }
      }
      break;
    }
    case OpType::kSoftmax:
      for (std::size_t b = 0; b < batch; ++b) {
        pakd_f32_softmax_ukernel__reference(op.in_size, x + b * op.in_size, y + b * op.out_size);
      }
      break;
  }
}

void Session::binary(const PreparedOp& op, std::size_t batch, float* y) {
  const OpDesc& d = op.desc;
  const int kind = op.bin_kind;
  const float* a = value_ptr_[d.inputs[0]];
  const std::size_t na = op.input_sizes[0];
  for (std::size_t b = 0; b < batch; ++b) {
    float* yb = y + b * op.out_size;
    switch (op.bin_mode) {
      case PreparedOp::BinaryMode::kSame:
        pakd_f32_binary_ukernel__scalar(kind, op.out_size, a + b * na, value_ptr_[d.inputs[1]] + b * op.input_sizes[1],
                                        yb);
        break;
      case PreparedOp::BinaryMode::kRows: {
        if (d.inputs.size() == 1) {
          pakd_f32_binary_rows_ukernel__scalar(kind, 1, op.out_size, a + b * na, &op.bin_const, op.bin_r_first, yb);
          break;
        }
        const std::size_t r = static_cast<std::size_t>(op.bin_r);
        const float* full = value_ptr_[d.inputs[1 - r]] + b * op.input_sizes[1 - r];
        const float* rows = value_ptr_[d.inputs[r]] + b * op.input_sizes[r];
        pakd_f32_binary_rows_ukernel__scalar(kind, op.bin_rows, op.bin_inner, full, rows, op.bin_r_first, yb);
        break;
      }
      case PreparedOp::BinaryMode::kGeneral:
        pakd_f32_binary_ukernel__reference(kind, op.bin_dims.size(), op.bin_dims.data(), op.bin_sa.data(),
                                           op.bin_sb.data(), a + b * na,
                                           value_ptr_[d.inputs[1]] + b * op.input_sizes[1], yb);
        break;
    }
    activate_range(yb, op.out_size, d.act);
  }
}

}  // namespace pakd::runtime
