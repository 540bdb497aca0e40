// Direct stride-1 convolution, 4 output channels x 24 output positions per
// tile with AVX2/FMA: 12 accumulators; per tap 3 input loads and 4 weight
// broadcasts feed 12 FMAs. Contract: F32DconvFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>

#include "kernels/kernels.h"

void pakd_f32_dconv_ukernel_4x24__avx2(std::size_t oc_begin, std::size_t oc_end, std::size_t n,
                                       std::size_t cin, std::size_t kh, std::size_t kw,
                                       std::size_t wp, std::size_t plane, const float* w,
                                       const float* x, float* y, std::size_t ldy) {
  constexpr std::size_t R = pakd::kDconvOcBlock, T = pakd::kDconvTile;
  const std::size_t taps = cin * kh * kw;
  for (std::size_t ob = oc_begin; ob < oc_end; ob += R) {
    const float* wb = w + (ob / R) * taps * R;
    for (std::size_t q0 = 0; q0 < n; q0 += T) {
      __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a02 = _mm256_setzero_ps();
      __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps(), a12 = _mm256_setzero_ps();
      __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps(), a22 = _mm256_setzero_ps();
      __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps(), a32 = _mm256_setzero_ps();
      const float* wt = wb;
      for (std::size_t ic = 0; ic < cin; ++ic) {
        const float* xc = x + ic * plane + q0;
        for (std::size_t ky = 0; ky < kh; ++ky) {
          const float* xr = xc + ky * wp;
          for (std::size_t kx = 0; kx < kw; ++kx, wt += R) {
            const __m256 x0 = _mm256_loadu_ps(xr + kx);
            const __m256 x1 = _mm256_loadu_ps(xr + kx + 8);
            const __m256 x2 = _mm256_loadu_ps(xr + kx + 16);
            __m256 b = _mm256_broadcast_ss(wt + 0);
            a00 = _mm256_fmadd_ps(b, x0, a00);
            a01 = _mm256_fmadd_ps(b, x1, a01);
            a02 = _mm256_fmadd_ps(b, x2, a02);
            b = _mm256_broadcast_ss(wt + 1);
            a10 = _mm256_fmadd_ps(b, x0, a10);
            a11 = _mm256_fmadd_ps(b, x1, a11);
            a12 = _mm256_fmadd_ps(b, x2, a12);
            b = _mm256_broadcast_ss(wt + 2);
            a20 = _mm256_fmadd_ps(b, x0, a20);
            a21 = _mm256_fmadd_ps(b, x1, a21);
            a22 = _mm256_fmadd_ps(b, x2, a22);
            b = _mm256_broadcast_ss(wt + 3);
            a30 = _mm256_fmadd_ps(b, x0, a30);
            a31 = _mm256_fmadd_ps(b, x1, a31);
            a32 = _mm256_fmadd_ps(b, x2, a32);
          }
        }
      }
      const __m256 acc[R][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};
      for (std::size_t r = 0; r < R && ob + r < oc_end; ++r) {
        float* yr = y + (ob + r) * ldy + q0;
        _mm256_storeu_ps(yr, acc[r][0]);
        _mm256_storeu_ps(yr + 8, acc[r][1]);
        _mm256_storeu_ps(yr + 16, acc[r][2]);
      }
    }
  }
}
