// Sparse direct stride-1 convolution, one output channel x 32 positions per
// pass, portable C++ (the 8-wide inner loops vectorize). Contract:
// F32SparseDconvFn in kernels/kernels.h.
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

void pakd_f32_sdconv_ukernel_1x32__scalar(std::size_t oc_begin, std::size_t oc_end, std::size_t n,
                                          const std::uint32_t* row_ptr, const std::uint32_t* offsets,
                                          const float* values, const float* x, float* y, std::size_t ldy) {
  for (std::size_t oc = oc_begin; oc < oc_end; ++oc) {
    float* yr = y + oc * ldy;
    for (std::size_t q0 = 0; q0 < n; q0 += 32) {
      const std::size_t w = n - q0 < 32 ? n - q0 : 32;
      float acc[32] = {};
      for (std::uint32_t j = row_ptr[oc]; j < row_ptr[oc + 1]; ++j) {
        const float v = values[j];
        const float* xs = x + offsets[j] + q0;
        for (std::size_t t = 0; t < w; ++t) acc[t] += v * xs[t];
      }
      for (std::size_t t = 0; t < w; ++t) yr[q0 + t] = acc[t];
    }
  }
}
