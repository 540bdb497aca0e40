// Direct stride-1 convolution over wide rows, 4 output channels x 24 output
// positions per tile with NEON. AArch64: 4 x 6 = 24 accumulators; per tap one
// load of the block's 4 weights and 6 input loads feed 24 FMAs by lane. ARMv7
// (16 q-registers, no FMA): the 24 positions in three passes of 8 (8
// accumulators, multiply-accumulate by lane). A last block of 1..3 output
// channels computes only those rows (the packed weights stay 4 wide).
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
template <std::size_t Rows>
inline void pass(std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t plane, const float* wb,
                 const float* x, float* y, std::size_t ldy) {
  float32x4_t acc[Rows][kX];
  for (std::size_t r = 0; r < Rows; ++r) {
    for (std::size_t i = 0; i < kX; ++i) acc[r][i] = vdupq_n_f32(0.0f);
  }
  const float* wt = wb;
  const std::size_t skip = wp - kw;
  for (std::size_t ic = 0; ic < cin; ++ic) {
    const float* xs = x + ic * plane;
    for (std::size_t ky = 0; ky < kh; ++ky, xs += skip) {
      for (std::size_t kx = 0; kx < kw; ++kx, wt += R, ++xs) {
        const float32x4_t w = vld1q_f32(wt);
        float32x4_t xv[kX];
        for (std::size_t i = 0; i < kX; ++i) xv[i] = vld1q_f32(xs + 4 * i);
        for (std::size_t i = 0; i < kX; ++i) {
          acc[0][i] = PAKD_MAC_LANE(acc[0][i], xv[i], w, 0);
          if (Rows > 1) acc[1 % Rows][i] = PAKD_MAC_LANE(acc[1 % Rows][i], xv[i], w, 1);
          if (Rows > 2) acc[2 % Rows][i] = PAKD_MAC_LANE(acc[2 % Rows][i], xv[i], w, 2);
          if (Rows > 3) acc[3 % Rows][i] = PAKD_MAC_LANE(acc[3 % Rows][i], xv[i], w, 3);
        }
      }
    }
  }
  for (std::size_t r = 0; r < Rows; ++r) {
    for (std::size_t i = 0; i < kX; ++i) vst1q_f32(y + r * ldy + 4 * i, acc[r][i]);
  }
}

template <std::size_t Rows>
void block(std::size_t n, std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t plane,
           const float* wb, const float* x, float* y, std::size_t ldy) {
  for (std::size_t q0 = 0; q0 < n; q0 += 4 * kX) pass<Rows>(cin, kh, kw, wp, plane, wb, x + q0, y + q0, ldy);
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
    switch (oc_end - ob) {
      case 1: block<1>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      case 2: block<2>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      case 3: block<3>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      default: block<4>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
    }
  }
}
