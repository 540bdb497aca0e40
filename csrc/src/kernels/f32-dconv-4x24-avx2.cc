// Direct stride-1 convolution, 4 output channels x 24 output positions per
// tile with AVX2/FMA: 12 accumulators; per tap 3 input loads and 4 weight
// broadcasts feed 12 FMAs. A last block of 1..3 output channels keeps only
// those rows' accumulators (the packed weights stay 4 wide, zero-padded); a
// single row runs 48 positions at a time.
// Contract: F32DconvFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>

#include "kernels/kernels.h"

namespace {

// Rows output channels (1..4) of one block over positions [q0, q1), in tiles
// of V vectors of 8 (q1 - q0 a multiple of 8 V): Rows x V accumulators.
template <std::size_t Rows, std::size_t V>
void dconv_block(std::size_t q0, std::size_t q1, std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp,
                 std::size_t plane, const float* wb, const float* x, float* y, std::size_t ldy) {
  constexpr std::size_t R = pakd::kDconvOcBlock;
  static_assert(Rows * V + V + 1 <= 16, "accumulators, inputs and a broadcast fit the 16 registers");
  for (; q0 < q1; q0 += 8 * V) {
    __m256 acc[Rows][V];
    for (std::size_t r = 0; r < Rows; ++r) {
      for (std::size_t v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_ps();
    }
    const float* wt = wb;
    for (std::size_t ic = 0; ic < cin; ++ic) {
      const float* xc = x + ic * plane + q0;
      for (std::size_t ky = 0; ky < kh; ++ky) {
        const float* xr = xc + ky * wp;
        for (std::size_t kx = 0; kx < kw; ++kx, wt += R) {
          // unrolled (Rows and V are constants); live registers: Rows x V
          // accumulators, V inputs and a broadcast (at most 16: 4 x 3, 1 x 6)
          __m256 xv[V];
          for (std::size_t v = 0; v < V; ++v) xv[v] = _mm256_loadu_ps(xr + kx + 8 * v);
          for (std::size_t r = 0; r < Rows; ++r) {
            const __m256 b = _mm256_broadcast_ss(wt + r);
            for (std::size_t v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(b, xv[v], acc[r][v]);
          }
        }
      }
    }
    for (std::size_t r = 0; r < Rows; ++r) {
      for (std::size_t v = 0; v < V; ++v) _mm256_storeu_ps(y + r * ldy + q0 + 8 * v, acc[r][v]);
    }
  }
}

// All n positions of a block of Rows channels. One row on 24 positions has
// only 3 independent FMA chains, too few to hide the FMA latency, so it runs
// pairs of tiles (48 positions, 6 chains), then a last single tile when the
// tile count is odd. (Two rows over 48 positions, 12 accumulators + 6 inputs,
// spill: measured slower than 24.)
template <std::size_t Rows>
void dconv_rows(std::size_t n, std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t plane,
                const float* wb, const float* x, float* y, std::size_t ldy) {
  constexpr std::size_t T = pakd::kDconvTile;
  std::size_t q = 0;
  if constexpr (Rows == 1) {
    q = n / (2 * T) * (2 * T);
    dconv_block<Rows, 6>(0, q, cin, kh, kw, wp, plane, wb, x, y, ldy);
  }
  dconv_block<Rows, 3>(q, n, cin, kh, kw, wp, plane, wb, x, y, ldy);
}

}  // namespace

void pakd_f32_dconv_ukernel_4x24__avx2(std::size_t oc_begin, std::size_t oc_end, std::size_t n, std::size_t cin,
                                       std::size_t kh, std::size_t kw, std::size_t wp, std::size_t plane,
                                       const float* w, const float* x, float* y, std::size_t ldy) {
  constexpr std::size_t R = pakd::kDconvOcBlock;
  const std::size_t taps = cin * kh * kw;
  for (std::size_t ob = oc_begin; ob < oc_end; ob += R) {
    const float* wb = w + (ob / R) * taps * R;
    float* yb = y + ob * ldy;
    switch (oc_end - ob) {
      case 1: dconv_rows<1>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      case 2: dconv_rows<2>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      case 3: dconv_rows<3>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
      default: dconv_rows<4>(n, cin, kh, kw, wp, plane, wb, x, yb, ldy); break;
    }
  }
}
