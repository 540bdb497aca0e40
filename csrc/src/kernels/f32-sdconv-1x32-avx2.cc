// Sparse direct stride-1 convolution with AVX2/FMA: per output channel, 32
// positions (4 accumulators) per pass over the channel's nonzero taps, then
// 8 at a time. Each nonzero: one broadcast, 4 input loads, 4 FMAs.
// Contract: F32SparseDconvFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

void pakd_f32_sdconv_ukernel_1x32__avx2(std::size_t oc_begin, std::size_t oc_end, std::size_t n,
                                        const std::uint32_t* row_ptr, const std::uint32_t* offsets,
                                        const float* values, const float* x, float* y, std::size_t ldy) {
  for (std::size_t oc = oc_begin; oc < oc_end; ++oc) {
    float* yr = y + oc * ldy;
    const std::uint32_t j0 = row_ptr[oc], j1 = row_ptr[oc + 1];
    std::size_t q0 = 0;
    for (; q0 + 32 <= n; q0 += 32) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
             a3 = _mm256_setzero_ps();
      for (std::uint32_t j = j0; j < j1; ++j) {
        const __m256 v = _mm256_broadcast_ss(values + j);
        const float* xs = x + offsets[j] + q0;
        a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xs), a0);
        a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xs + 8), a1);
        a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xs + 16), a2);
        a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xs + 24), a3);
      }
      _mm256_storeu_ps(yr + q0, a0);
      _mm256_storeu_ps(yr + q0 + 8, a1);
      _mm256_storeu_ps(yr + q0 + 16, a2);
      _mm256_storeu_ps(yr + q0 + 24, a3);
    }
    for (; q0 < n; q0 += 8) {
      __m256 a = _mm256_setzero_ps();
      for (std::uint32_t j = j0; j < j1; ++j) {
        a = _mm256_fmadd_ps(_mm256_broadcast_ss(values + j), _mm256_loadu_ps(x + offsets[j] + q0), a);
      }
      _mm256_storeu_ps(yr + q0, a);
    }
  }
}
