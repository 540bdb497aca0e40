// The reference sparse (CSR) x dense kernels, f32 values and u8-codebook
// values: plain loops, written to be obviously correct. They are the oracles
// every optimized spmm kernel is tested against, not kernels to run.
#include "kernels/kernels.h"

void pakd_f32_spmm_ukernel__reference(std::size_t m_begin, std::size_t m_end, std::size_t n,
                                      const std::uint32_t* row_ptr, const std::uint32_t* col_idx, const float* values,
                                      const float* bias, const float* x, std::size_t ldx, float* y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    for (std::size_t c = 0; c < n; ++c) {
      float sum = bias != nullptr ? bias[i] : 0.0f;
      for (std::uint32_t j = row_ptr[i]; j < row_ptr[i + 1]; ++j) {
        sum += values[j] * x[col_idx[j] * ldx + c];
      }
      y[i * ldy + c] = sum;
    }
  }
}

void pakd_f32_cbspmm_ukernel__reference(std::size_t m_begin, std::size_t m_end, std::size_t n,
                                        const std::uint32_t* row_ptr, const std::uint32_t* col_idx,
                                        const std::uint8_t* codes, const float* table, const float* bias,
                                        const float* x, std::size_t ldx, float* y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    for (std::size_t c = 0; c < n; ++c) {
      float sum = bias != nullptr ? bias[i] : 0.0f;
      for (std::uint32_t j = row_ptr[i]; j < row_ptr[i + 1]; ++j) {
        sum += table[codes[j]] * x[col_idx[j] * ldx + c];
      }
      y[i * ldy + c] = sum;
    }
  }
}
