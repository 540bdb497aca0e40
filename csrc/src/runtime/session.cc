// Session: weight preparation, memory planning and the op implementations.
//
// Activations are NCHW, one sample after another. A convolution is lowered
// to  Y[Cout, Ho*Wo] = W[Cout, Cin*kh*kw] x im2col(X)[Cin*kh*kw, Ho*Wo]
// (a 1x1 stride-1 convolution needs no im2col: X is already that matrix),
// computed by the dense f32 GEMM, or by the CSR SpMM when the weight is
// sparse; depthwise convolutions run a direct kernel. A linear layer is
// Y[B, out] = X[B, in] x W^T (dense, W^T packed at load) or W x X^T (CSR).
// The per-channel epilogue applies the folded batch-norm scale, the bias and
// the fused activation.
#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace pakd::runtime {
namespace {

constexpr std::size_t kAlignFloats = 16;           // 64-byte aligned value buffers
constexpr std::size_t kMinParallelMacs = 1 << 18;  // below this an op runs on one thread
// Weight-shared sparse layers keep u8 codes + the codebook (4x less weight
// traffic) only when memory bandwidth is the limit: from this many nonzeros
// (benchmarks/test_bench_spmm.py: the codebook kernel wins on 4096x9216 at
// 70-90% sparsity, loses on the zoo's small layers). Smaller ones run f32.
constexpr std::size_t kCodebookMinNonzeros = std::size_t{1} << 21;
// A stride-1 convolution runs the sparse direct kernel when its work, one
// unit per (nonzero tap, output position with columns rounded to 8), times
// this factor is below the dense direct kernels' (dense_direct_units): a unit
// costs 25-35 ps there against 17-22 ps for a dense unit (AVX2, LeNet-5 and
// ResNet-20 shapes). So LeNet-5's conv1 (1 input channel, 86% nonzeros) goes
// sparse (4.4 -> 3.3 us); a dense layer only where its shape wastes much of
// the dense tiles (10 -> 21 channels on 12x12: 9.8 vs 11.9 us at 100%); 3x3
// layers with few channels stay dense down to ~60% nonzeros.
constexpr double kSparseDirectUnitCost = 1.5;
// A batch-1 sparse linear layer runs the blocked kernel (F32BlockSpmvFn)
// when it has at least this many nonzeros per step of 8 lanes: a step costs
// about 2x a CSR nonzero (random 231 x 336 matrices: equal at 1.5 nonzeros
// per step (2% density); lenet5-fast's fc1, 3.2 per step: 2.1 vs 3.3 us).
constexpr std::size_t kBlockSpmvMinNonzerosPerStep = 2;

inline float activate(float v, Act act) {
  switch (act) {
    case Act::kNone: return v;
    case Act::kRelu: return v > 0.0f ? v : 0.0f;
    case Act::kRelu6: return std::min(std::max(v, 0.0f), 6.0f);
    case Act::kHardswish: return v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
    case Act::kSigmoid: return 1.0f / (1.0f + std::exp(-v));
  }
  return v;
}

// Output channels [c0, c1) from wide rows (row oy of channel oc at
// wide[oc * n + oy * wp], wo of its wp columns kept) into y[oc][oy][ox],
// with the per-channel scale, bias and activation applied in the same pass.
void wide_rows_to_output(const PreparedOp& op, const float* wide, std::size_t n, std::size_t wp, std::size_t ho,
                         std::size_t wo, std::size_t c0, std::size_t c1, float* y, const float* res) {
  const bool has_scale = !op.scale.empty(), has_bias = !op.bias.empty();
  const Act act = op.desc.act;
  for (std::size_t oc = c0; oc < c1; ++oc) {
    const float s = has_scale ? op.scale[oc] : 1.0f, b = has_bias ? op.bias[oc] : 0.0f;
    for (std::size_t oy = 0; oy < ho; ++oy) {
      const float* src = wide + oc * n + oy * wp;
      float* dst = y + (oc * ho + oy) * wo;
      if (res != nullptr) {  // a fused residual add: act(conv + residual)
        const float* r = res + (oc * ho + oy) * wo;
        if (act == Act::kRelu) {
          for (std::size_t ox = 0; ox < wo; ++ox) {
            const float v = src[ox] * s + b + r[ox];
            dst[ox] = v > 0.0f ? v : 0.0f;
          }
        } else {
          for (std::size_t ox = 0; ox < wo; ++ox) dst[ox] = activate(src[ox] * s + b + r[ox], act);
        }
      } else if (act == Act::kRelu) {
        for (std::size_t ox = 0; ox < wo; ++ox) {
          const float v = src[ox] * s + b;
          dst[ox] = v > 0.0f ? v : 0.0f;
        }
      } else if (act == Act::kNone) {
        for (std::size_t ox = 0; ox < wo; ++ox) dst[ox] = src[ox] * s + b;
      } else {
        for (std::size_t ox = 0; ox < wo; ++ox) dst[ox] = activate(src[ox] * s + b, act);
      }
    }
  }
}

void activate_range(float* y, std::size_t n, Act act) {
  if (act == Act::kNone) return;
  if (act == Act::kRelu) {
    for (std::size_t i = 0; i < n; ++i) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    return;
  }
  for (std::size_t i = 0; i < n; ++i) y[i] = activate(y[i], act);
}

// Splits [0, total) into at most `parts` chunks whose sizes are multiples of
// `align` (except the last) and calls fn(begin, end) for each on the pool.
template <typename Fn>
void parallel_ranges(ThreadPool& pool, std::size_t total, std::size_t align, std::size_t macs, Fn&& fn) {
  std::size_t parts = static_cast<std::size_t>(pool.num_threads());
  if (macs < kMinParallelMacs || total <= align) parts = 1;
  std::size_t chunk = (total + parts - 1) / parts;
  chunk = (chunk + align - 1) / align * align;
  const std::size_t tasks = (total + chunk - 1) / chunk;
  if (tasks <= 1) {
    fn(std::size_t{0}, total);
    return;
  }
  pool.parallel_for(tasks, [&](std::size_t t) {
    const std::size_t b = t * chunk;
    fn(b, std::min(total, b + chunk));
  });
}

struct ConvGeometry {
  std::size_t cin, h, w, cout, ho, wo, kh, kw, groups;
  std::int64_t sh, sw, ph, pw, dh, dw;
  std::size_t cin_g() const { return cin / groups; }
  std::size_t cout_g() const { return cout / groups; }
  std::size_t k() const { return cin_g() * kh * kw; }
  std::size_t n() const { return ho * wo; }
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
  bool depthwise() const { return groups == cin && groups == cout && groups > 1; }
  // Direct "wide row" convolution: stride 1, no dilation, one group, a
  // kernel larger than 1x1 (1x1 stride-1 is a plain GEMM already).
  // Measured faster than im2col + GEMM even when it computes 12 columns
  // for 8 (LeNet-5's conv2: 16 vs 26 us) or 9 for 7 (ResNet-20's last
  // stage); beyond 2x waste the GEMM takes over.
  bool direct() const {
    return sh == 1 && sw == 1 && dh == 1 && dw == 1 && groups == 1 && kh * kw > 1 && wide_n() <= 2 * ho * wo;
  }
  // The 6x16 direct kernel also takes strided convolutions (ResNet-20's
  // stride-2 3x3 and 1x1 layers: 38 -> 15 and 6.3 -> 2 us against im2col +
  // GEMM, benchmarks/test_bench_conv.py).
  bool strided_direct() const { return sh == sw && sh > 1 && dh == 1 && dw == 1 && groups == 1; }
  std::size_t hp() const { return h + 2 * static_cast<std::size_t>(ph); }
  std::size_t wp() const { return w + 2 * static_cast<std::size_t>(pw); }
  std::size_t wide_n() const { return (ho * wp() + kDconvTile - 1) / kDconvTile * kDconvTile; }
  std::size_t padded_input() const { return cin * hp() * wp() + (wide_n() - ho * wp()) + kw; }
  std::size_t cout_padded() const { return (cout + kDconvOcBlock - 1) / kDconvOcBlock * kDconvOcBlock; }
  // Winograd F(4x4, 3x3): 3x3, stride 1, no dilation, one group.
  bool winograd_shape() const { return kh == 3 && kw == 3 && sh == 1 && sw == 1 && dh == 1 && dw == 1 && groups == 1; }
  std::size_t wino_tiles_x() const { return (wo + kWinoTile - 1) / kWinoTile; }
  std::size_t wino_tiles() const { return wino_tiles_x() * ((ho + kWinoTile - 1) / kWinoTile); }
  std::size_t wino_hpp() const { return (ho + kWinoTile - 1) / kWinoTile * kWinoTile + 2; }
  std::size_t wino_wpp() const { return wino_tiles_x() * kWinoTile + 2; }
  std::size_t wino_cin() const { return (cin + kWinoCinBlock - 1) / kWinoCinBlock * kWinoCinBlock; }
  std::size_t wino_cout() const { return (cout + kWinoCoutBlock - 1) / kWinoCoutBlock * kWinoCoutBlock; }
};

ConvGeometry geometry(const PreparedOp& op) {
  const auto& a = op.desc.attrs;
  ConvGeometry g{};
  g.cin = op.in_dims[0];
  g.h = op.in_dims[1];
  g.w = op.in_dims[2];
  g.cout = op.out_dims[0];
  g.ho = op.out_dims[1];
  g.wo = op.out_dims[2];
  g.kh = op.kh;
  g.kw = op.kw;
  g.sh = a[0];
  g.sw = a[1];
  g.ph = a[2];
  g.pw = a[3];
  g.dh = a[4];
  g.dw = a[5];
  g.groups = static_cast<std::size_t>(a[6]);
  return g;
}

// Work of the dense direct kernels on g, in padded multiply-adds: the
// cheaper of the two weight layouts (wide rows: 4 channels x 24 positions, wp
// columns per wo; or 16 channels x 6 exact positions, +10% for its
// transposing store). Session::prepare keeps that layout.
std::size_t dense_direct_units(const ConvGeometry& g, bool* oc_layout) {
  const std::size_t taps = g.cin * g.kh * g.kw;
  const std::size_t wide = g.cout_padded() * g.wide_n() * taps;
  const std::size_t oc = (g.cout + kDconvOcVector - 1) / kDconvOcVector * kDconvOcVector *
                         ((g.n() + kDconvOcPixels - 1) / kDconvOcPixels * kDconvOcPixels) * taps * 11 / 10;
  if (oc_layout != nullptr) *oc_layout = oc < wide;
  return std::min(oc, wide);
}

// im2col for channels [c0, c0 + cin_g) of one sample into col[K, Ho*Wo].
// Per (channel, ky, kx) the valid output columns [ox_lo, ox_hi) are computed
// once, so the inner loops carry no bounds checks (a contiguous copy for
// stride 1) and only the padding borders are zero-filled.
void im2col(const ConvGeometry& g, const float* x, std::size_t c0, float* col) {
  const std::size_t n = g.n();
  const std::int64_t w = static_cast<std::int64_t>(g.w), h = static_cast<std::int64_t>(g.h);
  const std::int64_t wo = static_cast<std::int64_t>(g.wo);
  for (std::size_t c = 0; c < g.cin_g(); ++c) {
    const float* xc = x + (c0 + c) * g.h * g.w;
    for (std::size_t ky = 0; ky < g.kh; ++ky) {
      for (std::size_t kx = 0; kx < g.kw; ++kx) {
        float* row = col + ((c * g.kh + ky) * g.kw + kx) * n;
        // input column of output column ox: ox * sw + x0; valid when in [0, w)
        const std::int64_t x0 = static_cast<std::int64_t>(kx) * g.dw - g.pw;
        std::int64_t lo = x0 >= 0 ? 0 : (-x0 + g.sw - 1) / g.sw;
        std::int64_t hi = x0 >= w ? 0 : (w - 1 - x0) / g.sw + 1;
        lo = std::min(lo, wo);
        hi = std::max(std::min(hi, wo), lo);
        for (std::size_t oy = 0; oy < g.ho; ++oy) {
          const std::int64_t iy = static_cast<std::int64_t>(oy) * g.sh - g.ph + static_cast<std::int64_t>(ky) * g.dh;
          float* out = row + oy * g.wo;
          if (iy < 0 || iy >= h) {
            std::memset(out, 0, g.wo * sizeof(float));
            continue;
          }
          const float* xr = xc + iy * w + x0;  // xr[ox * sw] is the input of column ox
          for (std::int64_t ox = 0; ox < lo; ++ox) out[ox] = 0.0f;
          if (g.sw == 1) {
            std::memcpy(out + lo, xr + lo, static_cast<std::size_t>(hi - lo) * sizeof(float));
          } else {
            for (std::int64_t ox = lo; ox < hi; ++ox) out[ox] = xr[ox * g.sw];
          }
          for (std::int64_t ox = hi; ox < wo; ++ox) out[ox] = 0.0f;
        }
      }
    }
  }
}

std::size_t round_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

// Winograd F(4x4, 3x3) against the direct kernels, in 8-lane FMA units:
// its 36 GEMMs (tiles in rows of 6, chunks of 24; the real input channels,
// output channels in vectors of 8, as the AVX2 kernel runs them) and its
// transforms (per tile and 8 padded channels ~30 vector ops in, ~20 out)
// against the cheaper of the two direct layouts (their padded work, as in
// prepare). The weights (transforms x3.75, direct x0.84) minimise the time
// lost by wrong picks over single-convolution timings on Zen 4, one thread
// (105 shapes: 4..16 channels at 28x28, 8..32 at 14x14, 8..64 at 7x7,
// channel-pruned counts included; two picked wrongly, by <= 4%). The
// teacher's shapes (16/32/64 channels) sit at 0.52-0.59 of the direct cost.
bool winograd_wins(const ConvGeometry& g) {
  const std::size_t tiles = g.wino_tiles(), cin_p = g.wino_cin(), cout_p = g.wino_cout();
  const double gemm = 36.0 * static_cast<double>(round_up(std::min(tiles, kWinoTileChunk), 6)) *
                      static_cast<double>((tiles + kWinoTileChunk - 1) / kWinoTileChunk) * static_cast<double>(g.cin) *
                      static_cast<double>(round_up(g.cout, 8)) / 8.0;
  const double transforms = static_cast<double>(tiles) * (30.0 * cin_p / 8.0 + 20.0 * cout_p / 8.0) * 2.0;
  const double taps = static_cast<double>(g.cin * 9);
  const double wide = static_cast<double>(g.cout_padded() * g.wide_n()) * taps / 8.0;
  const double oc =
      static_cast<double>(round_up(g.cout, kDconvOcVector) * round_up(g.n(), kDconvOcPixels)) * taps / 8.0 * 1.1;
  return gemm + 3.75 * transforms < 0.84 * std::min(wide, oc);
}

// The graph's ops with each residual add (two distinct inputs of the output's
// shape, no or ReLU activation) folded into a convolution that produces one of
// its inputs: a convolution without activation whose output only the add
// reads, run after the other input's producer. The convolution then writes
// the add's output, takes the other input as inputs[1] and the add's
// activation (Session epilogues: act(conv * scale + bias + residual)). One
// pass over the output less per residual block; ResNet-20's blocks fuse into
// their second 3x3 convolution, or into the 1x1 shortcut convolution run after
// it. *fused[i] tells whether op i of the result carries a residual.
std::vector<OpDesc> fuse_residual_adds(const Graph& graph, std::vector<bool>* fused) {
  const std::size_t n_values = graph.shapes.size();
  const std::size_t none = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> producer(n_values, none), readers(n_values, 0);
  for (std::size_t i = 0; i < graph.ops.size(); ++i) {
    producer[graph.ops[i].output] = i;
    for (std::uint32_t v : graph.ops[i].inputs) ++readers[v];
  }
  std::vector<OpDesc> ops = graph.ops;
  std::vector<bool> drop(ops.size(), false);
  fused->assign(ops.size(), false);
  for (std::size_t a = 0; a < ops.size(); ++a) {
    const OpDesc& add = ops[a];
    if (add.type != OpType::kAdd || add.inputs.size() != 2 || add.inputs[0] == add.inputs[1] ||
        (add.act != Act::kNone && add.act != Act::kRelu)) {
      continue;
    }
    const std::size_t out_numel = shape_numel(graph.shapes[add.output]);
    if (shape_numel(graph.shapes[add.inputs[0]]) != out_numel ||
        shape_numel(graph.shapes[add.inputs[1]]) != out_numel) {
      continue;
    }
    for (std::size_t k = 0; k < 2; ++k) {
      const std::uint32_t v = add.inputs[k], r = add.inputs[1 - k];
      const std::size_t p = producer[v];
      if (p == none || p >= a || drop[p] || (*fused)[p]) continue;
      OpDesc& conv = ops[p];
      if (conv.type != OpType::kConv2d || conv.act != Act::kNone || conv.inputs.size() != 1 || readers[v] != 1 ||
          v == graph.output || graph.shapes[v] != graph.shapes[add.output]) {
        continue;
      }
      // the residual must be ready when the convolution runs (the graph input, or produced before it)
      if (r != graph.input && (producer[r] == none || producer[r] >= p)) continue;
      conv.output = add.output;
      conv.act = add.act;
      conv.inputs.push_back(r);
      (*fused)[p] = true;
      drop[a] = true;
      break;
    }
  }
  std::vector<OpDesc> out;
  std::vector<bool> out_fused;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (drop[i]) continue;
    out.push_back(std::move(ops[i]));
    out_fused.push_back((*fused)[i]);
  }
  *fused = std::move(out_fused);
  return out;
}

}  // namespace

