// Direct stride-1 convolution over wide rows, 4 output channels x 24 output
// positions per tile with NEON. AArch64: 4 x 6 = 24 accumulators; per tap one
// load of the block's 4 weights and 6 input loads feed 24 FMAs by lane. ARMv7
// (16 q-registers, no FMA): the 24 positions in three passes of 8 (8
// accumulators, multiply-accumulate by lane). A last block of 1..3 output
// channels computes only those rows (the packed weights stay 4 wide). 3x3
// kernels on AArch64 run their 9 taps unrolled: 28 instructions per 24 FMAs
// instead of 33 with the tap loop (the small-channel layers of pruned
// ResNet-20s run here).
// Contract: F32DconvFn in kernels/kernels.h.
#include <arm_neon.h>

#include <cstddef>

#include "kernels/kernels.h"

namespace {

constexpr std::size_t R = pakd::kDconvOcBlock, T = pakd::kDconvTile;

#if defined(__aarch64__)
constexpr std::size_t kX = 6;  // q-vectors of positions per pass
#define PAKD_MAC_LANE(acc, x, w, lane) vfmaq_laneq_f32(acc, x, w, lane)
#else
constexpr std::size_t kX = 2;
#define PAKD_MAC_LANE(acc, x, w, lane) \
  vmlaq_lane_f32(acc, x, (lane) < 2 ? vget_low_f32(w) : vget_high_f32(w), (lane) & 1)
#endif

// Rows (1..4) output channels of a block, positions [q0, q0 + 4 kX).
// Named accumulators (an array of vectors would be kept in memory by GCC);
// the rows past Rows are dead code.
template <std::size_t Rows, bool K3>
inline void pass(std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t plane, const float* wb,
                 const float* x, float* y, std::size_t ldy) {
#if defined(__aarch64__)
#define PAKD_ROW(r)                                                                                                    \
  float32x4_t a##r##0 = vdupq_n_f32(0.0f), a##r##1 = a##r##0, a##r##2 = a##r##0, a##r##3 = a##r##0, a##r##4 = a##r##0, \
              a##r##5 = a##r##0
#define PAKD_ROW_MAC(r)                         \
  if (Rows > r) {                               \
    a##r##0 = PAKD_MAC_LANE(a##r##0, x0, w, r); \
    a##r##1 = PAKD_MAC_LANE(a##r##1, x1, w, r); \
    a##r##2 = PAKD_MAC_LANE(a##r##2, x2, w, r); \
    a##r##3 = PAKD_MAC_LANE(a##r##3, x3, w, r); \
    a##r##4 = PAKD_MAC_LANE(a##r##4, x4, w, r); \
    a##r##5 = PAKD_MAC_LANE(a##r##5, x5, w, r); \
  }
#define PAKD_ROW_STORE(r)        \
  if (Rows > r) {                \
    float* yr = y + r * ldy;     \
    vst1q_f32(yr, a##r##0);      \
    vst1q_f32(yr + 4, a##r##1);  \
    vst1q_f32(yr + 8, a##r##2);  \
    vst1q_f32(yr + 12, a##r##3); \
    vst1q_f32(yr + 16, a##r##4); \
    vst1q_f32(yr + 20, a##r##5); \
  }
#define PAKD_LOADS                                                                      \
  const float32x4_t x0 = vld1q_f32(xs), x1 = vld1q_f32(xs + 4), x2 = vld1q_f32(xs + 8); \
  const float32x4_t x3 = vld1q_f32(xs + 12), x4 = vld1q_f32(xs + 16), x5 = vld1q_f32(xs + 20)
#else
#define PAKD_ROW(r) float32x4_t a##r##0 = vdupq_n_f32(0.0f), a##r##1 = a##r##0
#define PAKD_ROW_MAC(r)                         \
  if (Rows > r) {                               \
    a##r##0 = PAKD_MAC_LANE(a##r##0, x0, w, r); \
    a##r##1 = PAKD_MAC_LANE(a##r##1, x1, w, r); \
  }
#define PAKD_ROW_STORE(r)       \
  if (Rows > r) {               \
    float* yr = y + r * ldy;    \
    vst1q_f32(yr, a##r##0);     \
    vst1q_f32(yr + 4, a##r##1); \
  }
#define PAKD_LOADS const float32x4_t x0 = vld1q_f32(xs), x1 = vld1q_f32(xs + 4)
#endif
  PAKD_ROW(0);
  PAKD_ROW(1);
  PAKD_ROW(2);
  PAKD_ROW(3);
  const float* wt = wb;
  if (K3) {  // 3x3: the 9 taps of a channel unrolled (no per-tap loop and index updates)
    for (std::size_t ic = 0; ic < cin; ++ic, wt += 9 * R) {
      const float* const xc = x + ic * plane;
#pragma GCC unroll 3
      for (std::size_t ky = 0; ky < 3; ++ky) {
#pragma GCC unroll 3
        for (std::size_t kx = 0; kx < 3; ++kx) {
          // an opaque base per tap: 3 paired loads (ldp) instead of 6 unaligned single ones
          const float* xs = xc + ky * wp + kx;
          __asm__("" : "+r"(xs));
          const float32x4_t w = vld1q_f32(wt + (ky * 3 + kx) * R);
          PAKD_LOADS;
          PAKD_ROW_MAC(0)
          PAKD_ROW_MAC(1)
          PAKD_ROW_MAC(2)
          PAKD_ROW_MAC(3)
          // keeps the next tap's loads after these FMAs: hoisted, they would need more than the
          // 32 vector registers and GCC spills accumulators
          __asm__ __volatile__("" ::: "memory");
        }
      }
    }
  } else {
    const std::size_t skip = wp - kw;
    for (std::size_t ic = 0; ic < cin; ++ic) {
      const float* xs = x + ic * plane;
      for (std::size_t ky = 0; ky < kh; ++ky, xs += skip) {
        for (std::size_t kx = 0; kx < kw; ++kx, wt += R, ++xs) {
          const float32x4_t w = vld1q_f32(wt);
          PAKD_LOADS;
          PAKD_ROW_MAC(0)
          PAKD_ROW_MAC(1)
          PAKD_ROW_MAC(2)
          PAKD_ROW_MAC(3)
        }
      }
    }
  }
  PAKD_ROW_STORE(0)
  PAKD_ROW_STORE(1)
  PAKD_ROW_STORE(2)
  PAKD_ROW_STORE(3)
#undef PAKD_ROW
#undef PAKD_ROW_MAC
#undef PAKD_ROW_STORE
#undef PAKD_LOADS
}

#if defined(__aarch64__)
// 3x3 only: the last 5 or 6 output channels (a block of 4 and one of 1..2) in
// one pass of Rows x 4 V positions (V = 4 or 2 vectors): the input loads shared
// by both blocks, 29 instructions per 24 FMAs over 16 positions instead of
// 29 + 17 over 24 for the block of 4 then the one of 2 (weights of channel
// ob + 4 + r at wb1 lane r).
template <std::size_t Rows, std::size_t V>
inline void pass6(std::size_t cin, std::size_t wp, std::size_t plane, const float* wb0, const float* wb1,
                  const float* x, float* y, std::size_t ldy) {
#define PAKD_ROW6(r) float32x4_t a##r##0 = vdupq_n_f32(0.0f), a##r##1 = a##r##0, a##r##2 = a##r##0, a##r##3 = a##r##0
#define PAKD_MAC6(r, wv, lane)                          \
  if (Rows > r) {                                       \
    a##r##0 = vfmaq_laneq_f32(a##r##0, x0, wv, lane);   \
    a##r##1 = vfmaq_laneq_f32(a##r##1, x1, wv, lane);   \
    if (V > 2) {                                        \
      a##r##2 = vfmaq_laneq_f32(a##r##2, x2, wv, lane); \
      a##r##3 = vfmaq_laneq_f32(a##r##3, x3, wv, lane); \
    }                                                   \
  }
#define PAKD_STORE6(r)             \
  if (Rows > r) {                  \
    float* yr = y + r * ldy;       \
    vst1q_f32(yr, a##r##0);        \
    vst1q_f32(yr + 4, a##r##1);    \
    if (V > 2) {                   \
      vst1q_f32(yr + 8, a##r##2);  \
      vst1q_f32(yr + 12, a##r##3); \
    }                              \
  }
  PAKD_ROW6(0);
  PAKD_ROW6(1);
  PAKD_ROW6(2);
  PAKD_ROW6(3);
  PAKD_ROW6(4);
  PAKD_ROW6(5);
  for (std::size_t ic = 0; ic < cin; ++ic, wb0 += 9 * R, wb1 += 9 * R) {
    const float* const xc = x + ic * plane;
#pragma GCC unroll 3
    for (std::size_t ky = 0; ky < 3; ++ky) {
#pragma GCC unroll 3
      for (std::size_t kx = 0; kx < 3; ++kx) {
        const float* xs = xc + ky * wp + kx;
        __asm__("" : "+r"(xs));  // an opaque base per tap: paired loads
        const float32x4_t w0 = vld1q_f32(wb0 + (ky * 3 + kx) * R), w1 = vld1q_f32(wb1 + (ky * 3 + kx) * R);
        const float32x4_t x0 = vld1q_f32(xs), x1 = vld1q_f32(xs + 4);
        const float32x4_t x2 = V > 2 ? vld1q_f32(xs + 8) : x0, x3 = V > 2 ? vld1q_f32(xs + 12) : x0;
        PAKD_MAC6(0, w0, 0)
        PAKD_MAC6(1, w0, 1)
        PAKD_MAC6(2, w0, 2)
        PAKD_MAC6(3, w0, 3)
        PAKD_MAC6(4, w1, 0)
        PAKD_MAC6(5, w1, 1)
        __asm__ __volatile__("" ::: "memory");  // as in pass: no loads hoisted past the FMAs
      }
    }
  }
  PAKD_STORE6(0)
  PAKD_STORE6(1)
  PAKD_STORE6(2)
  PAKD_STORE6(3)
  PAKD_STORE6(4)
  PAKD_STORE6(5)
#undef PAKD_ROW6
#undef PAKD_MAC6
#undef PAKD_STORE6
}

// Channels ob .. ob + Rows - 1 (Rows 5 or 6) of a 3x3 layer, positions [0, n).
template <std::size_t Rows>
void block6(std::size_t n, std::size_t cin, std::size_t wp, std::size_t plane, const float* wb0, const float* x,
            float* y, std::size_t ldy) {
  const float* const wb1 = wb0 + cin * 9 * R;
  std::size_t q0 = 0;
  for (; q0 + 16 <= n; q0 += 16) pass6<Rows, 4>(cin, wp, plane, wb0, wb1, x + q0, y + q0, ldy);
  if (q0 < n) pass6<Rows, 2>(cin, wp, plane, wb0, wb1, x + q0, y + q0, ldy);  // n is a multiple of 8
}
#endif

template <std::size_t Rows>
void block(std::size_t n, std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t plane,
           const float* wb, const float* x, float* y, std::size_t ldy) {
#if defined(__aarch64__)
  if (kh == 3 && kw == 3) {
    for (std::size_t q0 = 0; q0 < n; q0 += 4 * kX) pass<Rows, true>(cin, kh, kw, wp, plane, wb, x + q0, y + q0, ldy);
    return;
  }
#endif
  for (std::size_t q0 = 0; q0 < n; q0 += 4 * kX) pass<Rows, false>(cin, kh, kw, wp, plane, wb, x + q0, y + q0, ldy);
}

}  // namespace

void pakd_f32_dconv_ukernel_4x24__neon(std::size_t oc_begin, std::size_t oc_end, std::size_t n, std::size_t cin,
                                       std::size_t kh, std::size_t kw, std::size_t wp, std::size_t plane,
                                       const float* w, const float* x, float* y, std::size_t ldy) {
  static_assert(T % (4 * kX) == 0, "the passes tile the 24 positions");
  const std::size_t taps = cin * kh * kw;
  for (std::size_t ob = oc_begin; ob < oc_end; ob += R) {
    const float* wb = w + (ob / R) * taps * R;
    float* yb = y + ob * ldy;
#if defined(__aarch64__)
    if (kh == 3 && kw == 3 && (oc_end - ob == 5 || oc_end - ob == 6)) {
      if (oc_end - ob == 5) {
        block6<5>(n, cin, wp, plane, wb, x, yb, ldy);
      } else {
        block6<6>(n, cin, wp, plane, wb, x, yb, ldy);
      }
      break;
    }
#endif
    switch (oc_end - ob) {
      case 1: block<1>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      case 2: block<2>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      case 3: block<3>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      default: block<4>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
    }
  }
}
