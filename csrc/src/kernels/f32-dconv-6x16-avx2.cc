// Direct stride-1 convolution, 6 output positions x 16 output channels per
// tile with AVX2/FMA: 12 accumulators; per tap 2 weight loads and 6 input
// broadcasts feed 12 FMAs (the GEMM micro-kernel's ratio, without im2col).
// Contract: F32DconvOcFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>

#include "kernels/kernels.h"

void pakd_f32_dconv_ukernel_6x16__avx2(std::size_t oc_begin, std::size_t oc_end, std::size_t p_begin,
                                       std::size_t p_end, std::size_t cin, std::size_t kh, std::size_t kw,
                                       std::size_t wp, std::size_t wo, std::size_t stride, std::size_t plane, const float* w,
                                       const float* x, float* y, std::size_t ldy) {
  constexpr std::size_t V = pakd::kDconvOcVector, P = pakd::kDconvOcPixels;
  const std::size_t taps = cin * kh * kw;
  for (std::size_t ob = oc_begin; ob < oc_end; ob += V) {
    const float* wb = w + (ob / V) * taps * V;
    for (std::size_t p0 = p_begin; p0 < p_end; p0 += P) {
      const std::size_t rows = p_end - p0 < P ? p_end - p0 : P;
      std::size_t off[P];
      for (std::size_t j = 0; j < P; ++j) {
        const std::size_t p = p0 + (j < rows ? j : 0);
        off[j] = (p / wo) * stride * wp + p % wo * stride;
      }
      __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
             c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
             c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
             c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
      const float* wt = wb;
      for (std::size_t ic = 0; ic < cin; ++ic) {
        const float* xc = x + ic * plane;
        const float* x0 = xc + off[0];
        const float* x1 = xc + off[1];
        const float* x2 = xc + off[2];
        const float* x3 = xc + off[3];
        const float* x4 = xc + off[4];
        const float* x5 = xc + off[5];
        for (std::size_t ky = 0; ky < kh; ++ky) {
          const std::size_t row = ky * wp;
          for (std::size_t kx = 0; kx < kw; ++kx, wt += V) {
            const std::size_t t = row + kx;
            const __m256 w0 = _mm256_loadu_ps(wt);
            const __m256 w1 = _mm256_loadu_ps(wt + 8);
            __m256 b = _mm256_broadcast_ss(x0 + t);
            c00 = _mm256_fmadd_ps(b, w0, c00);
            c01 = _mm256_fmadd_ps(b, w1, c01);
            b = _mm256_broadcast_ss(x1 + t);
            c10 = _mm256_fmadd_ps(b, w0, c10);
            c11 = _mm256_fmadd_ps(b, w1, c11);
            b = _mm256_broadcast_ss(x2 + t);
            c20 = _mm256_fmadd_ps(b, w0, c20);
            c21 = _mm256_fmadd_ps(b, w1, c21);
            b = _mm256_broadcast_ss(x3 + t);
            c30 = _mm256_fmadd_ps(b, w0, c30);
            c31 = _mm256_fmadd_ps(b, w1, c31);
            b = _mm256_broadcast_ss(x4 + t);
            c40 = _mm256_fmadd_ps(b, w0, c40);
            c41 = _mm256_fmadd_ps(b, w1, c41);
            b = _mm256_broadcast_ss(x5 + t);
            c50 = _mm256_fmadd_ps(b, w0, c50);
            c51 = _mm256_fmadd_ps(b, w1, c51);
          }
        }
      }
      alignas(32) float tile[P][V];
      _mm256_store_ps(tile[0], c00);
      _mm256_store_ps(tile[0] + 8, c01);
      _mm256_store_ps(tile[1], c10);
      _mm256_store_ps(tile[1] + 8, c11);
      _mm256_store_ps(tile[2], c20);
      _mm256_store_ps(tile[2] + 8, c21);
      _mm256_store_ps(tile[3], c30);
      _mm256_store_ps(tile[3] + 8, c31);
      _mm256_store_ps(tile[4], c40);
      _mm256_store_ps(tile[4] + 8, c41);
      _mm256_store_ps(tile[5], c50);
      _mm256_store_ps(tile[5] + 8, c51);
      const std::size_t vs = oc_end - ob < V ? oc_end - ob : V;
      for (std::size_t v = 0; v < vs; ++v) {
        float* yr = y + (ob + v) * ldy + p0;
        for (std::size_t j = 0; j < rows; ++j) yr[j] = tile[j][v];
      }
    }
  }
}
