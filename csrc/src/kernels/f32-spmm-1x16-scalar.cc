// Portable sparse (CSR) x dense kernels, f32 and u8-codebook values.
//
// Plain C++ written for the compiler's vectorizer (SSE2 on x86-64, NEON on
// AArch64); no ISA flags, runs on every CPU of the architecture.
//   n == 1 (batch-1 fully-connected layer): one dot product per row with a
//     gather of x, four independent partial sums to hide the add latency.
//   n > 1 (lowered convolution): a register tile of 16 (then 8, 4, 1) columns
//     of Y per row; each nonzero adds value * X[col, tile] to it. Column tiles
//     are the outer loop, so a k x 16 strip of X is reused by every row.
#include "kernels/kernels.h"

namespace {

struct DirectValues {
  const float* values;
  float operator()(std::uint32_t j) const { return values[j]; }
};

struct CodebookValues {
  const std::uint8_t* codes;
  const float* table;
  float operator()(std::uint32_t j) const { return table[codes[j]]; }
};

template <class Values>
void spmv(std::size_t m_begin, std::size_t m_end, const std::uint32_t* __restrict row_ptr,
          const std::uint32_t* __restrict col_idx, Values value, const float* bias, const float* __restrict x,
          std::size_t ldx, float* __restrict y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    std::uint32_t j = row_ptr[i];
    const std::uint32_t end = row_ptr[i + 1];
    for (; j + 4 <= end; j += 4) {
      s0 += value(j + 0) * x[col_idx[j + 0] * ldx];
      s1 += value(j + 1) * x[col_idx[j + 1] * ldx];
      s2 += value(j + 2) * x[col_idx[j + 2] * ldx];
      s3 += value(j + 3) * x[col_idx[j + 3] * ldx];
    }
    for (; j < end; ++j) s0 += value(j) * x[col_idx[j] * ldx];
    y[i * ldy] = (bias != nullptr ? bias[i] : 0.0f) + ((s0 + s1) + (s2 + s3));
  }
}

// Y[rows, c0 : c0 + W] for every row in range.
template <std::size_t W, class Values>
void tile(std::size_t m_begin, std::size_t m_end, std::size_t c0, const std::uint32_t* __restrict row_ptr,
          const std::uint32_t* __restrict col_idx, Values value, const float* bias, const float* __restrict x,
          std::size_t ldx, float* __restrict y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    float acc[W];
    const float b = bias != nullptr ? bias[i] : 0.0f;
    for (std::size_t t = 0; t < W; ++t) acc[t] = b;
    for (std::uint32_t j = row_ptr[i]; j < row_ptr[i + 1]; ++j) {
      const float v = value(j);
      const float* __restrict xr = x + col_idx[j] * ldx + c0;
      for (std::size_t t = 0; t < W; ++t) acc[t] += v * xr[t];
    }
    float* __restrict yr = y + i * ldy + c0;
    for (std::size_t t = 0; t < W; ++t) yr[t] = acc[t];
  }
}

template <class Values>
void spmm(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
          const std::uint32_t* col_idx, Values value, const float* bias, const float* x, std::size_t ldx, float* y,
          std::size_t ldy) {
  if (n == 1) {
    spmv(m_begin, m_end, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
    return;
  }
  std::size_t c0 = 0;
  for (; c0 + 16 <= n; c0 += 16) {
    tile<16>(m_begin, m_end, c0, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
  }
  if (c0 + 8 <= n) {
    tile<8>(m_begin, m_end, c0, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
    c0 += 8;
  }
  if (c0 + 4 <= n) {
    tile<4>(m_begin, m_end, c0, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
    c0 += 4;
  }
  for (; c0 < n; ++c0) {
    tile<1>(m_begin, m_end, c0, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
  }
}

}  // namespace

void pakd_f32_spmm_ukernel_1x16__scalar(std::size_t m_begin, std::size_t m_end, std::size_t n,
                                        const std::uint32_t* row_ptr, const std::uint32_t* col_idx, const float* values,
                                        const float* bias, const float* x, std::size_t ldx, float* y, std::size_t ldy) {
  spmm(m_begin, m_end, n, row_ptr, col_idx, DirectValues{values}, bias, x, ldx, y, ldy);
}

void pakd_f32_cbspmm_ukernel_1x16__scalar(std::size_t m_begin, std::size_t m_end, std::size_t n,
                                          const std::uint32_t* row_ptr, const std::uint32_t* col_idx,
                                          const std::uint8_t* codes, const float* table, const float* bias,
                                          const float* x, std::size_t ldx, float* y, std::size_t ldy) {
  spmm(m_begin, m_end, n, row_ptr, col_idx, CodebookValues{codes, table}, bias, x, ldx, y, ldy);
}
