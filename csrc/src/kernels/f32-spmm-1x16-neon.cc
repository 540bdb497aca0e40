// Sparse (CSR) x dense kernels with NEON, f32 and u8-codebook values.
//
// Compiled only for ARM (CMakeLists.txt: baseline on AArch64, -mfpu=neon on
// 32-bit ARM). Intrinsics and internal-linkage code only (see kernels.h).
//   n == 1: NEON has no gather, so each row is a scalar dot product with four
//     independent partial sums (the loads of x are the limit); with a unit
//     stride of x (the batch-1 product) 8 nonzeros a pass, ~3.2 instructions
//     a nonzero.
//   n > 1: register tiles of 16 columns (4 q-registers; two sets for even and
//     odd nonzeros), then 4 columns, then single columns. Column tiles are
//     the outer loop: a k x 16 strip of X is reused by every row.
#include <arm_neon.h>

#include "kernels/kernels.h"

namespace {

#if defined(__aarch64__)
inline float32x4_t fma_n(float32x4_t acc, float32x4_t x, float v) { return vfmaq_n_f32(acc, x, v); }
#else
inline float32x4_t fma_n(float32x4_t acc, float32x4_t x, float v) { return vmlaq_n_f32(acc, x, v); }
#endif

struct DirectValues {
  const float* values;
  float operator()(std::size_t j) const { return values[j]; }
};

struct CodebookValues {
  const std::uint8_t* codes;
  const float* table;
  float operator()(std::size_t j) const { return table[codes[j]]; }
};

template <class Values>
void spmv(std::size_t m_begin, std::size_t m_end, const std::uint32_t* __restrict row_ptr,
          const std::uint32_t* __restrict col_idx, Values value, const float* bias, const float* __restrict x,
          std::size_t ldx, float* __restrict y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    std::size_t j = row_ptr[i];
    const std::size_t end = row_ptr[i + 1];
    if (ldx == 1) {  // the batch-1 product: no multiply by the stride (~3.2 vs 7 instructions a nonzero)
      for (; j + 8 <= end; j += 8) {
        s0 += value(j + 0) * x[col_idx[j + 0]];
        s1 += value(j + 1) * x[col_idx[j + 1]];
        s2 += value(j + 2) * x[col_idx[j + 2]];
        s3 += value(j + 3) * x[col_idx[j + 3]];
        s0 += value(j + 4) * x[col_idx[j + 4]];
        s1 += value(j + 5) * x[col_idx[j + 5]];
        s2 += value(j + 6) * x[col_idx[j + 6]];
        s3 += value(j + 7) * x[col_idx[j + 7]];
      }
      for (; j + 4 <= end; j += 4) {
        s0 += value(j + 0) * x[col_idx[j + 0]];
        s1 += value(j + 1) * x[col_idx[j + 1]];
        s2 += value(j + 2) * x[col_idx[j + 2]];
        s3 += value(j + 3) * x[col_idx[j + 3]];
      }
      for (; j < end; ++j) s0 += value(j) * x[col_idx[j]];
    } else {
      for (; j + 4 <= end; j += 4) {
        s0 += value(j + 0) * x[col_idx[j + 0] * ldx];
        s1 += value(j + 1) * x[col_idx[j + 1] * ldx];
        s2 += value(j + 2) * x[col_idx[j + 2] * ldx];
        s3 += value(j + 3) * x[col_idx[j + 3] * ldx];
      }
      for (; j < end; ++j) s0 += value(j) * x[col_idx[j] * ldx];
    }
    y[i * ldy] = (bias != nullptr ? bias[i] : 0.0f) + ((s0 + s1) + (s2 + s3));
  }
}