std::size_t PreparedWeight::bytes() const {
  return dense.size() * 4 + dconv.size() * 4 + dconv_oc.size() * 4 + row_ptr.size() * 4 + col_idx.size() * 4 +
         values.size() * 4 + codes.size() + sdconv_offsets.size() * 4 + wino.size() * 4 + wino_bias.size() * 4 +
         (spmv_slices.size() + spmv_words.size() + spmv_values.size()) * 4 + table.size() * 4 + reference.size() * 4;
}

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
    if (d.type == OpType::kConv2d || d.type == OpType::kLinear) {
      const Tensor& t = file.tensors[static_cast<std::size_t>(d.weight)];
      PreparedWeight& w = p.weight;
      w.rows = t.dims[0];
      w.cols = t.numel / t.dims[0];
      const bool is_conv = d.type == OpType::kConv2d;
      const std::size_t groups = is_conv ? static_cast<std::size_t>(d.attrs[6]) : 1;
      std::size_t nnz = 0;
      for (float v : t.values) nnz += v != 0.0f;
      const double density = static_cast<double>(nnz) / static_cast<double>(t.numel);
      ConvGeometry cg{};
      if (is_conv) {
        p.kh = t.dims[2];
        p.kw = t.dims[3];
        cg = geometry(p);
      }
      if (config_.reference) {
        w.reference = t.values;
      } else if (is_conv && cg.direct() && config_.sparse_max_density >= 0.0f &&
                 sdconv_input_size(cg.cin, cg.hp(), cg.wo, cg.kw) <= std::numeric_limits<std::uint32_t>::max() &&
                 kSparseDirectUnitCost * static_cast<double>(nnz * cg.ho * round_up(cg.wo, kSdconvTileCols)) <
                     static_cast<double>(dense_direct_units(cg, nullptr))) {
        // CSR over (output channel, tap) with each tap's offset into the packed padded input
        const std::size_t rs = sdconv_row_stride(cg.kw), taps = cg.kh * cg.kw;
        const std::size_t cs = sdconv_input_size(1, cg.hp(), cg.wo, cg.kw);  // floats per input channel
        w.sdconv = true;
        w.row_ptr.assign(w.rows + 1, 0);
        for (std::size_t r = 0; r < w.rows; ++r) {
          for (std::size_t c = 0; c < w.cols; ++c) {
            const float v = t.values[r * w.cols + c];
            if (v == 0.0f) continue;
            const std::size_t ic = c / taps, ky = (c % taps) / cg.kw, kx = c % cg.kw;
            w.sdconv_offsets.push_back(static_cast<std::uint32_t>(ic * cs + ky * rs + kx));
            w.values.push_back(v);
          }
          w.row_ptr[r + 1] = static_cast<std::uint32_t>(w.values.size());
        }
      } else if (groups == 1 && config_.sparse_max_density >= 0.0f && density <= config_.sparse_max_density) {
        const bool codebook =
            t.encoding == Encoding::kCodebook && t.codebook.size() <= 256 &&
            (config_.codebook_kernel > 0 || (config_.codebook_kernel == 0 && nnz >= kCodebookMinNonzeros));
        w.form = codebook ? PreparedWeight::Form::kCsrCodebook : PreparedWeight::Form::kCsr;
        w.row_ptr.assign(w.rows + 1, 0);
        w.col_idx.reserve(nnz);
        // code of element p: per stored element (sparse layout: stored in
        // position order) or per element (dense layout)
        std::size_t stored = 0;
        for (std::size_t r = 0; r < w.rows; ++r) {
          for (std::size_t c = 0; c < w.cols; ++c) {
            const std::size_t pos = r * w.cols + c;
            std::uint8_t code = 0;
            if (codebook) {
              if (t.sparse) {
                while (stored < t.positions.size() && t.positions[stored] < pos) ++stored;
                if (stored < t.positions.size() && t.positions[stored] == pos) code = t.codes[stored];
              } else {
                code = t.codes[pos];
              }
            }
            if (t.values[pos] == 0.0f) continue;
            w.col_idx.push_back(static_cast<std::uint32_t>(c));
            if (codebook) {
              w.codes.push_back(code);
            } else {
              w.values.push_back(t.values[pos]);
            }
          }
          w.row_ptr[r + 1] = static_cast<std::uint32_t>(w.col_idx.size());
        }
        if (codebook) w.table = t.codebook;
        if (!is_conv && !codebook && kernels_.spmv != nullptr && config_.max_batch == 1) {
          const std::size_t steps = block_spmv_steps(w.rows, w.cols, w.row_ptr.data(), w.col_idx.data());
          if (steps > 0 && nnz >= kBlockSpmvMinNonzerosPerStep * steps) {
            w.spmv_slices.resize((w.rows + kBlockSpmvRows - 1) / kBlockSpmvRows + 1);
            w.spmv_words.resize(steps);
            w.spmv_values.resize(steps * kBlockSpmvRows);
            block_spmv_pack(w.rows, w.cols, w.row_ptr.data(), w.col_idx.data(), w.values.data(), w.spmv_slices.data(),
                            w.spmv_words.data(), w.spmv_values.data());
            // a batch-1 session never runs the CSR form then: keep one copy of the weight
            std::vector<std::uint32_t>().swap(w.col_idx);
            std::vector<float>().swap(w.values);
          }
        }
      } else if (is_conv) {
        w.dense = t.values;  // rows x cols: [Cout, Cin/g * kh * kw]
        const ConvGeometry& g = cg;
        if (g.winograd_shape() && (d.act == Act::kNone || d.act == Act::kRelu) && config_.winograd >= 0 &&
            (config_.winograd > 0 || winograd_wins(g))) {
          // scale folded into the transformed weights; bias and ReLU in the output transform
          w.wino.assign(kWinoPositions * g.wino_cout() * g.wino_cin(), 0.0f);
          pack_wino4x4_weights(g.cout, g.cin, t.values.data(), p.scale.empty() ? nullptr : p.scale.data(),
                               w.wino.data());
          if (!p.bias.empty()) {
            w.wino_bias.assign(g.wino_cout(), 0.0f);
            std::copy(p.bias.begin(), p.bias.end(), w.wino_bias.begin());
          }
          w.dense.clear();
          w.dense.shrink_to_fit();
        } else if (g.direct() || g.strided_direct()) {
          bool oc_layout = true;  // strided: the 6x16 kernel only
          if (g.direct()) dense_direct_units(g, &oc_layout);
          const std::size_t taps = g.cin * g.kh * g.kw;
          const std::size_t block = oc_layout ? kDconvOcVector : kDconvOcBlock;
          std::vector<float>& packed = block == kDconvOcVector ? w.dconv_oc : w.dconv;
          packed.assign((g.cout + block - 1) / block * block * taps, 0.0f);
          for (std::size_t oc = 0; oc < g.cout; ++oc) {  // [block][ic][ky][kx][block], zero-padded channels
            for (std::size_t tap = 0; tap < taps; ++tap) {
              packed[(oc / block) * taps * block + tap * block + oc % block] = t.values[oc * taps + tap];
            }
          }
          w.dense.clear();
          w.dense.shrink_to_fit();
        }
      } else {
        w.dense.resize(t.numel);  // W^T: [in, out]
        for (std::size_t r = 0; r < w.rows; ++r) {
          for (std::size_t c = 0; c < w.cols; ++c) w.dense[c * w.rows + r] = t.values[r * w.cols + c];
        }
      }
    }
    ops_.push_back(std::move(p));
  }
}

