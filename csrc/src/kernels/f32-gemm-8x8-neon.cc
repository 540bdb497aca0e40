// Cache-blocked f32 GEMM with an 8x8 NEON micro-kernel; loops, packing and
// edges are the portable driver in f32-gemm-blocked.cc.
//
// AArch64 (32 q-registers): 8 rows x 2 vectors = 16 accumulators; per k step
// one 8-float load of the packed A column (2 q) and of the B row (2 q) feed
// 16 FMAs by lane. ARMv7 (16 q-registers, no FMA): the same tile as two
// passes of 4 rows (8 accumulators each), multiply-accumulate by lane.
// Thin A (batch-1 fully-connected layers): a row kernel over 32 columns at a
// time (8 accumulators), one broadcast of a per k step.
#include <arm_neon.h>

#include "kernels/f32-gemm-blocked.h"
#include "kernels/kernels.h"

namespace {

constexpr std::size_t kMR = 8;
constexpr std::size_t kNR = 8;

template <int K>
inline float32x4_t fma_lane(float32x4_t acc, float32x4_t b, float32x4_t a) {
#if defined(__aarch64__)
  return vfmaq_laneq_f32(acc, b, a, K);
#else
  return K < 2 ? vmlaq_lane_f32(acc, b, vget_low_f32(a), K & 1) : vmlaq_lane_f32(acc, b, vget_high_f32(a), K & 1);
#endif
}

inline float32x4_t fma(float32x4_t acc, float32x4_t b, float32x4_t a) {
#if defined(__aarch64__)
  return vfmaq_f32(acc, b, a);
#else
  return vmlaq_f32(acc, b, a);
#endif
}

inline void store(float* c, float32x4_t v, bool accumulate) {
  if (accumulate) v = vaddq_f32(v, vld1q_f32(c));
  vst1q_f32(c, v);
}

// Rows [R0, R0 + 4) of the tile.
template <std::size_t R0>
inline void rows4(std::size_t kc, const float* __restrict a, const float* __restrict b, std::size_t b_stride,
                  float* __restrict c, std::size_t ldc, bool accumulate) {
  float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  a += R0;
  for (std::size_t p = 0; p < kc; ++p, a += kMR, b += b_stride) {
    const float32x4_t av = vld1q_f32(a), b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
    c00 = fma_lane<0>(c00, b0, av);
    c01 = fma_lane<0>(c01, b1, av);
    c10 = fma_lane<1>(c10, b0, av);
    c11 = fma_lane<1>(c11, b1, av);
    c20 = fma_lane<2>(c20, b0, av);
    c21 = fma_lane<2>(c21, b1, av);
    c30 = fma_lane<3>(c30, b0, av);
    c31 = fma_lane<3>(c31, b1, av);
  }
  c += R0 * ldc;
  store(c, c00, accumulate);
  store(c + 4, c01, accumulate);
  store(c + ldc, c10, accumulate);
  store(c + ldc + 4, c11, accumulate);
  store(c + 2 * ldc, c20, accumulate);
  store(c + 2 * ldc + 4, c21, accumulate);
  store(c + 3 * ldc, c30, accumulate);
  store(c + 3 * ldc + 4, c31, accumulate);
}

void ukernel_8x8(std::size_t kc, const float* __restrict a, const float* __restrict b, std::size_t b_stride,
                 float* __restrict c, std::size_t ldc, bool accumulate) {
#if defined(__aarch64__)
  float32x4_t acc[8][2];
  for (auto& row : acc) row[0] = row[1] = vdupq_n_f32(0.0f);
  for (std::size_t p = 0; p < kc; ++p, a += kMR, b += b_stride) {
    const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4), b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
    acc[0][0] = fma_lane<0>(acc[0][0], b0, a0);
    acc[0][1] = fma_lane<0>(acc[0][1], b1, a0);
    acc[1][0] = fma_lane<1>(acc[1][0], b0, a0);
    acc[1][1] = fma_lane<1>(acc[1][1], b1, a0);
    acc[2][0] = fma_lane<2>(acc[2][0], b0, a0);
    acc[2][1] = fma_lane<2>(acc[2][1], b1, a0);
    acc[3][0] = fma_lane<3>(acc[3][0], b0, a0);
    acc[3][1] = fma_lane<3>(acc[3][1], b1, a0);
    acc[4][0] = fma_lane<0>(acc[4][0], b0, a1);
    acc[4][1] = fma_lane<0>(acc[4][1], b1, a1);
    acc[5][0] = fma_lane<1>(acc[5][0], b0, a1);
    acc[5][1] = fma_lane<1>(acc[5][1], b1, a1);
    acc[6][0] = fma_lane<2>(acc[6][0], b0, a1);
    acc[6][1] = fma_lane<2>(acc[6][1], b1, a1);
    acc[7][0] = fma_lane<3>(acc[7][0], b0, a1);
    acc[7][1] = fma_lane<3>(acc[7][1], b1, a1);
  }
  for (std::size_t r = 0; r < 8; ++r) {
    store(c + r * ldc, acc[r][0], accumulate);
    store(c + r * ldc + 4, acc[r][1], accumulate);
  }
#else
  rows4<0>(kc, a, b, b_stride, c, ldc, accumulate);
  rows4<4>(kc, a, b, b_stride, c, ldc, accumulate);
#endif
}

