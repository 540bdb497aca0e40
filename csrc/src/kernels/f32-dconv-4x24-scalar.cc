// Direct stride-1 convolution, 4 output channels x 24 output positions per
// tile, portable C++ (the compiler vectorizes the 24-wide inner loops). A
// last block of 1..3 output channels computes only those rows (the packed
// weights stay 4 wide, zero-padded). Contract: F32DconvFn in
// kernels/kernels.h.
#include <cstddef>

#include "kernels/kernels.h"

namespace {

// Rows output channels (1..4) of one block, tiles of 24 positions over [0, n).
template <std::size_t Rows>
void dconv_block(std::size_t n, std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t plane,
                 const float* wb, const float* x, float* y, std::size_t ldy) {
  constexpr std::size_t R = pakd::kDconvOcBlock, T = pakd::kDconvTile;
  for (std::size_t q0 = 0; q0 < n; q0 += T) {
    float acc[Rows][T] = {};
    const float* wt = wb;
    for (std::size_t ic = 0; ic < cin; ++ic) {
      const float* xc = x + ic * plane + q0;
      for (std::size_t ky = 0; ky < kh; ++ky) {
        for (std::size_t kx = 0; kx < kw; ++kx, wt += R) {
          const float* xs = xc + ky * wp + kx;
          for (std::size_t r = 0; r < Rows; ++r) {
            const float wv = wt[r];
            for (std::size_t t = 0; t < T; ++t) acc[r][t] += wv * xs[t];
          }
        }
      }
    }
    for (std::size_t r = 0; r < Rows; ++r) {
      for (std::size_t t = 0; t < T; ++t) y[r * ldy + q0 + t] = acc[r][t];
    }
  }
}

}  // namespace

void pakd_f32_dconv_ukernel_4x24__scalar(std::size_t oc_begin, std::size_t oc_end, std::size_t n, std::size_t cin,
                                         std::size_t kh, std::size_t kw, std::size_t wp, std::size_t plane,
                                         const float* w, const float* x, float* y, std::size_t ldy) {
  constexpr std::size_t R = pakd::kDconvOcBlock;
  const std::size_t taps = cin * kh * kw;
  for (std::size_t ob = oc_begin; ob < oc_end; ob += R) {
    const float* wb = w + (ob / R) * taps * R;
    float* yb = y + ob * ldy;
    switch (oc_end - ob) {
      case 1: dconv_block<1>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      case 2: dconv_block<2>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      case 3: dconv_block<3>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      default: dconv_block<4>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
    }
  }
}
