// Direct stride-1 convolution, 4 output channels x 24 output positions per
// tile, portable C++ (the compiler vectorizes the 24-wide inner loops).
// Contract: F32DconvFn in kernels/kernels.h.
#include <cstddef>

#include "kernels/kernels.h"

void pakd_f32_dconv_ukernel_4x24__scalar(std::size_t oc_begin, std::size_t oc_end, std::size_t n,
                                         std::size_t cin, std::size_t kh, std::size_t kw,
                                         std::size_t wp, std::size_t plane, const float* w,
                                         const float* x, float* y, std::size_t ldy) {
  constexpr std::size_t R = pakd::kDconvOcBlock, T = pakd::kDconvTile;
  const std::size_t taps = cin * kh * kw;
  for (std::size_t ob = oc_begin; ob < oc_end; ob += R) {
    const float* wb = w + (ob / R) * taps * R;
    for (std::size_t q0 = 0; q0 < n; q0 += T) {
      float acc[R][T] = {};
      const float* wt = wb;
      for (std::size_t ic = 0; ic < cin; ++ic) {
        const float* xc = x + ic * plane + q0;
        for (std::size_t ky = 0; ky < kh; ++ky) {
          for (std::size_t kx = 0; kx < kw; ++kx, wt += R) {
            const float* xs = xc + ky * wp + kx;
            for (std::size_t r = 0; r < R; ++r) {
              const float wv = wt[r];
              for (std::size_t t = 0; t < T; ++t) acc[r][t] += wv * xs[t];
            }
          }
        }
      }
      for (std::size_t r = 0; r < R && ob + r < oc_end; ++r) {
        for (std::size_t t = 0; t < T; ++t) y[(ob + r) * ldy + q0 + t] = acc[r][t];
      }
    }
  }
}
