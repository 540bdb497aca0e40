#include "runtime/sparse-kernels.h"

namespace pakd {
namespace {

template <typename Value>
void spmm_rows(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
               const std::uint32_t* col_idx, Value value, const float* bias, const float* x, std::size_t ldx,
               float* y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    float* yr = y + i * ldy;
    const float b = bias ? bias[i] : 0.0f;
    if (n == 1) {
      float acc0 = b, acc1 = 0.0f;
      std::uint32_t j = row_ptr[i];
      for (; j + 1 < row_ptr[i + 1]; j += 2) {
        acc0 += value(j) * x[col_idx[j] * ldx];
        acc1 += value(j + 1) * x[col_idx[j + 1] * ldx];
      }
      if (j < row_ptr[i + 1]) acc0 += value(j) * x[col_idx[j] * ldx];
      yr[0] = acc0 + acc1;
      continue;
    }
    for (std::size_t c = 0; c < n; ++c) yr[c] = b;
    for (std::uint32_t j = row_ptr[i]; j < row_ptr[i + 1]; ++j) {
      const float v = value(j);
      const float* xr = x + static_cast<std::size_t>(col_idx[j]) * ldx;
      for (std::size_t c = 0; c < n; ++c) yr[c] += v * xr[c];
    }
  }
}

}  // namespace

void f32_spmm_rows(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
                   const std::uint32_t* col_idx, const float* values, const float* bias, const float* x,
                   std::size_t ldx, float* y, std::size_t ldy) {
  spmm_rows(m_begin, m_end, n, row_ptr, col_idx, [values](std::uint32_t j) { return values[j]; }, bias, x, ldx, y,
            ldy);
}

void f32_cbspmm_rows(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
                     const std::uint32_t* col_idx, const std::uint8_t* codes, const float* table, const float* bias,
                     const float* x, std::size_t ldx, float* y, std::size_t ldy) {
  spmm_rows(m_begin, m_end, n, row_ptr, col_idx, [codes, table](std::uint32_t j) { return table[codes[j]]; }, bias,
            x, ldx, y, ldy);
}

}  // namespace pakd
