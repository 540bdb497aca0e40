// Convolution planning: which kernel family runs a convolution, from the
// measured cost models of the families.
#include "runtime/conv-plan.h"

#include <algorithm>
#include <limits>

namespace pakd::runtime {
namespace {

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
//
// The constants of the cost models, per architecture: the AVX2 ones fitted
// on Zen 4 timings (one thread), the ARM ones on guest instructions under
// qemu -cpu cortex-a72 (the Raspberry Pi 4) of the NEON kernels
// (benchmarks/arm_conv_costs.py; instructions are not time, but they are what
// this project can measure for the board). armv7 (rpi3) uses the AArch64 fit
// but for wino_transforms and wide_3x3 (not refitted there: its 3x3 taps run
// the tap loop).
struct ConvCosts {
  // The 16-channel direct kernel's cost per padded multiply-add, relative to
  // the wide-row kernel's (its transposing store on AVX2; on NEON its six
  // separate input loads per tap, 1.04x on LeNet-5's conv2 with 500 taps per
  // output, 1.23x on a 16-channel 3x3 layer with 144).
  double oc_layout;
  // The sparse direct kernel's cost per unit (nonzero tap x output position,
  // columns rounded to 8) over a dense direct unit: 25-35 ps vs 17-22 ps on
  // AVX2; 0.55 vs ~0.34 instructions per unit with NEON (LeNet-5 conv2).
  double sparse_direct_unit;
  // winograd_wins: the weights of the transforms and of the direct cost.
  double wino_transforms;
  double wino_direct;
  // The wide-row kernel's cost per padded multiply-add on 3x3 kernels relative
  // to the others: AArch64 runs their 9 taps unrolled (0.81x the instructions
  // of the tap loop on a pruned ResNet-20's layers).
  double wide_3x3;
};
// AArch64: wino_transforms and wide_3x3 fitted on cortex-a72 instruction counts
// of 59 one-layer 3x3 convolutions, direct against Winograd (random channel
// counts 3..32 on 28x28 / 14x14 / 7x7, the 3x3 ones of the table of
// benchmarks/arm_conv_costs.py and a pruned ResNet-20's; its --fit): their
// picks lose 1,976 instructions in all (11 -> 9 channels on 14x14 goes
// to Winograd, 3% over direct); the x86 weights lost 71,020 (8 shapes).
#if defined(__aarch64__)
constexpr ConvCosts kCosts{1.15, 1.6, 2.5, 0.84, 0.75};
#elif defined(__arm__)
constexpr ConvCosts kCosts{1.15, 1.6, 3.75, 0.84, 1.0};
#else
constexpr ConvCosts kCosts{1.1, 1.5, 3.75, 0.84, 1.0};
#endif
constexpr double kSparseDirectUnitCost = kCosts.sparse_direct_unit;

}  // namespace

std::size_t dense_direct_units(const ConvGeometry& g, bool* oc_layout) {
  const std::size_t taps = g.cin * g.kh * g.kw;
  std::size_t wide = g.cout_padded() * g.wide_n() * taps;
  if (g.kh == 3 && g.kw == 3) wide = static_cast<std::size_t>(static_cast<double>(wide) * kCosts.wide_3x3);
  const std::size_t oc = static_cast<std::size_t>(
      static_cast<double>(round_up(g.cout, kDconvOcVector) * round_up(g.n(), kDconvOcPixels) * taps) *
      kCosts.oc_layout);
  if (oc_layout != nullptr) *oc_layout = oc < wide;
  return std::min(oc, wide);
}

// Winograd F(4x4, 3x3) against the direct kernels, in 8-lane FMA units:
// its 36 GEMMs (tiles in rows of 6, chunks of 24; the real input channels,
// output channels in vectors of 8, as the AVX2 kernel runs them) and its
// transforms (per tile and 8 padded channels ~30 vector ops in, ~20 out)
// against the cheaper of the two direct layouts (their padded work, as in
// dense_direct_units). The weights (transforms x3.75, direct x0.84) minimise
// the time lost by wrong picks over single-convolution timings on Zen 4, one
// thread (105 shapes: 4..16 channels at 28x28, 8..32 at 14x14, 8..64 at 7x7,
// channel-pruned counts included; two picked wrongly, by <= 4%). The
// teacher's shapes (16/32/64 channels) sit at 0.52-0.59 of the direct cost.
// On AArch64 the transforms weigh 2.5 and the wide rows' 3x3 units 0.75
// (kCosts: fitted on cortex-a72 instruction counts of the NEON kernels).
double winograd_units(const ConvGeometry& g) {
  const std::size_t tiles = g.wino_tiles(), cin_p = g.wino_cin(), cout_p = g.wino_cout();
  const double gemm = 36.0 * static_cast<double>(round_up(std::min(tiles, kWinoTileChunk), 6)) *
                      static_cast<double>((tiles + kWinoTileChunk - 1) / kWinoTileChunk) * static_cast<double>(g.cin) *
                      static_cast<double>(round_up(g.cout, 8)) / 8.0;
  const double transforms = static_cast<double>(tiles) * (30.0 * cin_p / 8.0 + 20.0 * cout_p / 8.0) * 2.0;
  // in 8-lane FMA units; x 8 / wino_direct: the direct kernels' padded multiply-adds
  return (gemm + kCosts.wino_transforms * transforms) * 8.0 / kCosts.wino_direct;
}

bool winograd_wins(const ConvGeometry& g) {
  return winograd_units(g) < static_cast<double>(dense_direct_units(g, nullptr));
}

bool use_codebook(const Tensor& w, std::size_t nnz, const SessionConfig& config) {
  return w.encoding == Encoding::kCodebook && w.codebook.size() <= 256 &&
         (config.codebook_kernel > 0 || (config.codebook_kernel == 0 && nnz >= kCodebookMinNonzeros));
}

namespace {

// The dense method of a convolution that is not depthwise.
ConvMethod plan_dense(const ConvGeometry& g, const SessionConfig& config, bool winograd_ok) {
  if (winograd_ok && (config.winograd > 0 || winograd_wins(g))) {
    return ConvMethod::kWinograd;
  }
  if (g.direct()) {
    bool oc_layout = false;
    dense_direct_units(g, &oc_layout);
    return oc_layout ? ConvMethod::kDirectOc : ConvMethod::kDirectWide;
  }
  if (g.strided_direct()) return ConvMethod::kDirectOc;  // the 6x16 kernel only
  return ConvMethod::kGemm;
}

}  // namespace

ConvMethod plan_conv(const ConvGeometry& g, Act act, const Tensor& w, std::size_t nnz, const SessionConfig& config) {
  if (config.reference) return ConvMethod::kReference;
  const double density = static_cast<double>(nnz) / static_cast<double>(w.numel);
  const bool may_be_sparse = config.sparse_max_density >= 0.0f;
  // The sparse direct kernel against the dense method this layer would run
  // otherwise: the direct kernels, or Winograd where it wins (a half-dense
  // 3x3 layer is cheaper through Winograd than through its nonzero taps).
  const bool winograd_ok = g.winograd_shape() && (act == Act::kNone || act == Act::kRelu) && config.winograd >= 0;
  if (g.direct() && may_be_sparse &&
      sdconv_input_size(g.cin, g.hp(), g.wo, g.kw) <= std::numeric_limits<std::uint32_t>::max()) {
    double dense = static_cast<double>(dense_direct_units(g, nullptr));
    if (winograd_ok && config.winograd == 0) dense = std::min(dense, winograd_units(g));  // forced: as before
    if (kSparseDirectUnitCost * static_cast<double>(nnz * g.ho * round_up(g.wo, kSdconvTileCols)) < dense) {
      return ConvMethod::kSparseDirect;
    }
#if defined(__aarch64__)
    // nonzero taps dearer than a dense method: that method, not im2col + CSR (2.52x Winograd's
    // instructions on 32 -> 32 channels 14x14 at 30% nonzeros, benchmarks/arm_conv_costs.py)
    if (!(winograd_ok && config.winograd > 0)) return plan_dense(g, config, winograd_ok);
#endif
  }
  if (g.groups == 1 && may_be_sparse && density <= config.sparse_max_density) {
    return use_codebook(w, nnz, config) ? ConvMethod::kCsrCodebook : ConvMethod::kCsr;
  }
  if (g.depthwise()) return ConvMethod::kDepthwise;
  return plan_dense(g, config, winograd_ok);
}

}  // namespace pakd::runtime
