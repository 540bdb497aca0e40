// The reference int8 GEMM: a naive triple loop with int32 accumulation,
// written to be obviously correct. The oracle for the optimized qs8 kernels.
#include "kernels/kernels.h"

void pakd_qs8_gemm_ukernel__reference(std::size_t m_begin, std::size_t m_end, std::size_t n, std::size_t k,
                                      const std::int8_t* a, std::size_t lda, const float* a_scale, const std::int8_t* b,
                                      std::size_t ldb, float b_scale, const float* bias, float* y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    const float scale = a_scale[i] * b_scale;
    for (std::size_t c = 0; c < n; ++c) {
      std::int32_t acc = 0;
      for (std::size_t p = 0; p < k; ++p) {
        acc += std::int32_t{a[i * lda + p]} * std::int32_t{b[p * ldb + c]};
      }
      y[i * ldy + c] = (bias != nullptr ? bias[i] : 0.0f) + scale * static_cast<float>(acc);
    }
  }
}
