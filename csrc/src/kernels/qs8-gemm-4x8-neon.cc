// int8 GEMM with NEON (int32 accumulation).
//
// Compiled only for ARM (CMakeLists.txt). Intrinsics and internal-linkage
// code only (see kernels.h).
//   n == 1: per row, 16 k at a time: two widening int8 multiplies
//     (vmull_s8, exact in int16) pairwise-accumulated into int32 (vpadalq_s16).
//   n > 1: 4 x 8 tiles of Y; per k: one 8-byte load of B widened to int16,
//     then per row two widening multiply-accumulates by the A scalar
//     (vmlal_n_s16). Edge tiles use plain loops.
#include <arm_neon.h>

#include "kernels/kernels.h"

namespace {

constexpr std::size_t kMR = 4;
constexpr std::size_t kNR = 8;

inline std::int32_t hsum(int32x4_t v) {
#if defined(__aarch64__)
  return vaddvq_s32(v);
#else
  const int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
  return vget_lane_s32(vpadd_s32(s, s), 0);
#endif
}

inline float output(const float* bias, std::size_t i, float scale, std::int32_t acc) {
  return (bias != nullptr ? bias[i] : 0.0f) + scale * static_cast<float>(acc);
}

std::int32_t dot(const std::int8_t* a, const std::int8_t* b, std::size_t ldb, std::size_t k) {
  std::int32_t acc = 0;
  std::size_t p = 0;
  if (ldb == 1) {
    int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
    for (; p + 16 <= k; p += 16) {
      const int8x16_t av = vld1q_s8(a + p);
      const int8x16_t bv = vld1q_s8(b + p);
      s0 = vpadalq_s16(s0, vmull_s8(vget_low_s8(av), vget_low_s8(bv)));
      s1 = vpadalq_s16(s1, vmull_s8(vget_high_s8(av), vget_high_s8(bv)));
    }
    acc = hsum(vaddq_s32(s0, s1));
  }
  for (; p < k; ++p) acc += std::int32_t{a[p]} * std::int32_t{b[p * ldb]};
  return acc;
}

}  // namespace

void pakd_qs8_gemm_ukernel_4x8__neon(std::size_t m_begin, std::size_t m_end, std::size_t n, std::size_t k,
                                     const std::int8_t* a, std::size_t lda, const float* a_scale, const std::int8_t* b,
                                     std::size_t ldb, float b_scale, const float* bias, float* y, std::size_t ldy) {
  if (n == 1) {
    for (std::size_t i = m_begin; i < m_end; ++i) {
      y[i * ldy] = output(bias, i, a_scale[i] * b_scale, dot(a + i * lda, b, ldb, k));
    }
    return;
  }
  for (std::size_t i0 = m_begin; i0 < m_end; i0 += kMR) {
    const std::size_t rows = m_end - i0 < kMR ? m_end - i0 : kMR;
    std::size_t c0 = 0;
    if (rows == kMR) {
      const std::int8_t* a0 = a + i0 * lda;
      const std::int8_t* a1 = a0 + lda;
      const std::int8_t* a2 = a1 + lda;
      const std::int8_t* a3 = a2 + lda;
      for (; c0 + kNR <= n; c0 += kNR) {
        int32x4_t c00 = vdupq_n_s32(0), c01 = c00, c10 = c00, c11 = c00;
        int32x4_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
        for (std::size_t p = 0; p < k; ++p) {
          const int16x8_t bv = vmovl_s8(vld1_s8(b + p * ldb + c0));
          const int16x4_t lo = vget_low_s16(bv), hi = vget_high_s16(bv);
          c00 = vmlal_n_s16(c00, lo, a0[p]);
          c01 = vmlal_n_s16(c01, hi, a0[p]);
          c10 = vmlal_n_s16(c10, lo, a1[p]);
          c11 = vmlal_n_s16(c11, hi, a1[p]);
          c20 = vmlal_n_s16(c20, lo, a2[p]);
          c21 = vmlal_n_s16(c21, hi, a2[p]);
          c30 = vmlal_n_s16(c30, lo, a3[p]);
          c31 = vmlal_n_s16(c31, hi, a3[p]);
        }
        const int32x4_t acc[kMR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
        for (std::size_t r = 0; r < kMR; ++r) {
          const std::size_t i = i0 + r;
          const float32x4_t bv = vdupq_n_f32(bias != nullptr ? bias[i] : 0.0f);
          const float scale = a_scale[i] * b_scale;
          float* yr = y + i * ldy + c0;
          vst1q_f32(yr, vmlaq_n_f32(bv, vcvtq_f32_s32(acc[r][0]), scale));
          vst1q_f32(yr + 4, vmlaq_n_f32(bv, vcvtq_f32_s32(acc[r][1]), scale));
        }
      }
    }
    // Edges: the rows of a partial row tile, the columns past the last full tile.
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t i = i0 + r;
      for (std::size_t c = c0; c < n; ++c) {
        y[i * ldy + c] = output(bias, i, a_scale[i] * b_scale, dot(a + i * lda, b + c, ldb, k));
      }
    }
  }
}
