// Depthwise convolution with NEON: 8 outputs along x per step (two
// q-vectors, two independent accumulators), bias and clamp fused. Stride 1:
// two output rows per pass (four accumulators), each of their kh + 1 input
// rows loaded once. Stride 2:
// vld2q_f32 from column 2 ox + kx deinterleaves the even (tap kx) and odd
// (tap kx + 1) columns of a pair of taps. A row's last step computes whole
// vectors (the reads stay within the read slack) and stores only the columns
// inside the row. 3x3 and 5x5 have their tap loops unrolled at compile time.
// AArch64 multiply-adds with FMA; ARMv7 NEON has none (vmlaq_f32).
// Contract: F32DwconvFn in kernels/kernels.h.
#include <arm_neon.h>

#include <cstddef>

#include "kernels/kernels.h"

namespace {

#if defined(__aarch64__)
#define PAKD_MAC(acc, a, b) vfmaq_f32(acc, a, b)
#else
#define PAKD_MAC(acc, a, b) vmlaq_f32(acc, a, b)
#endif

// The first min(n, 8) of the 8 floats v0, v1 to y.
inline void store8(float* y, std::size_t n, float32x4_t v0, float32x4_t v1) {
  if (n >= 8) {
    vst1q_f32(y, v0);
    vst1q_f32(y + 4, v1);
    return;
  }
  float out[8];
  vst1q_f32(out, v0);
  vst1q_f32(out + 4, v1);
  for (std::size_t i = 0; i < n; ++i) y[i] = out[i];
}

// KH, KW: the kernel size, 0 for the run-time kh, kw; S the stride (1 or 2).
template <std::size_t KH, std::size_t KW, std::size_t S>
void channels(std::size_t c_begin, std::size_t c_end, std::size_t kh_rt, std::size_t kw_rt, std::size_t wp,
              std::size_t plane, std::size_t ho, std::size_t wo, const float* w, const float* bias, float lo, float hi,
              const float* x, float* y, std::size_t ldy) {
  const std::size_t kh = KH != 0 ? KH : kh_rt, kw = KW != 0 ? KW : kw_rt;
  const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
  for (std::size_t c = c_begin; c < c_end; ++c) {
    const float* xc = x + c * plane;
    const float* wc = w + c * kh * kw;
    const float32x4_t vb = vdupq_n_f32(bias != nullptr ? bias[c] : 0.0f);
    float* yc = y + c * ldy;
    std::size_t oy = 0;
    if (S == 1) {  // two output rows at a time: each of their kh + 1 input rows loaded once
      for (; oy + 2 <= ho; oy += 2) {
        const float* xr = xc + oy * wp;
        float* yr = yc + oy * wo;
        for (std::size_t ox = 0; ox < wo; ox += 8) {
          float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);  // row oy
          float32x4_t b0 = vdupq_n_f32(0.0f), b1 = vdupq_n_f32(0.0f);  // row oy + 1
          for (std::size_t r = 0; r <= kh; ++r) {
            const float* row = xr + r * wp + ox;
            for (std::size_t kx = 0; kx < kw; ++kx) {
              const float32x4_t x0 = vld1q_f32(row + kx), x1 = vld1q_f32(row + kx + 4);
              if (r < kh) {
                const float32x4_t wv = vdupq_n_f32(wc[r * kw + kx]);
                a0 = PAKD_MAC(a0, wv, x0);
                a1 = PAKD_MAC(a1, wv, x1);
              }
              if (r >= 1) {
                const float32x4_t wv = vdupq_n_f32(wc[(r - 1) * kw + kx]);
                b0 = PAKD_MAC(b0, wv, x0);
                b1 = PAKD_MAC(b1, wv, x1);
              }
            }
          }
          store8(yr + ox, wo - ox, vminq_f32(vmaxq_f32(vaddq_f32(a0, vb), vlo), vhi),
                 vminq_f32(vmaxq_f32(vaddq_f32(a1, vb), vlo), vhi));
          store8(yr + wo + ox, wo - ox, vminq_f32(vmaxq_f32(vaddq_f32(b0, vb), vlo), vhi),
                 vminq_f32(vmaxq_f32(vaddq_f32(b1, vb), vlo), vhi));
        }
      }
    }
    for (; oy < ho; ++oy) {
      const float* xr = xc + oy * S * wp;
      float* yr = yc + oy * wo;
      for (std::size_t ox = 0; ox < wo; ox += 8) {
        float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
        const float* xp = xr + ox * S;
        for (std::size_t ky = 0; ky < kh; ++ky) {
          const float* row = xp + ky * wp;
          const float* wr = wc + ky * kw;
          if (S == 1) {
            for (std::size_t kx = 0; kx < kw; ++kx) {
              const float32x4_t wv = vdupq_n_f32(wr[kx]);
              acc0 = PAKD_MAC(acc0, wv, vld1q_f32(row + kx));
              acc1 = PAKD_MAC(acc1, wv, vld1q_f32(row + kx + 4));
            }
          } else {
            for (std::size_t kx = 0; kx < kw; kx += 2) {
              const float32x4x2_t a = vld2q_f32(row + kx), b = vld2q_f32(row + kx + 8);
              const float32x4_t w0 = vdupq_n_f32(wr[kx]);
              acc0 = PAKD_MAC(acc0, w0, a.val[0]);
              acc1 = PAKD_MAC(acc1, w0, b.val[0]);
              if (kx + 1 < kw) {
                const float32x4_t w1 = vdupq_n_f32(wr[kx + 1]);
                acc0 = PAKD_MAC(acc0, w1, a.val[1]);
                acc1 = PAKD_MAC(acc1, w1, b.val[1]);
              }
            }
          }
        }
        // vmaxq / vminq return a NaN operand
        const float32x4_t v0 = vminq_f32(vmaxq_f32(vaddq_f32(acc0, vb), vlo), vhi);
        const float32x4_t v1 = vminq_f32(vmaxq_f32(vaddq_f32(acc1, vb), vlo), vhi);
        store8(yr + ox, wo - ox, v0, v1);
      }
    }
  }
}

#undef PAKD_MAC

using Channels = void (*)(std::size_t, std::size_t, std::size_t, std::size_t, std::size_t, std::size_t, std::size_t,
                          std::size_t, const float*, const float*, float, float, const float*, float*, std::size_t);

template <std::size_t S>
Channels choose(std::size_t kh, std::size_t kw) {
  if (kh == 3 && kw == 3) return &channels<3, 3, S>;
  if (kh == 5 && kw == 5) return &channels<5, 5, S>;
  return &channels<0, 0, S>;
}

}  // namespace

void pakd_f32_dwconv_ukernel__neon(std::size_t c_begin, std::size_t c_end, std::size_t kh, std::size_t kw,
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
