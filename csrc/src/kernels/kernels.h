// Private declarations of the compiled kernels: each family's function type
// (its contract) and its kernels, declared from the family's list
// kernels/<family>-list.inc (runtime/kernel-config.h builds the tables).
#ifndef PAKD_SRC_KERNELS_KERNELS_H_
#define PAKD_SRC_KERNELS_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <type_traits>

// NOTE: this header is included by ISA-specific files (compiled with e.g.
// -mavx2). Keep it free of inline functions and templates: a shared inline
// function compiled with AVX2 in one file could be the copy the linker keeps
// for the whole program, and crash a CPU without AVX2.

#ifndef PAKD_ENABLE_X86_AVX2
#define PAKD_ENABLE_X86_AVX2 0
#endif
#ifndef PAKD_ENABLE_ARM_NEON
#define PAKD_ENABLE_ARM_NEON 0
#endif

namespace pakd {

// C = A(m x k) * B(k x n), row-major, C overwritten. Arguments are already
// validated by the caller (runtime/c-api.cc): lda >= k, ldb >= n, ldc >= n,
// pointers valid for non-empty matrices. May throw std::bad_alloc (packing
// buffers); nothing else.
using F32GemmFn = void (*)(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const float* b,
                           std::size_t ldb, float* c, std::size_t ldc);

// Sparse (CSR) x dense product, f32 values:
//   Y[i, 0:n] = bias[i] (or 0 when bias == nullptr)
//               + sum_{j in [row_ptr[i], row_ptr[i+1])} values[j] * X[col_idx[j], 0:n]
// for rows i in [m_begin, m_end) of an m x k CSR matrix (row_ptr has m + 1
// entries). X is k x n row-major with row stride ldx, Y row-major with row
// stride ldy. Rows outside the range are not touched (the runtime splits rows
// across threads). Arguments are pre-validated by the caller: row_ptr
// non-decreasing, col_idx[j] < k, ldx >= n, ldy >= n. Never throws.
// n == 1 is a sparse matrix-vector product (batch-1 fully-connected layer);
// large n is a convolution lowered to W[Cout, Cin*kh*kw] x im2col.
using F32SpmmFn = void (*)(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
                           const std::uint32_t* col_idx, const float* values, const float* bias, const float* x,
                           std::size_t ldx, float* y, std::size_t ldy);

// The same with codebook values (weight sharing): value j is table[codes[j]];
// the caller guarantees codes[j] < the table size (at most 256 entries).
using F32CbSpmmFn = void (*)(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
                             const std::uint32_t* col_idx, const std::uint8_t* codes, const float* table,
                             const float* bias, const float* x, std::size_t ldx, float* y, std::size_t ldy);

// int8 GEMM with per-row weight scales and one activation scale:
//   Y[i, 0:n] = bias[i] (or 0) + (a_scale[i] * b_scale) * float(sum_p A[i, p] * B[p, 0:n])
// with exact int32 accumulation, for rows i in [m_begin, m_end). A is int8
// m x k row-major (lda >= k), B int8 k x n row-major (ldb >= n), Y row-major
// (ldy >= n); rows outside the range are not touched. The caller guarantees
// k <= kQs8GemmMaxK, so the int32 sums cannot overflow (|A B| <= 2^14 per
// product). May throw std::bad_alloc (packing buffers); nothing else.
using Qs8GemmFn = void (*)(std::size_t m_begin, std::size_t m_end, std::size_t n, std::size_t k, const std::int8_t* a,
                           std::size_t lda, const float* a_scale, const std::int8_t* b, std::size_t ldb, float b_scale,
                           const float* bias, float* y, std::size_t ldy);

// Largest k for which a Qs8GemmFn's int32 sums are exact: 2^17 - 1 products
// of magnitude <= 2^14 stay below 2^31.
constexpr std::size_t kQs8GemmMaxK = (std::size_t{1} << 17) - 1;

// Symmetric per-tensor quantization to int8 (kernels/qs8-quantize.cc):
// scale = max|x| / 127, out[i] = x[i] / scale rounded to nearest (halves away
// from zero), in [-127, 127]; returns
// the scale. All-zero (or empty) input gives scale 0 and zero codes;
// non-finite inputs give unspecified codes, still in range.
float quantize_s8_symmetric(const float* x, std::size_t count, std::int8_t* out);

// Direct stride-1 convolution over a zero-padded input, "wide rows":
// the padded input of each channel is a plane of hp x wp floats (planes
// consecutive, plane stride `plane`), and output position q = oy * wp + ox
// reads input q + ky * wp + kx of every channel plane, so a run of
// consecutive q is a run of consecutive inputs (positions with ox >= wo are
// computed and discarded by the caller). Computes, for output channels
// [oc_begin, oc_end) and q in [0, n):
//   y[oc * ldy + q] = sum_{ic, ky, kx} w[...] * x[ic * plane + q + ky * wp + kx]
// with w packed in blocks of 4 output channels, [block][ic][ky][kx][4], the
// channels past the real count zero (Session::prepare). oc_begin is a
// multiple of 4; oc_end need not be: a last block of 1..3 channels computes
// only those (the weights of the block are still read 4 apart), and rows
// oc >= oc_end of y are neither computed nor written. n is a multiple of 24;
// x must be readable up to (cin - 1) * plane + n + (kh - 1) * wp + kw - 1.
// Never throws.
using F32DconvFn = void (*)(std::size_t oc_begin, std::size_t oc_end, std::size_t n, std::size_t cin, std::size_t kh,
                            std::size_t kw, std::size_t wp, std::size_t plane, const float* w, const float* x, float* y,
                            std::size_t ldy);
constexpr std::size_t kDconvOcBlock = 4;
constexpr std::size_t kDconvTile = 24;

// The input pass of the direct convolutions: the zero-padded planes of the
// cin channels of x (cin x h x w) into xpad, h + 2 ph rows of wp = w + 2 pw
// floats per channel, planes consecutive; every element of the cin planes is
// written (borders included). Never throws.
using F32PadPlanesFn = void (*)(std::size_t cin, std::size_t h, std::size_t w, std::size_t ph, std::size_t pw,
                                const float* x, float* xpad);
// The output pass of F32DconvFn: output channels [c0, c1) of its wide rows
// (channel oc's row oy at wide[oc * n + oy * wp], its first wo columns kept)
// into the planes y[oc][oy][ox] (ho x wo) as
//   y = act(wide * scale[oc] + bias[oc] + res[oc][oy][ox])
// in that order of operations; scale, bias, res may be nullptr (1, 0, none;
// res has y's layout and does not alias it); act is ReLU when relu != 0, the
// identity otherwise. Never throws.
using F32WideRowsOutFn = void (*)(std::size_t c0, std::size_t c1, std::size_t n, std::size_t wp, std::size_t ho,
                                  std::size_t wo, const float* wide, const float* scale, const float* bias,
                                  const float* res, int relu, float* y);
// The per-channel output epilogue in place: for channels c in [c0, c1) and
// positions i in [s0, s1) of y (channel c's row at y + c * ld),
//   y[c * ld + i] = act(y[c * ld + i] * scale[c] + bias[c] + res[c * ld + i])
// in that order of operations; scale, bias, res may be nullptr (1, 0, none);
// act is ReLU when relu != 0, the identity otherwise. The same results as
// the scalar kernel (the family's reference). Never throws.
using F32EpilogueFn = void (*)(std::size_t c0, std::size_t c1, std::size_t s0, std::size_t s1, std::size_t ld,
                               const float* scale, const float* bias, const float* res, int relu, float* y);

// Direct convolution vectorized over output channels instead: tiles of 6
// output positions x 16 output channels, input values broadcast, no
// wide-row waste (for small images and many channels). Same padded input
// planes as F32DconvFn, any stride (the same in both directions): output
// position p = oy * wo + ox reads x[ic * plane + (oy * wp + ox) * stride +
// ky * wp + kx]. Computes y[oc * ldy + p] for oc in [oc_begin, oc_end)
// (oc_begin a multiple of 16) and p in [p_begin, p_end). Weights packed by
// 16 output channels: [block][ic][ky][kx][16]. Reads only inside the padded
// planes. Never throws.
using F32DconvOcFn = void (*)(std::size_t oc_begin, std::size_t oc_end, std::size_t p_begin, std::size_t p_end,
                              std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t wo,
                              std::size_t stride, std::size_t plane, const float* w, const float* x, float* y,
                              std::size_t ldy);
// Depthwise convolution (one filter per channel) over zero-padded planes:
// channel c's padded input is the plane of hp rows of wp floats at
// x + c * plane, its kh x kw filter at w + c * kh * kw, and for channels c in
// [c_begin, c_end), oy < ho, ox < wo (the same stride s in both directions,
// no dilation):
//   acc = sum_{ky < kh, kx < kw} w[(c * kh + ky) * kw + kx]
//                                * x[c * plane + (oy * s + ky) * wp + ox * s + kx]
//   y[c * ldy + oy * wo + ox] = min(max(acc + bias[c], lo), hi)
// bias may be nullptr (0); the clamp keeps a NaN (lo = -inf, hi = +inf: no
// activation; 0, +inf: ReLU; 0, 6: ReLU6). The caller guarantees
// (ho - 1) * s + kh <= hp, (wo - 1) * s + kw <= wp, and that x is readable
// kDwconvReadSlack floats past the last plane (vector kernels read whole
// vectors past a row's last needed column and drop the lanes). Never throws.
using F32DwconvFn = void (*)(std::size_t c_begin, std::size_t c_end, std::size_t kh, std::size_t kw, std::size_t s,
                             std::size_t wp, std::size_t plane, std::size_t ho, std::size_t wo, const float* w,
                             const float* bias, float lo, float hi, const float* x, float* y, std::size_t ldy);
constexpr std::size_t kDwconvReadSlack = 64;

// Sparse direct stride-1 convolution over 2-D output tiles of 8 columns:
// per output channel a CSR row of nonzero taps, each with its input offset
// ic * cs + ky * rs + kx (computed at load). The zero-padded input is laid
// out per input channel and per 8-column output tile t: hp rows of rs floats
// holding padded columns [8t, 8t + rs) (rs >= kw + 7, a multiple of 16 so that
// rows start on 64-byte lines when x does), tiles ts = hp * rs apart,
// channels cs = ceil(wo / 8) * ts apart. For oc in [oc_begin, oc_end),
// oy < ho, ox = 8t + u < wo:
//   y[oc * ldy + oy * wo + ox] = sum_{j in [row_ptr[oc], row_ptr[oc + 1])}
//                                values[j] * x[offsets[j] + t * ts + oy * rs + u]
// Exact output positions, straight into the NCHW output; reads
// x[offsets[j] + t * ts + oy * rs + u] for u < 8 only (inside the tile's
// rows). Cost follows the nonzeros. Never throws.
using F32SparseDconvFn = void (*)(std::size_t oc_begin, std::size_t oc_end, std::size_t ho, std::size_t wo,
                                  std::size_t rs, std::size_t ts, const std::uint32_t* row_ptr,
                                  const std::uint32_t* offsets, const float* values, const float* x, float* y,
                                  std::size_t ldy);
constexpr std::size_t kSdconvTileCols = 8;
// That input layout (kernels/f32-sdconv-pack.cc): the row stride rs for a
// kernel width kw; the floats of the packed input of cin channels; and the
// packing of x (cin x h x w, NCHW) with zero padding (ph, pw) for an output
// width wo into out (sdconv_input_size floats, all written). The offset of
// tap (ic, ky, kx) is ic * cs + ky * rs + kx, cs = ceil(wo / 8) * hp * rs.
std::size_t sdconv_row_stride(std::size_t kw);
std::size_t sdconv_input_size(std::size_t cin, std::size_t hp, std::size_t wo, std::size_t kw);
void sdconv_pack_input(const float* x, std::size_t cin, std::size_t h, std::size_t w, std::size_t ph, std::size_t pw,
                       std::size_t wo, std::size_t kw, float* out);

constexpr std::size_t kDconvOcVector = 16;
constexpr std::size_t kDconvOcPixels = 6;

// Winograd F(4x4, 3x3) convolution (stride 1, no dilation, one group):
// each 4x4 block of output positions ("tile") is computed from the 6x6 input
// patch under it as  Y = A^T [ sum_ic (G g G^T) . (B^T d B) ] A,  i.e. 36
// independent GEMMs over (output channel, input channel) per tile, 4x fewer
// multiply-adds than the direct convolution for 2x (weights) + 1x (input)
// + 1x (output) transform overhead. Layouts (cin_p: input channels rounded
// up to 8, cout_p: output channels rounded up to 16):
//   packed input  xh[cin_p / 8][hpp][wpp][8]: the zero-padded input of one
//                 sample, 8 channels interleaved; hpp = 4 * tiles_y + 2,
//                 wpp = 4 * tiles_x + 2 (tiles cover the output, rounded up
//                 to whole tiles; the extra rows/columns are zero).
//   weights       u[36][cout_p / 16][cin_p][16] = G g G^T per output channel
//                 block, zero-padded (pack_wino4x4_weights).
//   bias          cout_p floats (zero-padded) or nullptr.
// F32Wino4x4Fn computes output tiles [tile_begin, tile_end) (tile index
// ty * tiles_x + tx) of all `cout` channels into y[oc][oy][ox] (ho x wo
// planes) from the first cin (<= cin_p) of the packed channels (the GEMMs skip
// the zero padding channels), adding bias, then residual[oc][oy][ox] (y's layout; nullptr:
// none; a fused residual add), then applying ReLU when relu != 0; positions
// outside ho x wo are neither read nor written. Scratch from kernel_workspace. May throw
// std::bad_alloc (workspace); nothing else.
using F32Wino4x4Fn = void (*)(std::size_t tile_begin, std::size_t tile_end, std::size_t tiles_x, std::size_t cin,
                              std::size_t cin_p, std::size_t cout, const float* u, const float* bias, int relu,
                              const float* residual, const float* xh, std::size_t hpp, std::size_t wpp, float* y,
                              std::size_t ho, std::size_t wo);
// Packs one sample x[cin][h][w] into xh (layout above) with ph / pw zero rows
// / columns before the image; every other element of xh is zeroed. Never
// throws.
using F32Wino4x4PackFn = void (*)(std::size_t cin, std::size_t h, std::size_t w, std::size_t ph, std::size_t pw,
                                  const float* x, float* xh, std::size_t hpp, std::size_t wpp);
constexpr std::size_t kWinoTile = 4;        // output positions per tile side
constexpr std::size_t kWinoAlpha = 6;       // input patch side: tile + 3 - 1
constexpr std::size_t kWinoPositions = 36;  // kWinoAlpha^2 transformed positions
constexpr std::size_t kWinoCinBlock = 8;
constexpr std::size_t kWinoCoutBlock = 16;
constexpr std::size_t kWinoTileChunk = 24;  // tiles transformed per GEMM pass

// u (layout above) from w[cout][cin][3][3] with each output channel's
// weights multiplied by scale[oc] (nullptr: 1), computed in double
// (kernels/f32-wino4x4-weights.cc). u must hold
// 36 * round_up(cout, 16) * round_up(cin, 8) floats. Never throws.
void pack_wino4x4_weights(std::size_t cout, std::size_t cin, const float* w, const float* scale, float* u);

// Batch-1 sparse matrix-vector product y = W x over a blocked format built
// from CSR at load (kernels/f32-spmv-pack.cc): rows in slices of 8, columns
// in panels of 8. A slice's nonzeros are a list of steps, panel by panel;
// step t holds 8 values (values[8t + r] for row 8s + r, 0 for padding) and
// one word: bits 3r..3r+2 = the column of lane r inside the panel, bits
// 24..31 = the panel (so k <= 8 * 256). Padding lanes have value 0 (an
// infinite or NaN x entry in their panel makes them NaN, as in a dense
// product). For slices s in [s_begin, s_end):
//   y[8s + r] = sum_{t in [slice_ptr[s], slice_ptr[s + 1])} values[8t + r] * x[8 * panel(t) + col_r(t)]
// for rows 8s + r < m; reads x[0, k) only. Never throws.
using F32BlockSpmvFn = void (*)(std::size_t m, std::size_t k, std::size_t s_begin, std::size_t s_end,
                                const std::uint32_t* slice_ptr, const std::uint32_t* words, const float* values,
                                const float* x, float* y);
constexpr std::size_t kBlockSpmvRows = 8, kBlockSpmvCols = 8, kBlockSpmvMaxPanels = 256;
// Steps of the blocked format of an m x k CSR matrix (columns ascending in
// each row), or 0 when k is too large for it (> 2048 columns).
std::size_t block_spmv_steps(std::size_t m, std::size_t k, const std::uint32_t* row_ptr, const std::uint32_t* col_idx);
// Fills slice_ptr (ceil(m / 8) + 1 entries), words (steps) and packed
// (8 * steps floats).
void block_spmv_pack(std::size_t m, std::size_t k, const std::uint32_t* row_ptr, const std::uint32_t* col_idx,
                     const float* values, std::uint32_t* slice_ptr, std::uint32_t* words, float* packed);

// Pooling and softmax (kernels/f32-pool-reference.cc,
// f32-softmax-reference.cc): one implementation each, so no lists. Planes
// are consecutive (planes = batch x channels), each h x w in, ho x wo out.
struct F32PoolParams {
  std::int64_t h, w, ho, wo;                    // input and output plane sizes
  std::int64_t kh, kw, sh, sw, ph, pw, dh, dw;  // window, stride, padding, dilation
  int include_pad;  // average pooling: count padding in the divisor (PyTorch's count_include_pad)
};
// Per-thread scratch memory for kernels (kernels/workspace.cc): at least
// `bytes` bytes, 64-byte aligned, uninitialized, valid until the next call on
// the same thread. Lives in a file compiled without ISA flags. May throw
// std::bad_alloc.
void* kernel_workspace(std::size_t bytes);

}  // namespace pakd

