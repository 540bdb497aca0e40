// The reference f32 GEMM: a naive triple loop, written to be obviously
// correct. It is the oracle every optimized kernel is tested against, not a
// kernel to run in production.
#include "kernels/kernels.h"

void pakd_f32_gemm_ukernel__reference(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                                      const float* b, std::size_t ldb, float* c, std::size_t ldc) {
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (std::size_t p = 0; p < k; ++p) {
        sum += a[i * lda + p] * b[p * ldb + j];
      }
      c[i * ldc + j] = sum;
    }
  }
}
