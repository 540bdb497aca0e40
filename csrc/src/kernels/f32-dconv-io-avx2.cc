// The input and output passes of the wide-row direct convolution, and the
// session's in-place output epilogue, with AVX2: 8 floats per load / store.
// The wide-row output pass recomputes a row's last partial vector as the full
// vector ending at the row's end (overlapping the previous one; each output
// depends only on its inputs, so writing it twice is harmless); the in-place
// epilogue cannot (it would apply twice) and ends each row scalar. Rows
// shorter than 8 floats run scalar. Both compute act(v * scale + bias + res)
// in the session's portable order (same results). Contracts: F32PadPlanesFn,
// F32WideRowsOutFn and F32EpilogueFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>
#include <type_traits>

#include "kernels/kernels.h"

namespace {

void copy_row(const float* src, std::size_t w, float* dst) {
  if (w < 8) {
    for (std::size_t i = 0; i < w; ++i) dst[i] = src[i];
    return;
  }
  std::size_t i = 0;
  for (; i + 8 <= w; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
  if (i < w) _mm256_storeu_ps(dst + w - 8, _mm256_loadu_ps(src + w - 8));
}

void zero_row(std::size_t w, float* dst) {
  if (w < 8) {
    for (std::size_t i = 0; i < w; ++i) dst[i] = 0.0f;
    return;
  }
  std::size_t i = 0;
  for (; i + 8 <= w; i += 8) _mm256_storeu_ps(dst + i, _mm256_setzero_ps());
  if (i < w) _mm256_storeu_ps(dst + w - 8, _mm256_setzero_ps());
}

// act(src * s + b (+ r)) for the 8 floats at i; Scale, Res, Relu constant.
template <bool Scale, bool Res, bool Relu>
inline __m256 out8(const float* src, const float* r, std::size_t i, __m256 s, __m256 b) {
  __m256 v = _mm256_loadu_ps(src + i);
  if (Scale) v = _mm256_mul_ps(v, s);
  v = _mm256_add_ps(v, b);
  if (Res) v = _mm256_add_ps(v, _mm256_loadu_ps(r + i));
  if (Relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
  return v;
}

// The same for one float.
template <bool Scale, bool Res, bool Relu>
inline float out1(const float* src, const float* r, std::size_t i, float s, float b) {
  float v = Scale ? src[i] * s : src[i];
  v += b;
  if (Res) v += r[i];
  return Relu ? (v > 0.0f ? v : 0.0f) : v;
}

// fn(Scale, Res, Relu) with the three flags as compile-time constants.
template <class Fn>
void with_flags(bool scale, bool res, bool relu, Fn&& fn) {
  using T = std::true_type;
  using F = std::false_type;
  if (relu) {
    if (scale && res)
      fn(T{}, T{}, T{});
    else if (scale)
      fn(T{}, F{}, T{});
    else if (res)
      fn(F{}, T{}, T{});
    else
      fn(F{}, F{}, T{});
  } else {
    if (scale && res)
      fn(T{}, T{}, F{});
    else if (scale)
      fn(T{}, F{}, F{});
    else if (res)
      fn(F{}, T{}, F{});
    else
      fn(F{}, F{}, F{});
  }
}

template <bool Scale, bool Res, bool Relu>
void rows_out(std::size_t c0, std::size_t c1, std::size_t n, std::size_t wp, std::size_t ho, std::size_t wo,
              const float* wide, const float* scale, const float* bias, const float* res, float* y) {
  for (std::size_t oc = c0; oc < c1; ++oc) {
    const float sf = Scale ? scale[oc] : 1.0f, bf = bias != nullptr ? bias[oc] : 0.0f;
    const __m256 s = _mm256_set1_ps(sf), b = _mm256_set1_ps(bf);
    for (std::size_t oy = 0; oy < ho; ++oy) {
      const float* src = wide + oc * n + oy * wp;
      const float* r = Res ? res + (oc * ho + oy) * wo : nullptr;
      float* dst = y + (oc * ho + oy) * wo;
      if (wo < 8) {
        for (std::size_t ox = 0; ox < wo; ++ox) dst[ox] = out1<Scale, Res, Relu>(src, r, ox, sf, bf);
        continue;
      }
      std::size_t ox = 0;
      for (; ox + 8 <= wo; ox += 8) _mm256_storeu_ps(dst + ox, out8<Scale, Res, Relu>(src, r, ox, s, b));
      if (ox < wo) _mm256_storeu_ps(dst + wo - 8, out8<Scale, Res, Relu>(src, r, wo - 8, s, b));
    }
  }
}

// The epilogue in place over positions [s0, s1) of channels [c0, c1).
template <bool Scale, bool Res, bool Relu>
void rows_in_place(std::size_t c0, std::size_t c1, std::size_t s0, std::size_t s1, std::size_t ld, const float* scale,
                   const float* bias, const float* res, float* y) {
  for (std::size_t c = c0; c < c1; ++c) {
    const float sf = Scale ? scale[c] : 1.0f, bf = bias != nullptr ? bias[c] : 0.0f;
    const __m256 s = _mm256_set1_ps(sf), b = _mm256_set1_ps(bf);
    float* row = y + c * ld;
    const float* r = Res ? res + c * ld : nullptr;
    std::size_t i = s0;
    for (; i + 8 <= s1; i += 8) _mm256_storeu_ps(row + i, out8<Scale, Res, Relu>(row, r, i, s, b));
    for (; i < s1; ++i) row[i] = out1<Scale, Res, Relu>(row, r, i, sf, bf);
  }
}

}  // namespace

void pakd_f32_dconv_pad_ukernel__avx2(std::size_t cin, std::size_t h, std::size_t w, std::size_t ph, std::size_t pw,
                                      const float* x, float* xpad) {
  const std::size_t wp = w + 2 * pw, border = ph * wp;
  float* p = xpad;
  for (std::size_t c = 0; c < cin; ++c) {
    zero_row(border, p);
    p += border;
    for (std::size_t iy = 0; iy < h; ++iy, p += wp, x += w) {
      for (std::size_t i = 0; i < pw; ++i) p[i] = 0.0f;
      copy_row(x, w, p + pw);
      for (std::size_t i = 0; i < pw; ++i) p[pw + w + i] = 0.0f;
    }
    zero_row(border, p);
    p += border;
  }
}

void pakd_f32_dconv_out_ukernel__avx2(std::size_t c0, std::size_t c1, std::size_t n, std::size_t wp, std::size_t ho,
                                      std::size_t wo, const float* wide, const float* scale, const float* bias,
                                      const float* res, int relu, float* y) {
  with_flags(scale != nullptr, res != nullptr, relu != 0, [&](auto s, auto r, auto a) {
    rows_out<decltype(s)::value, decltype(r)::value, decltype(a)::value>(c0, c1, n, wp, ho, wo, wide, scale, bias, res,
                                                                         y);
  });
}

void pakd_f32_epilogue_ukernel__avx2(std::size_t c0, std::size_t c1, std::size_t s0, std::size_t s1, std::size_t ld,
                                     const float* scale, const float* bias, const float* res, int relu, float* y) {
  with_flags(scale != nullptr, res != nullptr, relu != 0, [&](auto s, auto r, auto a) {
    rows_in_place<decltype(s)::value, decltype(r)::value, decltype(a)::value>(c0, c1, s0, s1, ld, scale, bias, res, y);
  });
}
