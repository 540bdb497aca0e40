// Depthwise convolution with AVX2 + FMA: 8 outputs along x per vector, one
// accumulator per vector (successive vectors are independent, so out-of-order
// execution overlaps their FMA chains), bias and clamp fused. Stride 1: two
// output rows per pass, so each of their kh + 1 input rows is loaded once
// (3x3: 12 loads for 16 outputs instead of 18). Stride 2: per
// pair of taps (kx, kx + 1) two loads of 8 from column 2 ox + kx,
// deinterleaved (shuffle + 64-bit permute) into the even (tap kx) and odd
// (tap kx + 1) columns. The last vector of a row computes all 8 lanes (the
// reads stay within the read slack) and stores only the lanes inside the row.
// 3x3 and 5x5 have their tap loops unrolled at compile time; other sizes run
// the same code with run-time bounds.
// Contract: F32DwconvFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace {

// The even / odd columns of the 16 floats at p.
inline void deinterleave(const float* p, __m256* even, __m256* odd) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // 0 2 8 10 | 4 6 12 14
  const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

// KH, KW: the kernel size, 0 for the run-time kh, kw; S the stride (1 or 2).
template <std::size_t KH, std::size_t KW, std::size_t S>
void channels(std::size_t c_begin, std::size_t c_end, std::size_t kh_rt, std::size_t kw_rt, std::size_t wp,
              std::size_t plane, std::size_t ho, std::size_t wo, const float* w, const float* bias, float lo, float hi,
              const float* x, float* y, std::size_t ldy) {
  const std::size_t kh = KH != 0 ? KH : kh_rt, kw = KW != 0 ? KW : kw_rt;
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  const std::size_t tail = wo % 8;
  const __m256i mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<std::int32_t>(tail)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (std::size_t c = c_begin; c < c_end; ++c) {
    const float* xc = x + c * plane;
    const float* wc = w + c * kh * kw;
    const __m256 vb = _mm256_set1_ps(bias != nullptr ? bias[c] : 0.0f);
    float* yc = y + c * ldy;
    std::size_t oy = 0;
    if (S == 1) {  // two output rows at a time: each of their kh + 1 input rows loaded once
      for (; oy + 2 <= ho; oy += 2) {
        const float* xr = xc + oy * wp;
        float* yr = yc + oy * wo;
        for (std::size_t ox = 0; ox < wo; ox += 8) {
          __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
          for (std::size_t r = 0; r <= kh; ++r) {
            const float* row = xr + r * wp + ox;
            for (std::size_t kx = 0; kx < kw; ++kx) {
              const __m256 xv = _mm256_loadu_ps(row + kx);
              if (r < kh) acc0 = _mm256_fmadd_ps(_mm256_set1_ps(wc[r * kw + kx]), xv, acc0);
              if (r >= 1) acc1 = _mm256_fmadd_ps(_mm256_set1_ps(wc[(r - 1) * kw + kx]), xv, acc1);
            }
          }
          const __m256 v0 = _mm256_min_ps(vhi, _mm256_max_ps(vlo, _mm256_add_ps(acc0, vb)));
          const __m256 v1 = _mm256_min_ps(vhi, _mm256_max_ps(vlo, _mm256_add_ps(acc1, vb)));
          if (ox + 8 <= wo) {
            _mm256_storeu_ps(yr + ox, v0);
            _mm256_storeu_ps(yr + wo + ox, v1);
          } else {
            _mm256_maskstore_ps(yr + ox, mask, v0);
            _mm256_maskstore_ps(yr + wo + ox, mask, v1);
          }
        }
      }
    }
    for (; oy < ho; ++oy) {
      const float* xr = xc + oy * S * wp;
      float* yr = yc + oy * wo;
      for (std::size_t ox = 0; ox < wo; ox += 8) {
        __m256 acc = _mm256_setzero_ps();
        const float* xp = xr + ox * S;
        for (std::size_t ky = 0; ky < kh; ++ky) {
          const float* row = xp + ky * wp;
          const float* wr = wc + ky * kw;
          if (S == 1) {
            for (std::size_t kx = 0; kx < kw; ++kx) {
              acc = _mm256_fmadd_ps(_mm256_set1_ps(wr[kx]), _mm256_loadu_ps(row + kx), acc);
            }
          } else {
            for (std::size_t kx = 0; kx < kw; kx += 2) {
              __m256 even, odd;
              deinterleave(row + kx, &even, &odd);
              acc = _mm256_fmadd_ps(_mm256_set1_ps(wr[kx]), even, acc);
              if (kx + 1 < kw) acc = _mm256_fmadd_ps(_mm256_set1_ps(wr[kx + 1]), odd, acc);
            }
          }
        }
        // max(lo, v), min(hi, v): the second operand is returned for a NaN
        __m256 v = _mm256_add_ps(acc, vb);
        v = _mm256_min_ps(vhi, _mm256_max_ps(vlo, v));
        if (ox + 8 <= wo) {
          _mm256_storeu_ps(yr + ox, v);
        } else {
          _mm256_maskstore_ps(yr + ox, mask, v);
        }
      }
    }
  }
}

using Channels = void (*)(std::size_t, std::size_t, std::size_t, std::size_t, std::size_t, std::size_t, std::size_t,
                          std::size_t, const float*, const float*, float, float, const float*, float*, std::size_t);

template <std::size_t S>
Channels choose(std::size_t kh, std::size_t kw) {
  if (kh == 3 && kw == 3) return &channels<3, 3, S>;
  if (kh == 5 && kw == 5) return &channels<5, 5, S>;
  return &channels<0, 0, S>;
}

}  // namespace

void pakd_f32_dwconv_ukernel__avx2(std::size_t c_begin, std::size_t c_end, std::size_t kh, std::size_t kw,
                                   std::size_t s, std::size_t wp, std::size_t plane, std::size_t ho, std::size_t wo,
                                   const float* w, const float* bias, float lo, float hi, const float* x, float* y,
                                   std::size_t ldy) {
  if (s == 1 || s == 2) {
    const Channels run = s == 1 ? choose<1>(kh, kw) : choose<2>(kh, kw);
    run(c_begin, c_end, kh, kw, wp, plane, ho, wo, w, bias, lo, hi, x, y, ldy);
    return;
  }
  pakd_f32_dwconv_ukernel__scalar(c_begin, c_end, kh, kw, s, wp, plane, ho, wo, w, bias, lo, hi, x, y, ldy);
}