void Session::plan_memory(const Graph& graph) {
  const std::size_t n_values = graph.shapes.size();
  const std::size_t never = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> last_use(n_values, 0);
  for (std::size_t i = 0; i < ops_.size(); ++i) {
    for (std::uint32_t v : ops_[i].desc.inputs) last_use[v] = i;
  }
  last_use[output_value_] = never;

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
    value_size[out] = round_up(op.out_size * config_.max_batch, kAlignFloats);
    value_offset_[out] = allocate(value_size[out]);
    for (std::size_t k = 0; k < op.desc.inputs.size(); ++k) {
      const std::uint32_t v = op.desc.inputs[k];
      bool seen = false;
      for (std::size_t j = 0; j < k; ++j) seen |= op.desc.inputs[j] == v;
      if (!seen && v != input_value_ && last_use[v] == i) release(value_offset_[v], value_size[v]);
    }
  }
  // Scratch: im2col of the largest convolution, transposes of sparse linears.
  for (const PreparedOp& op : ops_) {
    if (config_.reference) break;
    if (op.desc.type == OpType::kConv2d) {
      const ConvGeometry g = geometry(op);
      if (op.weight.sparse_direct()) {
        scratch = std::max(scratch, sdconv_input_size(g.cin, g.hp(), g.wo, g.kw) + 16);  // + alignment slack
      } else if (!op.weight.wino.empty()) {
        scratch = std::max(scratch, g.wino_cin() * g.wino_hpp() * g.wino_wpp());
      } else if (!op.weight.dconv_oc.empty()) {
        scratch = std::max(scratch, g.padded_input());
      } else if (!op.weight.dconv.empty()) {
        scratch = std::max(scratch, g.padded_input() + g.cout * g.wide_n());
      } else if (!g.pointwise() && !g.depthwise()) {
        scratch = std::max(scratch, g.k() * g.n());
      }
    } else if (op.desc.type == OpType::kLinear && op.weight.form != PreparedWeight::Form::kDense) {
      scratch = std::max(scratch, (op.weight.rows + op.weight.cols) * config_.max_batch);
    }
  }
  arena_.assign(end, 0.0f);
  scratch_.assign(scratch, 0.0f);
  value_ptr_.assign(n_values, nullptr);
}

