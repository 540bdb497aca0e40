// Portable cache-blocked f32 GEMM with a 4x8 register-blocked micro-kernel.
//
// Written in plain C++ so that the compiler's vectorizer maps it to whatever
// baseline SIMD the target has (SSE2 on x86-64, NEON on AArch64): the 4x8
// accumulator block is 8 128-bit registers, plus 2 for the B row and 1 for
// the broadcast A value, which fits the 16 vector registers of SSE2/ARMv7
// NEON. No ISA-specific flags: it runs on every CPU of the architecture.
#include "kernels/f32-gemm-blocked.h"
#include "kernels/kernels.h"

namespace {

constexpr std::size_t kMR = 4;
constexpr std::size_t kNR = 8;

void ukernel_4x8(std::size_t kc, const float* __restrict a, const float* __restrict b, std::size_t b_stride,
                 float* __restrict c, std::size_t ldc, bool accumulate) {
  float acc[kMR][kNR] = {};
  for (std::size_t p = 0; p < kc; ++p) {
    const float* __restrict bp = b + p * b_stride;
    const float* __restrict ap = a + p * kMR;
    for (std::size_t i = 0; i < kMR; ++i) {
      const float ai = ap[i];
      for (std::size_t j = 0; j < kNR; ++j) acc[i][j] += ai * bp[j];
    }
  }
  for (std::size_t i = 0; i < kMR; ++i) {
    float* __restrict ci = c + i * ldc;
    if (accumulate) {
      for (std::size_t j = 0; j < kNR; ++j) ci[j] += acc[i][j];
    } else {
      for (std::size_t j = 0; j < kNR; ++j) ci[j] = acc[i][j];
    }
  }
}

// Row kernel (thin A): one row of C, 8 columns at a time. Two independent
// accumulator sets (even and odd k) hide the latency of the dependent adds.
void row_ukernel_1x8(std::size_t kc, std::size_t nc, const float* __restrict a, std::size_t a_stride,
                     const float* __restrict b, std::size_t b_stride, float* __restrict c, bool accumulate) {
  for (std::size_t j = 0; j < nc; j += kNR) {
    float acc0[kNR] = {};
    float acc1[kNR] = {};
    const float* __restrict bj = b + j;
    std::size_t p = 0;
    for (; p + 2 <= kc; p += 2) {
      const float a0 = a[p * a_stride], a1 = a[(p + 1) * a_stride];
      const float* __restrict b0 = bj + p * b_stride;
      const float* __restrict b1 = b0 + b_stride;
      for (std::size_t jj = 0; jj < kNR; ++jj) {
        acc0[jj] += a0 * b0[jj];
        acc1[jj] += a1 * b1[jj];
      }
    }
    if (p < kc) {
      const float a0 = a[p * a_stride];
      const float* __restrict b0 = bj + p * b_stride;
      for (std::size_t jj = 0; jj < kNR; ++jj) acc0[jj] += a0 * b0[jj];
    }
    for (std::size_t jj = 0; jj < kNR; ++jj) {
      const float v = acc0[jj] + acc1[jj];
      c[j + jj] = accumulate ? c[j + jj] + v : v;
    }
  }
}

// Blocking: a KC x NR panel of B is 256 * 8 * 4 B = 8 KiB (L1); an MC x KC
// block of A is 128 * 256 * 4 B = 128 KiB (L2); NC bounds the packed B block
// to 256 * 4096 * 4 B = 4 MiB (L3). Thin A: strips of 4 rows of B (this
// kernel also serves ARM cores whose L1D is only 2- or 4-way) by 1024
// columns.
constexpr pakd::F32GemmBlocking kBlocking = {
    /*mr=*/kMR,  /*nr=*/kNR,      /*mc=*/128,    /*kc=*/256,      /*nc=*/4096,
    ukernel_4x8, row_ukernel_1x8, /*thin_kt=*/4, /*thin_nb=*/1024};

}  // namespace

void pakd_f32_gemm_ukernel_4x8__scalar(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                                       const float* b, std::size_t ldb, float* c, std::size_t ldc) {
  pakd::f32_gemm_blocked(kBlocking, m, n, k, a, lda, b, ldb, c, ldc);
}
