// Sparse (CSR) x dense kernels with AVX2 + FMA, f32 and u8-codebook values.
//
// Compiled with -mavx2 -mfma (CMakeLists.txt) and called only when the CPU
// has both (runtime/kernel-config.cc). Uses nothing but intrinsics and code
// with internal linkage (see the note in kernels.h).
//
//   n == 1 (batch-1 fully-connected layer, memory bound: 8 bytes per nonzero
//     for f32, 5 for codebook values): per row, 16 nonzeros per step: values
//     by vector loads (codebook: table lookups), x[col] by scalar loads put
//     together into vectors (see load8_indexed), two FMA chains, software
//     prefetch of the index and value streams; a horizontal sum and a scalar
//     tail end the row.
//   n > 1 (lowered convolution): register tiles of 32 columns (8 ymm
//     accumulators: two sets of four for even and odd nonzeros, so 8 FMA
//     chains cover the FMA latency), then 8 columns, then a masked tail.
//     Column tiles are the outer loop: a k x 32 strip of X (k * 128 bytes)
//     is reused by every row from L1/L2.
#include <immintrin.h>

#include "kernels/kernels.h"

namespace {

// Nonzeros ahead of the current one whose index and value lines are
// prefetched in the n == 1 loop (1 KiB of column indices). Measured on Zen 4
// with a 30 MB matrix streamed from DRAM (4096 x 9216 at 90% sparsity):
// 3.4 ms without, 2.3 ms with; 512 was no better. Prefetches past the end of
// an array are harmless (they never fault).
constexpr std::uint32_t kPrefetchDistance = 256;

// x[idx[0..8] * ldx] by scalar loads inserted into one vector (kUnit: ldx is
// 1, no multiplies). Faster than
// _mm256_i32gather_ps on Zen 4, whose ymm gather costs about as much as the
// eight loads it replaces (1000 x 4096, 90% sparse: 0.11 vs 0.16 ms).
template <bool kUnit>
__m256 load8_indexed(const float* x, std::size_t ldx_, const std::uint32_t* idx) {
  const std::size_t ldx = kUnit ? 1 : ldx_;
  const __m128 lo = _mm_setr_ps(x[idx[0] * ldx], x[idx[1] * ldx], x[idx[2] * ldx], x[idx[3] * ldx]);
  const __m128 hi = _mm_setr_ps(x[idx[4] * ldx], x[idx[5] * ldx], x[idx[6] * ldx], x[idx[7] * ldx]);
  return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

struct DirectValues {
  const float* values;
  float scalar(std::uint32_t j) const { return values[j]; }
  __m256 broadcast(std::uint32_t j) const { return _mm256_broadcast_ss(values + j); }
  __m256 load8(std::uint32_t j) const { return _mm256_loadu_ps(values + j); }
  void prefetch(std::uint32_t j) const { _mm_prefetch(reinterpret_cast<const char*>(values + j), _MM_HINT_T0); }
};

struct CodebookValues {
  const std::uint8_t* codes;
  const float* table;
  float scalar(std::uint32_t j) const { return table[codes[j]]; }
  __m256 broadcast(std::uint32_t j) const { return _mm256_set1_ps(table[codes[j]]); }
  // Scalar table loads, like load8_indexed: faster than a gather from the
  // table on Zen 4 (1000 x 4096, 90% sparse: 0.19 vs 0.30 ms).
  __m256 load8(std::uint32_t j) const {
    const std::uint8_t* c = codes + j;
    const __m128 lo = _mm_setr_ps(table[c[0]], table[c[1]], table[c[2]], table[c[3]]);
    const __m128 hi = _mm_setr_ps(table[c[4]], table[c[5]], table[c[6]], table[c[7]]);
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
  }
  void prefetch(std::uint32_t j) const { _mm_prefetch(reinterpret_cast<const char*>(codes + j), _MM_HINT_T0); }
};

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <bool kUnit, class Values>
void spmv(std::size_t m_begin, std::size_t m_end, const std::uint32_t* __restrict row_ptr,
          const std::uint32_t* __restrict col_idx, Values value, const float* bias, const float* __restrict x,
          std::size_t ldx, float* __restrict y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    std::uint32_t j = row_ptr[i];
    const std::uint32_t end = row_ptr[i + 1];
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; j + 16 <= end; j += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(col_idx + j + kPrefetchDistance), _MM_HINT_T0);
      value.prefetch(j + kPrefetchDistance);
      acc0 = _mm256_fmadd_ps(value.load8(j), load8_indexed<kUnit>(x, ldx, col_idx + j), acc0);
      acc1 = _mm256_fmadd_ps(value.load8(j + 8), load8_indexed<kUnit>(x, ldx, col_idx + j + 8), acc1);
    }
    if (j + 8 <= end) {
      acc0 = _mm256_fmadd_ps(value.load8(j), load8_indexed<kUnit>(x, ldx, col_idx + j), acc0);
      j += 8;
    }
    float sum = hsum(_mm256_add_ps(acc0, acc1));
    float s1 = 0.0f;
    for (; j + 2 <= end; j += 2) {
      sum += value.scalar(j) * x[col_idx[j] * ldx];
      s1 += value.scalar(j + 1) * x[col_idx[j + 1] * ldx];
    }
    if (j < end) sum += value.scalar(j) * x[col_idx[j] * ldx];
    y[i * ldy] = (bias != nullptr ? bias[i] : 0.0f) + (sum + s1);
  }
}

