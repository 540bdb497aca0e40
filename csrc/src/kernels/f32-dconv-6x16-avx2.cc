// Direct stride-1 convolution, 6 output positions x 16 output channels per
// tile with AVX2/FMA: 12 accumulators; per tap 2 weight loads and 6 input
// broadcasts feed 12 FMAs (the GEMM micro-kernel's ratio, without im2col).
// A whole tile is transposed in registers into the channel-major output; a
// last partial tile goes through memory.
// Contract: F32DconvOcFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>

#include "kernels/kernels.h"

namespace {

// Channels [0, count) (count <= 8) of 6 positions x 8 channels, r[j] holding
// position j's 8 channels, into y[v * ldy + j]: a 4x4 transpose per 128-bit
// lane of positions 0..3 (one 4-float store per channel) and the interleaved
// pairs of positions 4..5 (one 2-float store per channel); no store reaches
// past position 5 (the next positions may be another thread's).
inline void store_6x8_transposed(const __m256 r[6], std::size_t count, float* y, std::size_t ldy) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  // per lane: s_k = channel k of positions 0..3; t4 = channels 0, 1 of positions 4, 5; t5 = channels 2, 3
  const __m256 s[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                       _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
  const __m128 q[4] = {_mm256_castps256_ps128(t4), _mm256_castps256_ps128(t5), _mm256_extractf128_ps(t4, 1),
                       _mm256_extractf128_ps(t5, 1)};
  for (std::size_t v = 0; v < count; ++v) {
    float* yv = y + v * ldy;
    const __m128 head = v < 4 ? _mm256_castps256_ps128(s[v]) : _mm256_extractf128_ps(s[v - 4], 1);
    _mm_storeu_ps(yv, head);
    const __m128 pair = q[(v / 4) * 2 + (v % 4) / 2];
    if (v % 2 == 0) {
      _mm_storel_pi(reinterpret_cast<__m64*>(yv + 4), pair);
    } else {
      _mm_storeh_pi(reinterpret_cast<__m64*>(yv + 4), pair);
    }
  }
}

}  // namespace

void pakd_f32_dconv_ukernel_6x16__avx2(std::size_t oc_begin, std::size_t oc_end, std::size_t p_begin, std::size_t p_end,
                                       std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t wo,
                                       std::size_t stride, std::size_t plane, const float* w, const float* x, float* y,
                                       std::size_t ldy) {
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
      __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps(),
             c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(),
             c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
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
      const std::size_t vs = oc_end - ob < V ? oc_end - ob : V;
      if (rows == P) {  // a whole tile: transposed in registers
        const __m256 lo[P] = {c00, c10, c20, c30, c40, c50}, hi[P] = {c01, c11, c21, c31, c41, c51};
        float* yt = y + ob * ldy + p0;
        store_6x8_transposed(lo, vs < 8 ? vs : 8, yt, ldy);
        if (vs > 8) store_6x8_transposed(hi, vs - 8, yt + 8 * ldy, ldy);
        continue;
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
      for (std::size_t v = 0; v < vs; ++v) {
        float* yr = y + (ob + v) * ldy + p0;
        for (std::size_t j = 0; j < rows; ++j) yr[j] = tile[j][v];
      }
    }
  }
}
