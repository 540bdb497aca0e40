// Convolution planning: the geometry of a convolution and the choice of how
// it runs (direct, Winograd, im2col + GEMM, sparse), by the cost models
// measured for each kernel family. Session::prepare asks plan_conv once per
// layer and packs the weight form the plan names (runtime/weights.h).
#ifndef PAKD_SRC_RUNTIME_CONV_PLAN_H_
#define PAKD_SRC_RUNTIME_CONV_PLAN_H_

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"
#include "runtime/model-file.h"
#include "runtime/op-attrs.h"
#include "runtime/session-config.h"

namespace pakd::runtime {

inline std::size_t round_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

struct ConvGeometry {
  std::size_t cin, h, w, cout, ho, wo, kh, kw, groups;
  std::int64_t sh, sw, ph, pw, dh, dw;

  // From the op's input (C x H x W) and output dims, kernel size and attributes.
  static ConvGeometry of(const std::size_t* in_dims, const std::size_t* out_dims, std::size_t kh, std::size_t kw,
                         const ConvAttrs& a) {
    return {in_dims[0], in_dims[1], in_dims[2], out_dims[0], out_dims[1], out_dims[2], kh,  kw,
            a.groups,   a.sh,       a.sw,       a.ph,        a.pw,        a.dh,        a.dw};
  }

  std::size_t cin_g() const { return cin / groups; }
  std::size_t cout_g() const { return cout / groups; }
  std::size_t k() const { return cin_g() * kh * kw; }
  std::size_t n() const { return ho * wo; }
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
  bool depthwise() const { return groups == cin && groups == cout && groups > 1; }
  // A depthwise convolution the f32-dwconv kernels take (any kernel size,
  // the same stride both ways, no dilation).
  bool dwconv_shape() const { return depthwise() && sh == sw && sh >= 1 && dh == 1 && dw == 1; }
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
  std::size_t wide_n() const { return round_up(ho * wp(), kDconvTile); }
  // Floats of the direct kernels' padded input: the planes and the wide
  // kernel's read slack past them.
  std::size_t padded_input() const { return cin * hp() * wp() + (wide_n() - ho * wp()) + kw; }
  std::size_t cout_padded() const { return round_up(cout, kDconvOcBlock); }
  // Winograd F(4x4, 3x3): 3x3, stride 1, no dilation, one group.
  bool winograd_shape() const { return kh == 3 && kw == 3 && sh == 1 && sw == 1 && dh == 1 && dw == 1 && groups == 1; }
  std::size_t wino_tiles_x() const { return (wo + kWinoTile - 1) / kWinoTile; }
  std::size_t wino_tiles() const { return wino_tiles_x() * ((ho + kWinoTile - 1) / kWinoTile); }
  std::size_t wino_hpp() const { return round_up(ho, kWinoTile) + 2; }
  std::size_t wino_wpp() const { return wino_tiles_x() * kWinoTile + 2; }
  std::size_t wino_cin() const { return round_up(cin, kWinoCinBlock); }
  std::size_t wino_cout() const { return round_up(cout, kWinoCoutBlock); }
};

// How a convolution runs, and so which weight form it keeps.
enum class ConvMethod {
  kReference,     // the oracle: straight from the definition (ReferenceWeight)
  kDepthwise,     // groups == channels: a direct loop (DenseWeight)
  kGemm,          // im2col (none for 1x1 stride 1) + f32 GEMM per group (DenseWeight)
  kCsr,           // im2col + sparse CSR x dense (CsrWeight)
  kCsrCodebook,   // the same with u8 codebook values (CsrCodebookWeight)
  kSparseDirect,  // sparse direct kernel over its nonzero taps (SparseDconvWeight)
  kDirectWide,    // dense direct kernel, wide rows of 4 channels (DirectConvWeight, 4-channel blocks)
  kDirectOc,      // dense direct kernel, 16-channel tiles, any stride (DirectConvWeight, 16-channel blocks)
  kWinograd,      // Winograd F(4x4, 3x3) (WinogradWeight)
};

// The method for a convolution of geometry g with activation act whose
// weight w (rows = output channels) has nnz nonzeros; the cost models below.
ConvMethod plan_conv(const ConvGeometry& g, Act act, const Tensor& w, std::size_t nnz, const SessionConfig& config);

// How a sparse (density <= config.sparse_max_density) weight is held: CSR
// with f32 values, or CSR with u8 codes into the codebook (4x less weight
// traffic) where the layer is large enough for bandwidth to be the limit.
bool use_codebook(const Tensor& w, std::size_t nnz, const SessionConfig& config);

// Work of the dense direct kernels on g, in padded multiply-adds: the
// cheaper of the two weight layouts (wide rows: 4 channels x 24 positions, wp
// columns per wo; or 16 channels x 6 exact positions, +10% on x86 for its
// transposing store, +15% on ARM: conv-plan.cc's kCosts); *oc_layout (may be
// nullptr) tells which.
std::size_t dense_direct_units(const ConvGeometry& g, bool* oc_layout);

// Winograd F(4x4, 3x3)'s cost on g in the units of dense_direct_units (cost
// model in conv-plan.cc), and whether it beats the direct kernels.
double winograd_units(const ConvGeometry& g);
bool winograd_wins(const ConvGeometry& g);

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_CONV_PLAN_H_
