// The input and output passes of the wide-row direct convolution, and the
// session's in-place output epilogue, with NEON: 4 floats per load / store.
// The wide-row output pass recomputes a row's last partial vector as the full
// vector ending at the row's end (overlapping the previous one; each output
// depends only on its inputs, so writing it twice is harmless); the in-place
// epilogue cannot (it would apply twice) and ends each row scalar. Rows
// shorter than 4 floats run scalar. Both compute act(v * scale + bias + res)
// in the scalar kernels' order and rounding: on AArch64 the compiler fuses
// v * scale + bias of the portable code into one FMA, so this code does too;
// on ARMv7 (no FMA) a multiply then an add. ReLU is v > 0 ? v : 0 (NaN -> 0).
// Contracts: F32PadPlanesFn, F32WideRowsOutFn and F32EpilogueFn in
// kernels/kernels.h.
#include <arm_neon.h>

#include <cstddef>
#include <type_traits>

#include "kernels/kernels.h"

namespace {

void copy_row(const float* src, std::size_t w, float* dst) {
  if (w < 4) {
    for (std::size_t i = 0; i < w; ++i) dst[i] = src[i];
    return;
  }
  std::size_t i = 0;
  for (; i + 16 <= w; i += 16) {
    const float32x4_t a = vld1q_f32(src + i), b = vld1q_f32(src + i + 4);
    const float32x4_t c = vld1q_f32(src + i + 8), d = vld1q_f32(src + i + 12);
    vst1q_f32(dst + i, a);
    vst1q_f32(dst + i + 4, b);
    vst1q_f32(dst + i + 8, c);
    vst1q_f32(dst + i + 12, d);
  }
  for (; i + 4 <= w; i += 4) vst1q_f32(dst + i, vld1q_f32(src + i));
  if (i < w) vst1q_f32(dst + w - 4, vld1q_f32(src + w - 4));
}

// The same for rows of w >= 4 floats with fewer instructions: whole blocks of
// 16, then the row's last 16 / 8 / 4 floats as one block overlapping the one
// before (copying a float twice is harmless).
inline void copy_row_overlapping(const float* src, std::size_t w, float* dst) {
  if (w >= 16) {
    std::size_t i = 0;
    for (; i + 16 <= w; i += 16) {
      const float32x4_t a = vld1q_f32(src + i), b = vld1q_f32(src + i + 4);
      const float32x4_t c = vld1q_f32(src + i + 8), d = vld1q_f32(src + i + 12);
      vst1q_f32(dst + i, a);
      vst1q_f32(dst + i + 4, b);
      vst1q_f32(dst + i + 8, c);
      vst1q_f32(dst + i + 12, d);
    }
    if (i < w) {
      const float32x4_t a = vld1q_f32(src + w - 16), b = vld1q_f32(src + w - 12);
      const float32x4_t c = vld1q_f32(src + w - 8), d = vld1q_f32(src + w - 4);
      vst1q_f32(dst + w - 16, a);
      vst1q_f32(dst + w - 12, b);
      vst1q_f32(dst + w - 8, c);
      vst1q_f32(dst + w - 4, d);
    }
  } else if (w >= 8) {
    const float32x4_t a = vld1q_f32(src), b = vld1q_f32(src + 4);
    const float32x4_t c = vld1q_f32(src + w - 8), d = vld1q_f32(src + w - 4);
    vst1q_f32(dst, a);
    vst1q_f32(dst + 4, b);
    vst1q_f32(dst + w - 8, c);
    vst1q_f32(dst + w - 4, d);
  } else {
    const float32x4_t a = vld1q_f32(src), b = vld1q_f32(src + w - 4);
    vst1q_f32(dst, a);
    vst1q_f32(dst + w - 4, b);
  }
}

void zero_row(std::size_t w, float* dst) {
  if (w < 4) {
    for (std::size_t i = 0; i < w; ++i) dst[i] = 0.0f;
    return;
  }
  const float32x4_t z = vdupq_n_f32(0.0f);
  std::size_t i = 0;
  for (; i + 4 <= w; i += 4) vst1q_f32(dst + i, z);
  if (i < w) vst1q_f32(dst + w - 4, z);
}

inline float32x4_t relu4(float32x4_t v) {
#if defined(__aarch64__)
  return vmaxnmq_f32(v, vdupq_n_f32(0.0f));  // NaN -> 0, -0 -> +0, as v > 0 ? v : 0
#else
  return vreinterpretq_f32_u32(vandq_u32(vcgtq_f32(v, vdupq_n_f32(0.0f)), vreinterpretq_u32_f32(v)));
#endif
}

// act(src * s + b (+ r)) for the 4 floats at i; Scale, Res, Relu constant.
// Bias false (only with !Scale && !Res): v as it is (no + 0, which would turn -0 into +0).
template <bool Scale, bool Res, bool Relu, bool Bias = true>
inline float32x4_t out4(const float* src, const float* r, std::size_t i, float32x4_t s, float32x4_t b) {
  float32x4_t v = vld1q_f32(src + i);
  if (!Bias) {
  } else if (Scale) {
#if defined(__aarch64__)
    v = vfmaq_f32(b, v, s);
#else
    v = vaddq_f32(vmulq_f32(v, s), b);
#endif
  } else {
    v = vaddq_f32(v, b);
  }
  if (Res) v = vaddq_f32(v, vld1q_f32(r + i));
  if (Relu) v = relu4(v);
  return v;
}

// The same for one float.
template <bool Scale, bool Res, bool Relu, bool Bias = true>
inline float out1(const float* src, const float* r, std::size_t i, float s, float b) {
  float v = src[i];
  if (!Bias) {
  } else if (Scale) {
#if defined(__aarch64__)
    v = __builtin_fmaf(src[i], s, b);
#else
    v = src[i] * s + b;
#endif
  } else {
    v = src[i] + b;
  }
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
    const float32x4_t s = vdupq_n_f32(sf), b = vdupq_n_f32(bf);
    for (std::size_t oy = 0; oy < ho; ++oy) {
      const float* src = wide + oc * n + oy * wp;
      const float* r = Res ? res + (oc * ho + oy) * wo : nullptr;
      float* dst = y + (oc * ho + oy) * wo;
      if (wo < 4) {
        for (std::size_t ox = 0; ox < wo; ++ox) dst[ox] = out1<Scale, Res, Relu>(src, r, ox, sf, bf);
        continue;
      }
      std::size_t ox = 0;
      for (; ox + 4 <= wo; ox += 4) vst1q_f32(dst + ox, out4<Scale, Res, Relu>(src, r, ox, s, b));
      if (ox < wo) vst1q_f32(dst + wo - 4, out4<Scale, Res, Relu>(src, r, wo - 4, s, b));
    }
  }
}

