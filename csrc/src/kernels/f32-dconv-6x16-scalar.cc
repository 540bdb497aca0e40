// Direct stride-1 convolution, 6 output positions x 16 output channels per
// tile, portable C++ (the 16-wide channel loops vectorize). Contract:
// F32DconvOcFn in kernels/kernels.h.
#include <cstddef>

#include "kernels/kernels.h"

void pakd_f32_dconv_ukernel_6x16__scalar(std::size_t oc_begin, std::size_t oc_end, std::size_t p_begin,
                                         std::size_t p_end, std::size_t cin, std::size_t kh, std::size_t kw,
                                         std::size_t wp, std::size_t wo, std::size_t stride, std::size_t plane,
                                         const float* w, const float* x, float* y, std::size_t ldy) {
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
      float acc[P][V] = {};
      const float* wt = wb;
      for (std::size_t ic = 0; ic < cin; ++ic) {
        const float* xc = x + ic * plane;
        for (std::size_t ky = 0; ky < kh; ++ky) {
          for (std::size_t kx = 0; kx < kw; ++kx, wt += V) {
            const std::size_t tap = ky * wp + kx;
            for (std::size_t j = 0; j < P; ++j) {
              const float xv = xc[off[j] + tap];
              for (std::size_t v = 0; v < V; ++v) acc[j][v] += xv * wt[v];
            }
          }
        }
      }
      for (std::size_t v = 0; v < V && ob + v < oc_end; ++v) {
        for (std::size_t j = 0; j < rows; ++j) y[(ob + v) * ldy + p0 + j] = acc[j][v];
      }
    }
  }
}
