// Symmetric per-tensor int8 quantization of activations (the "dynamic" half
// of the qs8 GEMM: weights are quantized offline, activations per call).
//
// Not an ISA-specific file: the SSE2 path is the x86-64 baseline (every
// x86-64 CPU has it, and the compiler enables it by default). GCC does not
// vectorize the plain loops (float min/max with NaN semantics), which made
// quantizing a 576 x 784 im2col matrix cost 1 ms, more than the GEMM.
#include <cmath>

#include "kernels/kernels.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace pakd {
namespace {

// v already scaled to about [-127, 127]: clamp (NaN -> 127), round half away
// from zero with a truncating conversion.
std::int8_t round_clamp(float v) {
  v = v < 127.0f ? v : 127.0f;
  v = v > -127.0f ? v : -127.0f;
  return static_cast<std::int8_t>(static_cast<int>(v + std::copysign(0.5f, v)));
}

}  // namespace

float quantize_s8_symmetric(const float* x, std::size_t count, std::int8_t* out) {
  float max_abs = 0.0f;
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128 sign_mask = _mm_set1_ps(-0.0f);
  __m128 m0 = _mm_setzero_ps(), m1 = m0;
  for (; i + 8 <= count; i += 8) {
    // max(a, m) returns m when a is NaN: NaN is ignored.
    m0 = _mm_max_ps(_mm_andnot_ps(sign_mask, _mm_loadu_ps(x + i)), m0);
    m1 = _mm_max_ps(_mm_andnot_ps(sign_mask, _mm_loadu_ps(x + i + 4)), m1);
  }
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, _mm_max_ps(m0, m1));
  for (const float l : lanes) max_abs = l > max_abs ? l : max_abs;
#endif
  for (; i < count; ++i) {
    const float a = std::fabs(x[i]);
    max_abs = a > max_abs ? a : max_abs;  // NaN compares false: ignored
  }
  if (!(max_abs > 0.0f)) {  // all zero (or NaN), or empty
    for (std::size_t j = 0; j < count; ++j) out[j] = 0;
    return 0.0f;
  }
  const float inv_scale = 127.0f / max_abs;  // max_abs = inf: 0 (codes 0 or 127)

  std::size_t j = 0;
#if defined(__SSE2__)
  const __m128 scale = _mm_set1_ps(inv_scale);
  const __m128 hi = _mm_set1_ps(127.0f), lo = _mm_set1_ps(-127.0f), half = _mm_set1_ps(0.5f);
  for (; j + 16 <= count; j += 16) {
    __m128i q[4];
    for (int t = 0; t < 4; ++t) {
      __m128 v = _mm_mul_ps(_mm_loadu_ps(x + j + 4 * t), scale);
      v = _mm_max_ps(_mm_min_ps(v, hi), lo);  // min(NaN, 127) = 127
      v = _mm_add_ps(v, _mm_or_ps(_mm_and_ps(v, sign_mask), half));
      q[t] = _mm_cvttps_epi32(v);
    }
    const __m128i q16a = _mm_packs_epi32(q[0], q[1]);
    const __m128i q16b = _mm_packs_epi32(q[2], q[3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm_packs_epi16(q16a, q16b));
  }
#endif
  for (; j < count; ++j) out[j] = round_clamp(x[j] * inv_scale);
  return max_abs / 127.0f;
}

}  // namespace pakd
