// CSR sparse x dense products used by the session (conv and linear layers
// with sparse weights). Interim portable implementations; the optimized,
// per-ISA kernels plug in behind these two entry points.
#ifndef PAKD_SRC_RUNTIME_SPARSE_KERNELS_H_
#define PAKD_SRC_RUNTIME_SPARSE_KERNELS_H_

#include <cstddef>
#include <cstdint>

namespace pakd {

// Y[i, 0:n] = bias[i] (0 without bias) + sum_j values[j] * X[col_idx[j], 0:n]
// for rows i in [m_begin, m_end).
void f32_spmm_rows(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
                   const std::uint32_t* col_idx, const float* values, const float* bias, const float* x,
                   std::size_t ldx, float* y, std::size_t ldy);

// The same with values table[codes[j]] (weight sharing).
void f32_cbspmm_rows(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
                     const std::uint32_t* col_idx, const std::uint8_t* codes, const float* table, const float* bias,
                     const float* x, std::size_t ldx, float* y, std::size_t ldy);

}  // namespace pakd

#endif  // PAKD_SRC_RUNTIME_SPARSE_KERNELS_H_