std::size_t Session::weight_bytes() const {
  std::size_t b = 0;
  for (const PreparedOp& op : ops_) b += op.weight.bytes() + (op.scale.size() + op.bias.size()) * 4;
  return b;
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

void Session::run(const float* input, std::size_t batch, float* output) { run_profiled(input, batch, output, nullptr); }

void Session::run_profiled(const float* input, std::size_t batch, float* output, double* op_ns) {
  for (std::size_t v = 0; v < value_ptr_.size(); ++v) value_ptr_[v] = arena_.data() + value_offset_[v];
  value_ptr_[input_value_] = input;
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
  static const char* const kOps[] = {"?",      "conv2d",  "linear",  "affine",         "act",     "add",
                                     "concat", "maxpool", "avgpool", "global-avgpool", "reshape", "softmax"};
  static const char* const kActs[] = {"", "+relu", "+relu6", "+hardswish", "+sigmoid"};
  const PreparedOp& op = ops_[i];
  std::string s = std::string(kOps[static_cast<int>(op.desc.type)]) + (op.residual ? "+add" : "") +
                  kActs[static_cast<int>(op.desc.act)];
  if (op.desc.type == OpType::kConv2d && op.desc.attrs[6] > 1) {
    s += op.in_dims[0] == op.out_dims[0] && static_cast<std::size_t>(op.desc.attrs[6]) == op.in_dims[0] ? " depthwise"
                                                                                                        : " grouped";
  }
  if (op.desc.type == OpType::kConv2d || op.desc.type == OpType::kLinear) {
    s += op.weight.sparse_direct()                        ? " sparse-direct"
         : !op.weight.wino.empty()                        ? " winograd"
         : op.weight.form == PreparedWeight::Form::kDense ? " dense"
         : op.weight.form == PreparedWeight::Form::kCsr   ? (op.weight.spmv_words.empty() ? " csr" : " csr-blocked")
                                                          : " csr-codebook";
  }
  s += " ";
  for (std::size_t d = 0; d < op.out_dims.size(); ++d) s += (d ? "x" : "") + std::to_string(op.out_dims[d]);
  return s;
}

void Session::epilogue(const PreparedOp& op, float* y, std::size_t channels, std::size_t spatial, std::size_t c_begin,
                       std::size_t c_end, std::size_t s_begin, std::size_t s_end, const float* res) const {
  (void)channels;
  const bool has_scale = !op.scale.empty(), has_bias = !op.bias.empty();
  const Act act = op.desc.act;
  if (!has_scale && !has_bias && act == Act::kNone && res == nullptr) return;
  if (act == Act::kNone || act == Act::kRelu) {
    kernels_.epilogue->fn(c_begin, c_end, s_begin, s_end, spatial, has_scale ? op.scale.data() : nullptr,
                          has_bias ? op.bias.data() : nullptr, res, act == Act::kRelu, y);
    return;
  }
  for (std::size_t c = c_begin; c < c_end; ++c) {
    float* row = y + c * spatial;
    const float s = has_scale ? op.scale[c] : 1.0f;
    const float b = has_bias ? op.bias[c] : 0.0f;
    if (res != nullptr) {  // a fused residual add, in one pass
      const float* r = res + c * spatial;
      if (act == Act::kRelu) {
        for (std::size_t i = s_begin; i < s_end; ++i) {
          const float v = row[i] * s + b + r[i];
          row[i] = v > 0.0f ? v : 0.0f;
        }
      } else {
        for (std::size_t i = s_begin; i < s_end; ++i) row[i] = activate(row[i] * s + b + r[i], act);
      }
      continue;
    }
    if (has_scale) {
      for (std::size_t i = s_begin; i < s_end; ++i) row[i] = row[i] * s + b;
    } else if (has_bias) {
      for (std::size_t i = s_begin; i < s_end; ++i) row[i] += b;
    }
    activate_range(row + s_begin, s_end - s_begin, act);
  }
}

void Session::run_op(const PreparedOp& op, std::size_t batch) {
  const OpDesc& d = op.desc;
  const float* x = value_ptr_[d.inputs[0]];
  float* y = const_cast<float*>(value_ptr_[d.output]);  // arena memory, owned here
  switch (d.type) {
    case OpType::kConv2d:
      if (config_.reference) {
        conv_reference(op, x, y, batch);
      } else if (static_cast<std::size_t>(d.attrs[6]) == op.in_dims[0] && op.in_dims[0] == op.out_dims[0] &&
                 d.attrs[6] > 1) {
        depthwise(op, x, y, batch);
      } else if (!op.weight.wino.empty()) {
        winograd_conv(op, x, y, batch);
      } else if (!op.weight.dconv.empty() || !op.weight.dconv_oc.empty() || op.weight.sparse_direct()) {
        direct_conv(op, x, y, batch);
      } else {
        conv(op, x, y, batch);
      }
      break;
    case OpType::kLinear: linear(op, x, y, batch); break;
    case OpType::kAffine: {
      const std::size_t c = op.in_dims[0], s = op.in_size / c;
      if (x != y) std::memcpy(y, x, batch * op.in_size * sizeof(float));
      for (std::size_t b = 0; b < batch; ++b) epilogue(op, y + b * op.out_size, c, s, 0, c, 0, s);
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
      const auto& a = d.attrs;
      if (d.type == OpType::kMaxPool && a[0] == 2 && a[1] == 2 && a[2] == 2 && a[3] == 2 && a[4] == 0 && a[5] == 0 &&
          a[6] == 1 && a[7] == 1) {  // the common 2x2 / stride 2 window: no bounds checks
        const std::size_t c = op.in_dims[0], w = op.in_dims[2];
        const std::size_t ho = op.out_dims[1], wo = op.out_dims[2];
        for (std::size_t p = 0; p < batch * c; ++p) {
          const float* xc = x + p * op.in_dims[1] * w;
          float* yc = y + p * ho * wo;
          for (std::size_t oy = 0; oy < ho; ++oy) {
            const float* r0 = xc + 2 * oy * w;
            const float* r1 = r0 + w;
            for (std::size_t ox = 0; ox < wo; ++ox) {
              yc[oy * wo + ox] = std::max(std::max(r0[2 * ox], r0[2 * ox + 1]), std::max(r1[2 * ox], r1[2 * ox + 1]));
            }
          }
        }
        break;
      }
      const std::int64_t kh = a[0], kw = a[1], sh = a[2], sw = a[3], ph = a[4], pw = a[5], dh = a[6], dw = a[7];
      const bool include_pad = a[9] != 0, is_max = d.type == OpType::kMaxPool;
      const std::int64_t c = static_cast<std::int64_t>(op.in_dims[0]), h = static_cast<std::int64_t>(op.in_dims[1]),
                         w = static_cast<std::int64_t>(op.in_dims[2]);
      const std::int64_t ho = static_cast<std::int64_t>(op.out_dims[1]), wo = static_cast<std::int64_t>(op.out_dims[2]);
      for (std::size_t b = 0; b < batch; ++b) {
        for (std::int64_t ch = 0; ch < c; ++ch) {
          const float* xc = x + b * op.in_size + static_cast<std::size_t>(ch * h * w);
          float* yc = y + b * op.out_size + static_cast<std::size_t>(ch * ho * wo);
          for (std::int64_t oy = 0; oy < ho; ++oy) {
            for (std::int64_t ox = 0; ox < wo; ++ox) {
              float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
              if (is_max) {
                for (std::int64_t ky = 0; ky < kh; ++ky) {
                  const std::int64_t iy = oy * sh - ph + ky * dh;
                  if (iy < 0 || iy >= h) continue;
                  for (std::int64_t kx = 0; kx < kw; ++kx) {
                    const std::int64_t ix = ox * sw - pw + kx * dw;
                    if (ix < 0 || ix >= w) continue;
                    acc = std::max(acc, xc[iy * w + ix]);
                  }
                }
              } else {  // PyTorch's avg_pool2d divisor rules
                std::int64_t y0 = oy * sh - ph, x0 = ox * sw - pw;
                std::int64_t y1 = std::min(y0 + kh, h + ph), x1 = std::min(x0 + kw, w + pw);
                const std::int64_t pool = (y1 - y0) * (x1 - x0);
                y0 = std::max<std::int64_t>(y0, 0);
                x0 = std::max<std::int64_t>(x0, 0);
                y1 = std::min(y1, h);
                x1 = std::min(x1, w);
                for (std::int64_t iy = y0; iy < y1; ++iy) {
                  for (std::int64_t ix = x0; ix < x1; ++ix) acc += xc[iy * w + ix];
                }
                const std::int64_t div = include_pad ? pool : (y1 - y0) * (x1 - x0);
                acc = div > 0 ? acc / static_cast<float>(div) : 0.0f;
              }
              yc[oy * wo + ox] = acc;
            }
          }
        }
      }
      break;
    }
    case OpType::kGlobalAvgPool: {
      const std::size_t c = op.in_dims[0], s = op.in_size / c;
      for (std::size_t b = 0; b < batch; ++b) {
        for (std::size_t ch = 0; ch < c; ++ch) {
          const float* xc = x + b * op.in_size + ch * s;
          float acc = 0.0f;
          for (std::size_t i = 0; i < s; ++i) acc += xc[i];
          y[b * op.out_size + ch] = acc / static_cast<float>(s);
        }
      }
      break;
    }
    case OpType::kReshape: std::memcpy(y, x, batch * op.in_size * sizeof(float)); break;
    case OpType::kSoftmax:
      for (std::size_t b = 0; b < batch; ++b) {
        const float* xs = x + b * op.in_size;
        float* ys = y + b * op.out_size;
        float m = -std::numeric_limits<float>::infinity();
        for (std::size_t i = 0; i < op.in_size; ++i) m = std::max(m, xs[i]);
        float sum = 0.0f;
        for (std::size_t i = 0; i < op.in_size; ++i) sum += (ys[i] = std::exp(xs[i] - m));
        for (std::size_t i = 0; i < op.in_size; ++i) ys[i] /= sum;
      }
      break;
  }
}

void Session::conv(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const PreparedWeight& w = op.weight;
  const ConvGeometry g = geometry(op);
  const std::size_t k = g.k(), n = g.n(), m = g.cout_g();
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * op.in_size;
    float* yb = y + b * op.out_size;
    for (std::size_t grp = 0; grp < g.groups; ++grp) {
      const float* col = xb + grp * g.cin_g() * g.h * g.w;
      if (!g.pointwise()) {
        im2col(g, xb, grp * g.cin_g(), scratch_.data());
        col = scratch_.data();
      }
      float* yg = yb + grp * m * n;
      const std::size_t macs = m * n * k;
      const float* rb = residual(op, b);
      if (w.form == PreparedWeight::Form::kDense) {
        const float* a = w.dense.data() + grp * m * k;
        parallel_ranges(pool_, n, 16, macs, [&](std::size_t j0, std::size_t j1) {
          kernels_.gemm->fn(m, j1 - j0, k, a, k, col + j0, n, yg + j0, n);
          epilogue(op, yb, g.cout, n, grp * m, grp * m + m, j0, j1, rb);
        });
      } else {  // CSR (groups == 1)
        const bool codebook = w.form == PreparedWeight::Form::kCsrCodebook;
        parallel_ranges(pool_, m, 4, w.col_idx.size() * n, [&](std::size_t r0, std::size_t r1) {
          if (codebook) {
            kernels_.cbspmm->fn(r0, r1, n, w.row_ptr.data(), w.col_idx.data(), w.codes.data(), w.table.data(), nullptr,
                                col, n, yg, n);
          } else {
            kernels_.spmm->fn(r0, r1, n, w.row_ptr.data(), w.col_idx.data(), w.values.data(), nullptr, col, n, yg, n);
          }
          epilogue(op, yb, g.cout, n, r0, r1, 0, n, rb);
        });
      }
    }
  }
}

