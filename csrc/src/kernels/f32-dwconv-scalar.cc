// Depthwise convolution, the family's reference: the definition, one output
// at a time, taps in (ky, kx) order.
// Contract: F32DwconvFn in kernels/kernels.h.
#include <cstddef>

#include "kernels/kernels.h"

void pakd_f32_dwconv_ukernel__scalar(std::size_t c_begin, std::size_t c_end, std::size_t kh, std::size_t kw,
                                     std::size_t s, std::size_t wp, std::size_t plane, std::size_t ho, std::size_t wo,
                                     const float* w, const float* bias, float lo, float hi, const float* x, float* y,
                                     std::size_t ldy) {
  for (std::size_t c = c_begin; c < c_end; ++c) {
    const float* xc = x + c * plane;
    const float* wc = w + c * kh * kw;
    const float b = bias != nullptr ? bias[c] : 0.0f;
    float* yc = y + c * ldy;
    for (std::size_t oy = 0; oy < ho; ++oy) {
      for (std::size_t ox = 0; ox < wo; ++ox) {
        float acc = 0.0f;
        for (std::size_t ky = 0; ky < kh; ++ky) {
          const float* row = xc + (oy * s + ky) * wp + ox * s;
          for (std::size_t kx = 0; kx < kw; ++kx) acc += wc[ky * kw + kx] * row[kx];
        }
        float v = acc + b;
        v = v < lo ? lo : v;  // a NaN stays
        v = v > hi ? hi : v;
        yc[oy * wo + ox] = v;
      }
    }
  }
}
