// Direct convolution, 6 output positions x 16 output channels per tile with
// NEON, any stride. AArch64: 24 accumulators (6 positions x 4 vectors of 4
// channels); per tap 4 weight loads and 6 input broadcasts (ld1r) feed 24
// FMAs. ARMv7 (16 q-registers, no FMA): the 16 channels as two halves of 8
// (12 accumulators each, multiply-accumulate). A whole tile is transposed in
// registers (4x4 blocks) into the channel-major output; a partial tile (fewer
// positions or channels) goes through memory.
// Contract: F32DconvOcFn in kernels/kernels.h.
#include <arm_neon.h>

#include <cstddef>

#include "kernels/kernels.h"

namespace {

constexpr std::size_t V = pakd::kDconvOcVector, P = pakd::kDconvOcPixels;

#if defined(__aarch64__)
constexpr std::size_t kQ = 4;  // q-vectors of channels per pass
inline float32x4_t mac(float32x4_t acc, float32x4_t a, float32x4_t b) { return vfmaq_f32(acc, a, b); }
#else
constexpr std::size_t kQ = 2;
inline float32x4_t mac(float32x4_t acc, float32x4_t a, float32x4_t b) { return vmlaq_f32(acc, a, b); }
#endif

// Channels [4 kQ h, 4 kQ (h + 1)) of one tile: acc[j][q] = position j,
// channels 4 (kQ h + q) .. +3.
inline void tile_pass(const float* wt, std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp,
                      std::size_t plane, const float* x, const std::size_t off[P], float32x4_t acc[P][kQ]) {
  for (std::size_t j = 0; j < P; ++j) {
    for (std::size_t q = 0; q < kQ; ++q) acc[j][q] = vdupq_n_f32(0.0f);
  }
  const std::size_t skip = wp - kw;
  for (std::size_t ic = 0; ic < cin; ++ic) {
    const float* xc = x + ic * plane;
    const float* x0 = xc + off[0];
    const float* x1 = xc + off[1];
    const float* x2 = xc + off[2];
    const float* x3 = xc + off[3];
    const float* x4 = xc + off[4];
    const float* x5 = xc + off[5];
    for (std::size_t ky = 0; ky < kh; ++ky) {
      for (std::size_t kx = 0; kx < kw; ++kx, wt += V) {
        float32x4_t w[kQ];
        for (std::size_t q = 0; q < kQ; ++q) w[q] = vld1q_f32(wt + 4 * q);
        const float32x4_t b0 = vld1q_dup_f32(x0++);
        const float32x4_t b1 = vld1q_dup_f32(x1++);
        const float32x4_t b2 = vld1q_dup_f32(x2++);
        for (std::size_t q = 0; q < kQ; ++q) {
          acc[0][q] = mac(acc[0][q], b0, w[q]);
          acc[1][q] = mac(acc[1][q], b1, w[q]);
          acc[2][q] = mac(acc[2][q], b2, w[q]);
        }
        const float32x4_t b3 = vld1q_dup_f32(x3++);
        const float32x4_t b4 = vld1q_dup_f32(x4++);
        const float32x4_t b5 = vld1q_dup_f32(x5++);
        for (std::size_t q = 0; q < kQ; ++q) {
          acc[3][q] = mac(acc[3][q], b3, w[q]);
          acc[4][q] = mac(acc[4][q], b4, w[q]);
          acc[5][q] = mac(acc[5][q], b5, w[q]);
        }
      }
      x0 += skip;
      x1 += skip;
      x2 += skip;
      x3 += skip;
      x4 += skip;
      x5 += skip;
    }
  }
}

// 4 channels (acc[j], positions j = 0..5) into y[v * ldy + j], v < 4.
inline void store_6x4_transposed(const float32x4_t a0, const float32x4_t a1, const float32x4_t a2, const float32x4_t a3,
                                 const float32x4_t a4, const float32x4_t a5, float* y, std::size_t ldy) {
  const float32x4x2_t t01 = vtrnq_f32(a0, a1);  // (c0p0 c0p1 c2p0 c2p1), (c1p0 c1p1 c3p0 c3p1)
  const float32x4x2_t t23 = vtrnq_f32(a2, a3);
  const float32x4x2_t t45 = vtrnq_f32(a4, a5);
  vst1q_f32(y, vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0])));
  vst1_f32(y + 4, vget_low_f32(t45.val[0]));
  vst1q_f32(y + ldy, vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1])));
  vst1_f32(y + ldy + 4, vget_low_f32(t45.val[1]));
  vst1q_f32(y + 2 * ldy, vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0])));
  vst1_f32(y + 2 * ldy + 4, vget_high_f32(t45.val[0]));
  vst1q_f32(y + 3 * ldy, vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1])));
  vst1_f32(y + 3 * ldy + 4, vget_high_f32(t45.val[1]));
}

}  // namespace

void pakd_f32_dconv_ukernel_6x16__neon(std::size_t oc_begin, std::size_t oc_end, std::size_t p_begin, std::size_t p_end,
                                       std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t wo,
                                       std::size_t stride, std::size_t plane, const float* w, const float* x, float* y,
                                       std::size_t ldy) {
  const std::size_t taps = cin * kh * kw;
  // the input stride along a row: the tap loop steps x by 1; off[] gives the position
  for (std::size_t ob = oc_begin; ob < oc_end; ob += V) {
    const float* wb = w + (ob / V) * taps * V;
    const std::size_t vs = oc_end - ob < V ? oc_end - ob : V;
    for (std::size_t p0 = p_begin; p0 < p_end; p0 += P) {
      const std::size_t rows = p_end - p0 < P ? p_end - p0 : P;
      std::size_t off[P];
      for (std::size_t j = 0; j < P; ++j) {
        const std::size_t p = p0 + (j < rows ? j : 0);
        off[j] = (p / wo) * stride * wp + p % wo * stride;
      }
      for (std::size_t h = 0; h * 4 * kQ < vs; ++h) {
        float32x4_t acc[P][kQ];
        tile_pass(wb + h * 4 * kQ, cin, kh, kw, wp, plane, x, off, acc);
        const std::size_t c0 = h * 4 * kQ;  // first channel of this pass
        if (rows == P && c0 + 4 * kQ <= vs) {
          for (std::size_t q = 0; q < kQ; ++q) {
            store_6x4_transposed(acc[0][q], acc[1][q], acc[2][q], acc[3][q], acc[4][q], acc[5][q],
                                 y + (ob + c0 + 4 * q) * ldy + p0, ldy);
          }
          continue;
        }
        float tile[P][4 * kQ];
        for (std::size_t j = 0; j < P; ++j) {
          for (std::size_t q = 0; q < kQ; ++q) vst1q_f32(tile[j] + 4 * q, acc[j][q]);
        }
        const std::size_t cn = vs - c0 < 4 * kQ ? vs - c0 : 4 * kQ;
        for (std::size_t v = 0; v < cn; ++v) {
          float* yr = y + (ob + c0 + v) * ldy + p0;
          for (std::size_t j = 0; j < rows; ++j) yr[j] = tile[j][v];
        }
      }
    }
  }
}