void Session::direct_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = geometry(op);
  const std::size_t hp = g.hp(), wp = g.wp(), plane = hp * wp, n = g.wide_n();
  if (op.weight.sparse_direct()) {  // exact output tiles of each channel from its nonzero taps
    const PreparedWeight& w = op.weight;
    // 64-byte aligned (scratch_ has the slack), so the kernel's input rows never split a cache line
    const std::size_t skew = reinterpret_cast<std::uintptr_t>(scratch_.data()) % 64 / sizeof(float);
    float* const xt = scratch_.data() + (16 - skew) % 16;
    const std::size_t rs = sdconv_row_stride(g.kw);
    for (std::size_t b = 0; b < batch; ++b) {
      float* yb = y + b * op.out_size;
      sdconv_pack_input(x + b * op.in_size, g.cin, g.h, g.w, static_cast<std::size_t>(g.ph),
                        static_cast<std::size_t>(g.pw), g.wo, g.kw, xt);
      parallel_ranges(pool_, g.cout, 1, w.values.size() * g.n(), [&](std::size_t o0, std::size_t o1) {
        kernels_.sdconv->fn(o0, o1, g.ho, g.wo, rs, hp * rs, w.row_ptr.data(), w.sdconv_offsets.data(), w.values.data(),
                            xt, yb, g.n());
        epilogue(op, yb, g.cout, g.n(), o0, o1, 0, g.n(), residual(op, b));
      });
    }
    return;
  }
  float* const xpad = scratch_.data();
  float* const wide = xpad + g.padded_input();
  // the 6x16 kernel reads only inside the planes: an unpadded input is read in place
  const bool in_place = !op.weight.dconv_oc.empty() && g.ph == 0 && g.pw == 0;
  if (!in_place) std::fill(xpad + g.cin * plane, wide, 0.0f);  // the read slack past the planes
  const std::size_t macs = g.cout * g.n() * g.cin * g.kh * g.kw;
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * op.in_size;
    float* yb = y + b * op.out_size;
    if (!in_place) {
      kernels_.dconv_pad->fn(g.cin, g.h, g.w, static_cast<std::size_t>(g.ph), static_cast<std::size_t>(g.pw), xb, xpad);
    }
    if (!op.weight.dconv_oc.empty()) {  // straight into y, positions split across threads
      parallel_ranges(pool_, g.n(), kDconvOcPixels, macs, [&](std::size_t p0, std::size_t p1) {
        kernels_.dconv_oc->fn(0, g.cout, p0, p1, g.cin, g.kh, g.kw, wp, g.wo, static_cast<std::size_t>(g.sh), plane,
                              op.weight.dconv_oc.data(), in_place ? xb : xpad, yb, g.n());
        epilogue(op, yb, g.cout, g.n(), 0, g.cout, p0, p1, residual(op, b));
      });
      continue;
    }
    // blocks of 4 channels per thread; the last block stops at cout (the kernel's 1..3-row tail)
    parallel_ranges(pool_, g.cout, kDconvOcBlock, macs, [&](std::size_t o0, std::size_t o1) {
      kernels_.dconv_wide->fn(o0, o1, n, g.cin, g.kh, g.kw, wp, plane, op.weight.dconv.data(), xpad, wide, n);
      if (op.desc.act == Act::kNone || op.desc.act == Act::kRelu) {
        kernels_.dconv_out->fn(o0, o1, n, wp, g.ho, g.wo, wide, op.scale.empty() ? nullptr : op.scale.data(),
                               op.bias.empty() ? nullptr : op.bias.data(), residual(op, b), op.desc.act == Act::kRelu,
                               yb);
      } else {
        wide_rows_to_output(op, wide, n, wp, g.ho, g.wo, o0, o1, yb, residual(op, b));
      }
    });
  }
}

