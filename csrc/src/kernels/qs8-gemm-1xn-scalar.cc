// Portable int8 GEMM (int32 accumulation), written for the compiler's
// vectorizer; no ISA flags, runs on every CPU of the architecture.
//   n == 1: one int8 dot product over k per row (B is a vector).
//   n > 1:  one row of Y at a time: int32 row sums += A[i, p] * B[p, :]
//           (an axpy per nonzero weight, vectorized over n).
#include "kernels/kernels.h"

namespace {

float output(const float* bias, std::size_t i, float scale, std::int32_t acc) {
  return (bias != nullptr ? bias[i] : 0.0f) + scale * static_cast<float>(acc);
}

std::int32_t dot(const std::int8_t* __restrict a, const std::int8_t* __restrict b, std::size_t ldb, std::size_t k) {
  std::int32_t acc = 0;
  if (ldb == 1) {
    for (std::size_t p = 0; p < k; ++p) acc += std::int32_t{a[p]} * std::int32_t{b[p]};
  } else {
    for (std::size_t p = 0; p < k; ++p) acc += std::int32_t{a[p]} * std::int32_t{b[p * ldb]};
  }
  return acc;
}

// acc[0:n] += a * b[0:n]: int8 x int8 products are exact in int16, so the
// vectorizer can use 16-bit multiplies and widen the sums (SSE2 has no
// 32-bit multiply).
void axpy(std::size_t n, std::int16_t a, const std::int8_t* __restrict b, std::int32_t* __restrict acc) {
  for (std::size_t c = 0; c < n; ++c) {
    acc[c] += static_cast<std::int16_t>(a * std::int16_t{b[c]});
  }
}

}  // namespace

void pakd_qs8_gemm_ukernel_1xn__scalar(std::size_t m_begin, std::size_t m_end, std::size_t n, std::size_t k,
                                       const std::int8_t* a, std::size_t lda, const float* a_scale,
                                       const std::int8_t* b, std::size_t ldb, float b_scale, const float* bias,
                                       float* y, std::size_t ldy) {
  if (n == 1) {
    for (std::size_t i = m_begin; i < m_end; ++i) {
      y[i * ldy] = output(bias, i, a_scale[i] * b_scale, dot(a + i * lda, b, ldb, k));
    }
    return;
  }
  // One row of Y at a time, as a sum of rows of B scaled by A[i, p]; the
  // int32 row sums live in the per-thread workspace (n ints, L1/L2 sized for
  // the lowered convolutions this path serves).
  auto* acc = static_cast<std::int32_t*>(pakd::kernel_workspace(n * sizeof(std::int32_t)));
  for (std::size_t i = m_begin; i < m_end; ++i) {
    for (std::size_t c = 0; c < n; ++c) acc[c] = 0;
    const std::int8_t* ai = a + i * lda;
    for (std::size_t p = 0; p < k; ++p) {
      if (ai[p] != 0) axpy(n, ai[p], b + p * ldb, acc);
    }
    const float scale = a_scale[i] * b_scale;
    for (std::size_t c = 0; c < n; ++c) y[i * ldy + c] = output(bias, i, scale, acc[c]);
  }
}