template <class Values>
void tile16(std::size_t m_begin, std::size_t m_end, std::size_t c0, const std::uint32_t* __restrict row_ptr,
            const std::uint32_t* __restrict col_idx, Values value, const float* bias, const float* __restrict x,
            std::size_t ldx, float* __restrict y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    float32x4_t a0 = vdupq_n_f32(bias != nullptr ? bias[i] : 0.0f);
    float32x4_t a1 = a0, a2 = a0, a3 = a0;
    float32x4_t b0 = vdupq_n_f32(0.0f), b1 = b0, b2 = b0, b3 = b0;
    std::uint32_t j = row_ptr[i];
    const std::uint32_t end = row_ptr[i + 1];
    for (; j + 2 <= end; j += 2) {
      const float v = value(j);
      const float* xr = x + col_idx[j] * ldx + c0;
      a0 = fma_n(a0, vld1q_f32(xr), v);
      a1 = fma_n(a1, vld1q_f32(xr + 4), v);
      a2 = fma_n(a2, vld1q_f32(xr + 8), v);
      a3 = fma_n(a3, vld1q_f32(xr + 12), v);
      const float w = value(j + 1);
      const float* xs = x + col_idx[j + 1] * ldx + c0;
      b0 = fma_n(b0, vld1q_f32(xs), w);
      b1 = fma_n(b1, vld1q_f32(xs + 4), w);
      b2 = fma_n(b2, vld1q_f32(xs + 8), w);
      b3 = fma_n(b3, vld1q_f32(xs + 12), w);
    }
    if (j < end) {
      const float v = value(j);
      const float* xr = x + col_idx[j] * ldx + c0;
      a0 = fma_n(a0, vld1q_f32(xr), v);
      a1 = fma_n(a1, vld1q_f32(xr + 4), v);
      a2 = fma_n(a2, vld1q_f32(xr + 8), v);
      a3 = fma_n(a3, vld1q_f32(xr + 12), v);
    }
    float* yr = y + i * ldy + c0;
    vst1q_f32(yr, vaddq_f32(a0, b0));
    vst1q_f32(yr + 4, vaddq_f32(a1, b1));
    vst1q_f32(yr + 8, vaddq_f32(a2, b2));
    vst1q_f32(yr + 12, vaddq_f32(a3, b3));
  }
}

template <class Values>
void tile4(std::size_t m_begin, std::size_t m_end, std::size_t c0, const std::uint32_t* __restrict row_ptr,
           const std::uint32_t* __restrict col_idx, Values value, const float* bias, const float* __restrict x,
           std::size_t ldx, float* __restrict y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    float32x4_t a0 = vdupq_n_f32(bias != nullptr ? bias[i] : 0.0f);
    for (std::uint32_t j = row_ptr[i]; j < row_ptr[i + 1]; ++j) {
      a0 = fma_n(a0, vld1q_f32(x + col_idx[j] * ldx + c0), value(j));
    }
    vst1q_f32(y + i * ldy + c0, a0);
  }
}

template <class Values>
void column(std::size_t m_begin, std::size_t m_end, std::size_t c0, const std::uint32_t* __restrict row_ptr,
            const std::uint32_t* __restrict col_idx, Values value, const float* bias, const float* __restrict x,
            std::size_t ldx, float* __restrict y, std::size_t ldy) {
  spmv(m_begin, m_end, row_ptr, col_idx, value, bias, x + c0, ldx, y + c0, ldy);
}

template <class Values>
void spmm(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
          const std::uint32_t* col_idx, Values value, const float* bias, const float* x, std::size_t ldx, float* y,
          std::size_t ldy) {
  std::size_t c0 = 0;
  if (n >= 16) {
    for (; c0 + 16 <= n; c0 += 16) {
      tile16(m_begin, m_end, c0, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
    }
  }
  for (; c0 + 4 <= n; c0 += 4) {
    tile4(m_begin, m_end, c0, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
  }
  for (; c0 < n; ++c0) {
    column(m_begin, m_end, c0, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
  }
}

}  // namespace

void pakd_f32_spmm_ukernel_1x16__neon(std::size_t m_begin, std::size_t m_end, std::size_t n,
                                      const std::uint32_t* row_ptr, const std::uint32_t* col_idx, const float* values,
                                      const float* bias, const float* x, std::size_t ldx, float* y, std::size_t ldy) {
  spmm(m_begin, m_end, n, row_ptr, col_idx, DirectValues{values}, bias, x, ldx, y, ldy);
}

void pakd_f32_cbspmm_ukernel_1x16__neon(std::size_t m_begin, std::size_t m_end, std::size_t n,
                                        const std::uint32_t* row_ptr, const std::uint32_t* col_idx,
                                        const std::uint8_t* codes, const float* table, const float* bias,
                                        const float* x, std::size_t ldx, float* y, std::size_t ldy) {
  spmm(m_begin, m_end, n, row_ptr, col_idx, CodebookValues{codes, table}, bias, x, ldx, y, ldy);
}