// Winograd F(4x4, 3x3): the sample packed once (8 channels interleaved,
// zero-padded to whole tiles), then tiles split across threads; the kernel
// writes y with bias and ReLU applied.
void Session::winograd_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = geometry(op);
  const PreparedWeight& w = op.weight;
  const std::size_t hpp = g.wino_hpp(), wpp = g.wino_wpp(), tiles = g.wino_tiles();
  const float* bias = w.wino_bias.empty() ? nullptr : w.wino_bias.data();
  const int relu = op.desc.act == Act::kRelu ? 1 : 0;
  float* const xh = scratch_.data();
  const std::size_t macs = 36 * tiles * g.wino_cin() * g.wino_cout();
  for (std::size_t b = 0; b < batch; ++b) {
    float* yb = y + b * op.out_size;
    kernels_.wino4x4_pack->fn(g.cin, g.h, g.w, static_cast<std::size_t>(g.ph), static_cast<std::size_t>(g.pw),
                              x + b * op.in_size, xh, hpp, wpp);
    parallel_ranges(pool_, tiles, 1, macs, [&](std::size_t t0, std::size_t t1) {
      kernels_.wino4x4->fn(t0, t1, g.wino_tiles_x(), g.cin, g.wino_cin(), g.cout, w.wino.data(), bias, relu,
                           residual(op, b), xh, hpp, wpp, yb, g.ho, g.wo);
    });
  }
}