template <class Values>
void tile32(std::size_t m_begin, std::size_t m_end, std::size_t c0, const std::uint32_t* __restrict row_ptr,
            const std::uint32_t* __restrict col_idx, Values value, const float* bias, const float* __restrict x,
            std::size_t ldx, float* __restrict y, std::size_t ldy) {
  for (std::size_t i = m_begin; i < m_end; ++i) {
    __m256 a0 = bias != nullptr ? _mm256_broadcast_ss(bias + i) : _mm256_setzero_ps();
    __m256 a1 = a0, a2 = a0, a3 = a0;
    __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
    std::uint32_t j = row_ptr[i];
    const std::uint32_t end = row_ptr[i + 1];
    for (; j + 2 <= end; j += 2) {
      const __m256 v = value.broadcast(j);
      const float* xr = x + col_idx[j] * ldx + c0;
      a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr), a0);
      a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 8), a1);
      a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 16), a2);
      a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 24), a3);
      const __m256 w = value.broadcast(j + 1);
      const float* xs = x + col_idx[j + 1] * ldx + c0;
      b0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(xs), b0);
      b1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(xs + 8), b1);
      b2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(xs + 16), b2);
      b3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(xs + 24), b3);
    }
    if (j < end) {
      const __m256 v = value.broadcast(j);
      const float* xr = x + col_idx[j] * ldx + c0;
      a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr), a0);
      a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 8), a1);
      a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 16), a2);
      a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 24), a3);
    }
    float* yr = y + i * ldy + c0;
    _mm256_storeu_ps(yr, _mm256_add_ps(a0, b0));
    _mm256_storeu_ps(yr + 8, _mm256_add_ps(a1, b1));
    _mm256_storeu_ps(yr + 16, _mm256_add_ps(a2, b2));
    _mm256_storeu_ps(yr + 24, _mm256_add_ps(a3, b3));
  }
}

// 8 columns, or fewer (cols in 1..8) through masked loads and stores.
template <bool kMasked, class Values>
void tile8(std::size_t m_begin, std::size_t m_end, std::size_t c0, std::size_t cols,
           const std::uint32_t* __restrict row_ptr, const std::uint32_t* __restrict col_idx, Values value,
           const float* bias, const float* __restrict x, std::size_t ldx, float* __restrict y, std::size_t ldy) {
  static const std::int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - cols));
  for (std::size_t i = m_begin; i < m_end; ++i) {
    __m256 a0 = bias != nullptr ? _mm256_broadcast_ss(bias + i) : _mm256_setzero_ps();
    __m256 a1 = _mm256_setzero_ps();
    std::uint32_t j = row_ptr[i];
    const std::uint32_t end = row_ptr[i + 1];
    for (; j + 2 <= end; j += 2) {
      const float* xr = x + col_idx[j] * ldx + c0;
      const float* xs = x + col_idx[j + 1] * ldx + c0;
      const __m256 x0 = kMasked ? _mm256_maskload_ps(xr, mask) : _mm256_loadu_ps(xr);
      const __m256 x1 = kMasked ? _mm256_maskload_ps(xs, mask) : _mm256_loadu_ps(xs);
      a0 = _mm256_fmadd_ps(value.broadcast(j), x0, a0);
      a1 = _mm256_fmadd_ps(value.broadcast(j + 1), x1, a1);
    }
    if (j < end) {
      const float* xr = x + col_idx[j] * ldx + c0;
      const __m256 x0 = kMasked ? _mm256_maskload_ps(xr, mask) : _mm256_loadu_ps(xr);
      a0 = _mm256_fmadd_ps(value.broadcast(j), x0, a0);
    }
    float* yr = y + i * ldy + c0;
    if (kMasked) {
      _mm256_maskstore_ps(yr, mask, _mm256_add_ps(a0, a1));
    } else {
      _mm256_storeu_ps(yr, _mm256_add_ps(a0, a1));
    }
  }
}

template <class Values>
void spmm(std::size_t m_begin, std::size_t m_end, std::size_t n, const std::uint32_t* row_ptr,
          const std::uint32_t* col_idx, Values value, const float* bias, const float* x, std::size_t ldx, float* y,
          std::size_t ldy) {
  if (n == 1) {
    if (ldx == 1) {
      spmv<true>(m_begin, m_end, row_ptr, col_idx, value, bias, x, 1, y, ldy);
    } else {
      spmv<false>(m_begin, m_end, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
    }
    return;
  }
  std::size_t c0 = 0;
  for (; c0 + 32 <= n; c0 += 32) {
    tile32(m_begin, m_end, c0, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
  }
  for (; c0 + 8 <= n; c0 += 8) {
    tile8<false>(m_begin, m_end, c0, 8, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
  }
  if (c0 < n) {
    tile8<true>(m_begin, m_end, c0, n - c0, row_ptr, col_idx, value, bias, x, ldx, y, ldy);
  }
}

}  // namespace

void pakd_f32_spmm_ukernel_1x32__avx2(std::size_t m_begin, std::size_t m_end, std::size_t n,
                                      const std::uint32_t* row_ptr, const std::uint32_t* col_idx, const float* values,
                                      const float* bias, const float* x, std::size_t ldx, float* y, std::size_t ldy) {
  spmm(m_begin, m_end, n, row_ptr, col_idx, DirectValues{values}, bias, x, ldx, y, ldy);
}

void pakd_f32_cbspmm_ukernel_1x32__avx2(std::size_t m_begin, std::size_t m_end, std::size_t n,
                                        const std::uint32_t* row_ptr, const std::uint32_t* col_idx,
                                        const std::uint8_t* codes, const float* table, const float* bias,
                                        const float* x, std::size_t ldx, float* y, std::size_t ldy) {
  spmm(m_begin, m_end, n, row_ptr, col_idx, CodebookValues{codes, table}, bias, x, ldx, y, ldy);
}