// Pooling and softmax kernels (F32PoolParams above).
// Max pooling; positions of the window outside the input are skipped.
// Never throws.
void pakd_f32_maxpool_ukernel__reference(std::size_t planes, const pakd::F32PoolParams& params, const float* x,
                                         float* y);
// Average pooling with PyTorch's avg_pool2d divisor rules. Never throws.
void pakd_f32_avgpool_ukernel__reference(std::size_t planes, const pakd::F32PoolParams& params, const float* x,
                                         float* y);
// 2x2 windows, stride 2, no padding: y[oy][ox] = max of x[2oy..2oy+1][2ox..2ox+1]
// (ho <= h / 2, wo <= w / 2). Never throws.
void pakd_f32_maxpool2x2_ukernel__scalar(std::size_t planes, std::size_t h, std::size_t w, std::size_t ho,
                                         std::size_t wo, const float* x, float* y);
// y[p] = mean of plane p (size floats). Never throws.
void pakd_f32_gavgpool_ukernel__scalar(std::size_t planes, std::size_t size, const float* x, float* y);
// y = softmax(x) over n floats (max subtracted first). Never throws.
void pakd_f32_softmax_ukernel__reference(std::size_t n, const float* x, float* y);

// The declarations of every listed kernel, from the lists themselves: each
// list's function names declared with the family's function type.
#define PAKD_DECLARE_UKERNELS(Fn) std::remove_pointer_t<pakd::Fn>
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32GemmFn) fn;
#include "kernels/f32-gemm-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32DconvFn) fn;
#include "kernels/f32-dconv-wide-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32DconvOcFn) fn;
#include "kernels/f32-dconv-oc-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32PadPlanesFn) fn;
#include "kernels/f32-dconv-pad-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32WideRowsOutFn) fn;
#include "kernels/f32-dconv-out-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32EpilogueFn) fn;
#include "kernels/f32-epilogue-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32Wino4x4PackFn) fn;
#include "kernels/f32-wino4x4-pack-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32Wino4x4Fn) fn;
#include "kernels/f32-wino4x4-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32DwconvFn) fn;
#include "kernels/f32-dwconv-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32SparseDconvFn) fn;
#include "kernels/f32-sdconv-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32BlockSpmvFn) fn;
#include "kernels/f32-spmv-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32SpmmFn) fn;
#include "kernels/f32-spmm-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(F32CbSpmmFn) fn;
#include "kernels/f32-cbspmm-list.inc"
#undef PAKD_UKERNEL
#define PAKD_UKERNEL(fn, name, isa, required) PAKD_DECLARE_UKERNELS(Qs8GemmFn) fn;
#include "kernels/qs8-gemm-list.inc"
#undef PAKD_UKERNEL
#undef PAKD_DECLARE_UKERNELS

#endif  // PAKD_SRC_KERNELS_KERNELS_H_