void Session::depthwise(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = geometry(op);
  const std::vector<float>& wts =
      op.weight.form == PreparedWeight::Form::kDense ? op.weight.dense : op.weight.reference;
  const std::int64_t h = static_cast<std::int64_t>(g.h), w = static_cast<std::int64_t>(g.w);
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * op.in_size;
    float* yb = y + b * op.out_size;
    parallel_ranges(pool_, g.cout, 1, g.cout * g.n() * g.kh * g.kw, [&](std::size_t c0, std::size_t c1) {
      for (std::size_t c = c0; c < c1; ++c) {
        const float* xc = xb + c * g.h * g.w;
        const float* wc = wts.data() + c * g.kh * g.kw;
        float* yc = yb + c * g.n();
        for (std::size_t oy = 0; oy < g.ho; ++oy) {
          for (std::size_t ox = 0; ox < g.wo; ++ox) {
            float acc = 0.0f;
            for (std::size_t ky = 0; ky < g.kh; ++ky) {
              const std::int64_t iy =
                  static_cast<std::int64_t>(oy) * g.sh - g.ph + static_cast<std::int64_t>(ky) * g.dh;
              if (iy < 0 || iy >= h) continue;
              for (std::size_t kx = 0; kx < g.kw; ++kx) {
                const std::int64_t ix =
                    static_cast<std::int64_t>(ox) * g.sw - g.pw + static_cast<std::int64_t>(kx) * g.dw;
                if (ix < 0 || ix >= w) continue;
                acc += xc[iy * w + ix] * wc[ky * g.kw + kx];
              }
            }
            yc[oy * g.wo + ox] = acc;
          }
        }
      }
      epilogue(op, yb, g.cout, g.n(), c0, c1, 0, g.n(), residual(op, b));
    });
  }
}

