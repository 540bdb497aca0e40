// Batch-1 sparse matrix-vector product over the blocked format, portable
// C++ (F32BlockSpmvFn in kernels/kernels.h): the oracle of the AVX2 kernel
// and the fallback where it cannot run (the session uses CSR there).
#include "kernels/kernels.h"

void pakd_f32_spmv_ukernel_8x8__scalar(std::size_t m, std::size_t k, std::size_t s_begin, std::size_t s_end,
                                       const std::uint32_t* slice_ptr, const std::uint32_t* words, const float* values,
                                       const float* x, float* y) {
  (void)k;  // every lane's column is below k (padding lanes point at their panel's first column)
  constexpr std::size_t R = pakd::kBlockSpmvRows, C = pakd::kBlockSpmvCols;
  for (std::size_t s = s_begin; s < s_end; ++s) {
    float acc[R] = {};
    for (std::uint32_t t = slice_ptr[s]; t < slice_ptr[s + 1]; ++t) {
      const std::uint32_t w = words[t];
      const std::size_t base = C * (w >> 24);
      for (std::size_t r = 0; r < R; ++r) {
        acc[r] += values[t * R + r] * x[base + ((w >> (3 * r)) & 7u)];
      }
    }
    for (std::size_t r = 0; r < R && s * R + r < m; ++r) y[s * R + r] = acc[r];
  }
}
