// Cache-blocked f32 GEMM with a 6x16 AVX2 + FMA micro-kernel.
//
// This file alone is compiled with -mavx2 -mfma (see CMakeLists.txt) and is
// only called when the running CPU reports AVX2 and FMA (runtime/cpu.cc).
// Everything else (loops, packing, edges) is the portable driver in
// f32-gemm-blocked.cc, compiled without those flags.
//
// Register budget (16 ymm registers): 6 rows x 2 vectors of 8 floats = 12
// accumulators, 2 for the current B row, 1 for the broadcast A value.
// Per k step: 2 B loads + 6 broadcasts feed 12 FMAs, so the two FMA ports,
// not the load ports, are the limit.
#include <immintrin.h>

#include "kernels/f32-gemm-blocked.h"
#include "kernels/kernels.h"

namespace {

constexpr std::size_t kMR = 6;
constexpr std::size_t kNR = 16;

inline void store_row(float* c, __m256 lo, __m256 hi, bool accumulate) {
  if (accumulate) {
    lo = _mm256_add_ps(lo, _mm256_loadu_ps(c));
    hi = _mm256_add_ps(hi, _mm256_loadu_ps(c + 8));
  }
  _mm256_storeu_ps(c, lo);
  _mm256_storeu_ps(c + 8, hi);
}

void ukernel_6x16(std::size_t kc, const float* __restrict a, const float* __restrict b, std::size_t b_stride,
                  float* __restrict c, std::size_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

  for (std::size_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    b += b_stride;
    __m256 ai;
    ai = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(ai, b0, c00);
    c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(ai, b0, c10);
    c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(ai, b0, c20);
    c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(ai, b0, c30);
    c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(ai, b0, c40);
    c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(ai, b0, c50);
    c51 = _mm256_fmadd_ps(ai, b1, c51);
    a += kMR;
  }

  store_row(c + 0 * ldc, c00, c01, accumulate);
  store_row(c + 1 * ldc, c10, c11, accumulate);
  store_row(c + 2 * ldc, c20, c21, accumulate);
  store_row(c + 3 * ldc, c30, c31, accumulate);
  store_row(c + 4 * ldc, c40, c41, accumulate);
  store_row(c + 5 * ldc, c50, c51, accumulate);
}

// Row kernel (thin A): one row of C, 16 columns at a time. Unrolled over 4
// k steps with separate accumulators: 8 independent FMA chains cover the FMA
// latency.
void row_ukernel_1x16(std::size_t kc, std::size_t nc, const float* __restrict a, std::size_t a_stride,
                      const float* __restrict b, std::size_t b_stride, float* __restrict c, bool accumulate) {
  for (std::size_t j = 0; j < nc; j += kNR) {
    __m256 acc[4][2];
    for (auto& row : acc) row[0] = row[1] = _mm256_setzero_ps();
    const float* bj = b + j;
    std::size_t p = 0;
    for (; p + 4 <= kc; p += 4) {
      for (std::size_t u = 0; u < 4; ++u) {
        const __m256 ai = _mm256_broadcast_ss(a + (p + u) * a_stride);
        const float* bp = bj + (p + u) * b_stride;
        acc[u][0] = _mm256_fmadd_ps(ai, _mm256_loadu_ps(bp), acc[u][0]);
        acc[u][1] = _mm256_fmadd_ps(ai, _mm256_loadu_ps(bp + 8), acc[u][1]);
      }
    }
    for (; p < kc; ++p) {
      const __m256 ai = _mm256_broadcast_ss(a + p * a_stride);
      const float* bp = bj + p * b_stride;
      acc[0][0] = _mm256_fmadd_ps(ai, _mm256_loadu_ps(bp), acc[0][0]);
      acc[0][1] = _mm256_fmadd_ps(ai, _mm256_loadu_ps(bp + 8), acc[0][1]);
    }
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(acc[0][0], acc[1][0]), _mm256_add_ps(acc[2][0], acc[3][0]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(acc[0][1], acc[1][1]), _mm256_add_ps(acc[2][1], acc[3][1]));
    store_row(c + j, lo, hi, accumulate);
  }
}

// Blocking (the BLIS Haswell sgemm values): a KC x NR panel of B is
// 256 * 16 * 4 B = 16 KiB (half of a 32 KiB L1D); an MC x KC block of A is
// 168 * 256 * 4 B = 168 KiB (L2); NC bounds the packed B block to
// 256 * 4080 * 4 B ~= 4 MiB (L3). Thin A: strips of 8 rows of B (x86 L1D
// caches are 8- or 12-way) by 1024 columns (4 KiB of C); measured on Zen 4
// against 4/16 rows and 256/512/unbounded columns.
constexpr pakd::F32GemmBlocking kBlocking = {
    /*mr=*/kMR,   /*nr=*/kNR,       /*mc=*/168,    /*kc=*/256,      /*nc=*/4080,
    ukernel_6x16, row_ukernel_1x16, /*thin_kt=*/8, /*thin_nb=*/1024};

}  // namespace

void pakd_f32_gemm_ukernel_6x16__avx2(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                                      const float* b, std::size_t ldb, float* c, std::size_t ldc) {
  pakd::f32_gemm_blocked(kBlocking, m, n, k, a, lda, b, ldb, c, ldc);
}