// The oracle: a direct convolution straight from the definition.
void Session::conv_reference(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = geometry(op);
  const std::vector<float>& wts = op.weight.reference;
  const std::int64_t h = static_cast<std::int64_t>(g.h), w = static_cast<std::int64_t>(g.w);
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * op.in_size;
    float* yb = y + b * op.out_size;
    for (std::size_t oc = 0; oc < g.cout; ++oc) {
      const std::size_t grp = oc / g.cout_g();
      for (std::size_t oy = 0; oy < g.ho; ++oy) {
        for (std::size_t ox = 0; ox < g.wo; ++ox) {
          double acc = 0.0;
          for (std::size_t ic = 0; ic < g.cin_g(); ++ic) {
            const float* xc = xb + (grp * g.cin_g() + ic) * g.h * g.w;
            for (std::size_t ky = 0; ky < g.kh; ++ky) {
              const std::int64_t iy =
                  static_cast<std::int64_t>(oy) * g.sh - g.ph + static_cast<std::int64_t>(ky) * g.dh;
              if (iy < 0 || iy >= h) continue;
              for (std::size_t kx = 0; kx < g.kw; ++kx) {
                const std::int64_t ix =
                    static_cast<std::int64_t>(ox) * g.sw - g.pw + static_cast<std::int64_t>(kx) * g.dw;
                if (ix < 0 || ix >= w) continue;
                acc += static_cast<double>(xc[iy * w + ix]) * wts[((oc * g.cin_g() + ic) * g.kh + ky) * g.kw + kx];
              }
            }
          }
          yb[oc * g.n() + oy * g.wo + ox] = static_cast<float>(acc);
        }
      }
    }
    epilogue(op, yb, g.cout, g.n(), 0, g.cout, 0, g.n(), residual(op, b));
  }
}

void Session::linear(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const PreparedWeight& w = op.weight;
  const std::size_t out = w.rows, in = w.cols;
  const bool has_scale = !op.scale.empty(), has_bias = !op.bias.empty();
  // Y[b, o] = Y * scale[o] + bias[o], activation; columns [o0, o1)
  auto finish = [&](std::size_t o0, std::size_t o1) {
    for (std::size_t b = 0; b < batch; ++b) {
      float* row = y + b * out;
      for (std::size_t o = o0; o < o1; ++o) {
        float v = row[o];
        if (has_scale) v *= op.scale[o];
        if (has_bias) v += op.bias[o];
        row[o] = activate(v, op.desc.act);
      }
    }
  };
  if (config_.reference) {
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t o = 0; o < out; ++o) {
        double acc = 0.0;
        for (std::size_t i = 0; i < in; ++i) acc += static_cast<double>(w.reference[o * in + i]) * x[b * in + i];
        y[b * out + o] = static_cast<float>(acc);
      }
    }
    finish(0, out);
    return;
  }
  if (w.form == PreparedWeight::Form::kDense && out * in <= 16384) {
    // A small layer (a classifier head): y = sum_i x[i] * W^T[i, :] row by
    // row; the GEMM's blocking and tile padding cost more than the work.
    for (std::size_t b = 0; b < batch; ++b) {
      float* yb = y + b * out;
      std::fill(yb, yb + out, 0.0f);
      for (std::size_t i = 0; i < in; ++i) {
        const float xi = x[b * in + i];
        const float* wr = w.dense.data() + i * out;
        for (std::size_t o = 0; o < out; ++o) yb[o] += xi * wr[o];
      }
    }
    finish(0, out);
    return;
  }
  if (w.form == PreparedWeight::Form::kDense) {
    parallel_ranges(pool_, out, 16, batch * out * in, [&](std::size_t o0, std::size_t o1) {
      kernels_.gemm->fn(batch, o1 - o0, in, x, in, w.dense.data() + o0, out, y + o0, out);
      finish(o0, o1);
    });
    return;
  }
  if (batch == 1 && !w.spmv_words.empty()) {  // the blocked batch-1 kernel, slices split across threads
    const std::size_t slices = w.spmv_slices.size() - 1;
    parallel_ranges(pool_, slices, 1, w.spmv_values.size(), [&](std::size_t s0, std::size_t s1) {
      kernels_.spmv->fn(out, in, s0, s1, w.spmv_slices.data(), w.spmv_words.data(), w.spmv_values.data(), x, y);
      finish(s0 * kBlockSpmvRows, std::min(out, s1 * kBlockSpmvRows));
    });
    return;
  }
  // Sparse: Z[out, B] = W x X^T. For one sample X^T is X itself.
  const float* xt = x;
  float* z = y;
  if (batch > 1) {
    float* t = scratch_.data();
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t i = 0; i < in; ++i) t[i * batch + b] = x[b * in + i];
    }
    xt = t;
    z = t + in * batch;
  }
  const bool codebook = w.form == PreparedWeight::Form::kCsrCodebook;
  parallel_ranges(pool_, out, 8, w.col_idx.size() * batch, [&](std::size_t r0, std::size_t r1) {
    if (codebook) {
      kernels_.cbspmm->fn(r0, r1, batch, w.row_ptr.data(), w.col_idx.data(), w.codes.data(), w.table.data(), nullptr,
                          xt, batch, z, batch);
    } else {
      kernels_.spmm->fn(r0, r1, batch, w.row_ptr.data(), w.col_idx.data(), w.values.data(), nullptr, xt, batch, z,
                        batch);
    }
    if (batch == 1) finish(r0, r1);
  });
  if (batch > 1) {
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t o = 0; o < out; ++o) y[b * out + o] = z[o * batch + b];
    }
    finish(0, out);
  }
}

}  // namespace pakd::runtime
