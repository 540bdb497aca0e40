// The per-channel output epilogue in place with AVX2, 8 floats per vector
// and the rest of each row scalar (the same operations in the same order as
// the session's portable epilogue, so the same results). Contract:
// F32EpilogueFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>

#include "kernels/kernels.h"

namespace {

template <bool Scale, bool Res, bool Relu>
void rows(std::size_t c0, std::size_t c1, std::size_t s0, std::size_t s1, std::size_t ld, const float* scale,
          const float* bias, const float* res, float* y) {
  for (std::size_t c = c0; c < c1; ++c) {
    const float sf = Scale ? scale[c] : 1.0f, bf = bias != nullptr ? bias[c] : 0.0f;
    const __m256 s = _mm256_set1_ps(sf), b = _mm256_set1_ps(bf), zero = _mm256_setzero_ps();
    float* row = y + c * ld;
    const float* r = Res ? res + c * ld : nullptr;
    std::size_t i = s0;
    for (; i + 8 <= s1; i += 8) {
      __m256 v = _mm256_loadu_ps(row + i);
      if (Scale) v = _mm256_mul_ps(v, s);
      v = _mm256_add_ps(v, b);
      if (Res) v = _mm256_add_ps(v, _mm256_loadu_ps(r + i));
      if (Relu) v = _mm256_max_ps(v, zero);
      _mm256_storeu_ps(row + i, v);
    }
    for (; i < s1; ++i) {
      float v = Scale ? row[i] * sf : row[i];
      v += bf;
      if (Res) v += r[i];
      row[i] = Relu ? (v > 0.0f ? v : 0.0f) : v;
    }
  }
}

}  // namespace

void pakd_f32_epilogue_ukernel__avx2(std::size_t c0, std::size_t c1, std::size_t s0, std::size_t s1, std::size_t ld,
                                     const float* scale, const float* bias, const float* res, int relu, float* y) {
  const bool s = scale != nullptr, r = res != nullptr;
  if (relu != 0) {
    if (s && r) rows<true, true, true>(c0, c1, s0, s1, ld, scale, bias, res, y);
    else if (s) rows<true, false, true>(c0, c1, s0, s1, ld, scale, bias, res, y);
    else if (r) rows<false, true, true>(c0, c1, s0, s1, ld, scale, bias, res, y);
    else rows<false, false, true>(c0, c1, s0, s1, ld, scale, bias, res, y);
  } else {
    if (s && r) rows<true, true, false>(c0, c1, s0, s1, ld, scale, bias, res, y);
    else if (s) rows<true, false, false>(c0, c1, s0, s1, ld, scale, bias, res, y);
    else if (r) rows<false, true, false>(c0, c1, s0, s1, ld, scale, bias, res, y);
    else rows<false, false, false>(c0, c1, s0, s1, ld, scale, bias, res, y);
  }
}