// The epilogue in place over positions [s0, s1) of channels [c0, c1).
template <bool Scale, bool Res, bool Relu, bool Bias = true>
void rows_in_place(std::size_t c0, std::size_t c1, std::size_t s0, std::size_t s1, std::size_t ld, const float* scale,
                   const float* bias, const float* res, float* y) {
  for (std::size_t c = c0; c < c1; ++c) {
    const float sf = Scale ? scale[c] : 1.0f, bf = bias != nullptr ? bias[c] : 0.0f;
    const float32x4_t s = vdupq_n_f32(sf), b = vdupq_n_f32(bf);
    float* row = y + c * ld;
    const float* r = Res ? res + c * ld : nullptr;
    std::size_t i = s0;
    for (; i + 8 <= s1; i += 8) {
      const float32x4_t v0 = out4<Scale, Res, Relu, Bias>(row, r, i, s, b);
      const float32x4_t v1 = out4<Scale, Res, Relu, Bias>(row, r, i + 4, s, b);
      vst1q_f32(row + i, v0);
      vst1q_f32(row + i + 4, v1);
    }
    for (; i + 4 <= s1; i += 4) vst1q_f32(row + i, out4<Scale, Res, Relu, Bias>(row, r, i, s, b));
    for (; i < s1; ++i) row[i] = out1<Scale, Res, Relu, Bias>(row, r, i, sf, bf);
  }
}

}  // namespace

void pakd_f32_dconv_pad_ukernel__neon(std::size_t cin, std::size_t h, std::size_t w, std::size_t ph, std::size_t pw,
                                      const float* x, float* xpad) {
  const std::size_t wp = w + 2 * pw, border = ph * wp;
  float* p = xpad;
  // pw <= 4 and rows of >= 4 floats (every convolution of the zoo): the side columns as one
  // vector of zeros at each end of the row, stored before the row's values overwrite the inner
  // part (a store, where the loops of pw floats each became a call to memset)
  const bool vector_sides = pw > 0 && pw <= 4 && wp >= 4;
  const float32x4_t z = vdupq_n_f32(0.0f);
  for (std::size_t c = 0; c < cin; ++c) {
    zero_row(border, p);
    p += border;
    for (std::size_t iy = 0; iy < h; ++iy, p += wp, x += w) {
      if (vector_sides) {
        vst1q_f32(p, z);
        vst1q_f32(p + wp - 4, z);
      } else {
        for (std::size_t i = 0; i < pw; ++i) p[i] = 0.0f;
        for (std::size_t i = 0; i < pw; ++i) p[pw + w + i] = 0.0f;
      }
      if (w >= 4) {
        copy_row_overlapping(x, w, p + pw);
      } else {
        copy_row(x, w, p + pw);
      }
    }
    zero_row(border, p);
    p += border;
  }
}

void pakd_f32_dconv_out_ukernel__neon(std::size_t c0, std::size_t c1, std::size_t n, std::size_t wp, std::size_t ho,
                                      std::size_t wo, const float* wide, const float* scale, const float* bias,
                                      const float* res, int relu, float* y) {
  with_flags(scale != nullptr, res != nullptr, relu != 0, [&](auto s, auto r, auto a) {
    rows_out<decltype(s)::value, decltype(r)::value, decltype(a)::value>(c0, c1, n, wp, ho, wo, wide, scale, bias, res,
                                                                         y);
  });
}

void pakd_f32_epilogue_ukernel__neon(std::size_t c0, std::size_t c1, std::size_t s0, std::size_t s1, std::size_t ld,
                                     const float* scale, const float* bias, const float* res, int relu, float* y) {
  if (scale == nullptr && bias == nullptr && res == nullptr) {  // ReLU alone (the reference adds no 0)
    if (relu != 0) rows_in_place<false, false, true, false>(c0, c1, s0, s1, ld, scale, bias, res, y);
    return;
  }
  with_flags(scale != nullptr, res != nullptr, relu != 0, [&](auto s, auto r, auto a) {
    rows_in_place<decltype(s)::value, decltype(r)::value, decltype(a)::value>(c0, c1, s0, s1, ld, scale, bias, res, y);
  });
}