// One row of C, nc (a multiple of 8) columns: 32 at a time, then 8.
void row_ukernel_1x8(std::size_t kc, std::size_t nc, const float* __restrict a, std::size_t a_stride,
                     const float* __restrict b, std::size_t b_stride, float* __restrict c, bool accumulate) {
  std::size_t j = 0;
  for (; j + 32 <= nc; j += 32) {
    float32x4_t acc[8];
    for (auto& v : acc) v = vdupq_n_f32(0.0f);
    const float* bp = b + j;
    for (std::size_t p = 0; p < kc; ++p, bp += b_stride) {
      const float32x4_t av = vld1q_dup_f32(a + p * a_stride);
#if defined(__aarch64__)
      // two 4-register loads (ld1 {v0.4s-v3.4s}) for the 32 floats of B's row
      const float32x4x4_t lo = vld1q_f32_x4(bp), hi = vld1q_f32_x4(bp + 16);
      for (std::size_t q = 0; q < 4; ++q) acc[q] = fma(acc[q], lo.val[q], av);
      for (std::size_t q = 0; q < 4; ++q) acc[4 + q] = fma(acc[4 + q], hi.val[q], av);
#else
      for (std::size_t q = 0; q < 8; ++q) acc[q] = fma(acc[q], vld1q_f32(bp + 4 * q), av);
#endif
    }
    for (std::size_t q = 0; q < 8; ++q) store(c + j + 4 * q, acc[q], accumulate);
  }
  for (; j < nc; j += 8) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
    const float* bp = b + j;
    for (std::size_t p = 0; p < kc; ++p, bp += b_stride) {
      const float32x4_t av = vld1q_dup_f32(a + p * a_stride);
      acc0 = fma(acc0, vld1q_f32(bp), av);
      acc1 = fma(acc1, vld1q_f32(bp + 4), av);
    }
    store(c + j, acc0, accumulate);
    store(c + j + 4, acc1, accumulate);
  }
}

// Blocking: a KC x NR panel of B is 256 * 8 * 4 B = 8 KiB (a quarter of the
// Cortex-A72's 32 KiB L1D); an MC x KC block of A 128 KiB (L2). Thin A:
// strips of 64 rows of B (each strip re-reads and re-writes the C chunk, so
// long strips save instructions).
constexpr pakd::F32GemmBlocking kBlocking = {
    /*mr=*/kMR,  /*nr=*/kNR,      /*mc=*/128,     /*kc=*/256,      /*nc=*/4096,
    ukernel_8x8, row_ukernel_1x8, /*thin_kt=*/64, /*thin_nb=*/1024};

}  // namespace

void pakd_f32_gemm_ukernel_8x8__neon(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                                     const float* b, std::size_t ldb, float* c, std::size_t ldc) {
  pakd::f32_gemm_blocked(kBlocking, m, n, k, a, lda, b, ldb, c, ldc);
}
