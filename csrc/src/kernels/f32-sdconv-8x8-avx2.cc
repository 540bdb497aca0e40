// Sparse direct stride-1 convolution with AVX2/FMA over 2-D output tiles:
// per output channel, tiles of 8 output rows x 8 output columns (8
// accumulators, one per row: enough independent FMA chains to cover the FMA
// latency) per pass over the channel's nonzero taps. Each nonzero: one
// broadcast, 8 input loads (one per row), 8 FMAs. With the input laid out per
// column tile in 64-byte rows (F32SparseDconvFn) a load never splits a cache
// line, which doubles the speed over unaligned wide rows (LeNet-5's conv2:
// 9 -> 4.5 us). Rows past a multiple of 8 take 4-, 2- and 1-row tiles; the
// last column tile stores through a mask.
// Contract: F32SparseDconvFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace {

template <int R, bool kMasked>
void tile(std::uint32_t j0, std::uint32_t j1, const std::uint32_t* __restrict offsets, const float* __restrict values,
          const float* __restrict x, std::size_t rs, __m256i mask, float* __restrict y, std::size_t wo) {
  __m256 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (std::uint32_t j = j0; j < j1; ++j) {
    const __m256 v = _mm256_broadcast_ss(values + j);
    const float* xs = x + offsets[j];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      acc[r] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xs + static_cast<std::size_t>(r) * rs), acc[r]);
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* yr = y + static_cast<std::size_t>(r) * wo;
    if (kMasked) {
      _mm256_maskstore_ps(yr, mask, acc[r]);
    } else {
      _mm256_storeu_ps(yr, acc[r]);
    }
  }
}

template <bool kMasked>
void column(std::uint32_t j0, std::uint32_t j1, const std::uint32_t* offsets, const float* values, const float* x,
            std::size_t ho, std::size_t rs, __m256i mask, float* y, std::size_t wo) {
  std::size_t oy = 0;
  for (; oy + 8 <= ho; oy += 8) tile<8, kMasked>(j0, j1, offsets, values, x + oy * rs, rs, mask, y + oy * wo, wo);
  if (oy + 4 <= ho) {
    tile<4, kMasked>(j0, j1, offsets, values, x + oy * rs, rs, mask, y + oy * wo, wo);
    oy += 4;
  }
  if (oy + 2 <= ho) {
    tile<2, kMasked>(j0, j1, offsets, values, x + oy * rs, rs, mask, y + oy * wo, wo);
    oy += 2;
  }
  if (oy < ho) tile<1, kMasked>(j0, j1, offsets, values, x + oy * rs, rs, mask, y + oy * wo, wo);
}

}  // namespace

void pakd_f32_sdconv_ukernel_8x8__avx2(std::size_t oc_begin, std::size_t oc_end, std::size_t ho, std::size_t wo,
                                       std::size_t rs, std::size_t ts, const std::uint32_t* row_ptr,
                                       const std::uint32_t* offsets, const float* values, const float* x, float* y,
                                       std::size_t ldy) {
  static const std::int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::size_t tail = wo % 8;
  const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - tail));
  for (std::size_t oc = oc_begin; oc < oc_end; ++oc) {
    const std::uint32_t j0 = row_ptr[oc], j1 = row_ptr[oc + 1];
    float* yc = y + oc * ldy;
    std::size_t t = 0;
    for (; 8 * t + 8 <= wo; ++t) column<false>(j0, j1, offsets, values, x + t * ts, ho, rs, mask, yc + 8 * t, wo);
    if (tail != 0) column<true>(j0, j1, offsets, values, x + t * ts, ho, rs, mask, yc + 8 * t, wo);
  }
}
