// The input and output passes of the wide-row direct convolution and the
// in-place epilogue, portable C++ (the compiler vectorizes the row loops); the
// references of their families. Contracts: F32PadPlanesFn, F32WideRowsOutFn
// and F32EpilogueFn in kernels/kernels.h.
#include <cstddef>
#include <type_traits>

#include "kernels/kernels.h"

namespace {

template <bool Scale, bool Res, bool Relu>
void rows_out(std::size_t c0, std::size_t c1, std::size_t n, std::size_t wp, std::size_t ho, std::size_t wo,
              const float* wide, const float* scale, const float* bias, const float* res, float* y) {
  for (std::size_t oc = c0; oc < c1; ++oc) {
    const float s = Scale ? scale[oc] : 1.0f, b = bias != nullptr ? bias[oc] : 0.0f;
    for (std::size_t oy = 0; oy < ho; ++oy) {
      const float* src = wide + oc * n + oy * wp;
      const float* r = Res ? res + (oc * ho + oy) * wo : nullptr;
      float* dst = y + (oc * ho + oy) * wo;
      for (std::size_t ox = 0; ox < wo; ++ox) {
        float v = Scale ? src[ox] * s : src[ox];
        v += b;
        if (Res) v += r[ox];
        dst[ox] = Relu ? (v > 0.0f ? v : 0.0f) : v;
      }
    }
  }
}

}  // namespace

void pakd_f32_dconv_pad_ukernel__scalar(std::size_t cin, std::size_t h, std::size_t w, std::size_t ph, std::size_t pw,
                                        const float* x, float* xpad) {
  const std::size_t wp = w + 2 * pw, border = ph * wp;
  float* p = xpad;
  for (std::size_t c = 0; c < cin; ++c) {
    for (std::size_t i = 0; i < border; ++i) p[i] = 0.0f;
    p += border;
    for (std::size_t iy = 0; iy < h; ++iy, p += wp, x += w) {
      for (std::size_t i = 0; i < pw; ++i) p[i] = 0.0f;
      for (std::size_t i = 0; i < w; ++i) p[pw + i] = x[i];
      for (std::size_t i = 0; i < pw; ++i) p[pw + w + i] = 0.0f;
    }
    for (std::size_t i = 0; i < border; ++i) p[i] = 0.0f;
    p += border;
  }
}

void pakd_f32_dconv_out_ukernel__scalar(std::size_t c0, std::size_t c1, std::size_t n, std::size_t wp, std::size_t ho,
                                        std::size_t wo, const float* wide, const float* scale, const float* bias,
                                        const float* res, int relu, float* y) {
  // the flags as compile-time constants, so that no branch is left in the row loops
  const auto run = [&](auto s, auto r, auto a) {
    rows_out<decltype(s)::value, decltype(r)::value, decltype(a)::value>(c0, c1, n, wp, ho, wo, wide, scale, bias, res,
                                                                         y);
  };
  using T = std::true_type;
  using F = std::false_type;
  const bool s = scale != nullptr, r = res != nullptr;
  if (relu != 0) {
    if (s && r)
      run(T{}, T{}, T{});
    else if (s)
      run(T{}, F{}, T{});
    else if (r)
      run(F{}, T{}, T{});
    else
      run(F{}, F{}, T{});
  } else {
    if (s && r)
      run(T{}, T{}, F{});
    else if (s)
      run(T{}, F{}, F{});
    else if (r)
      run(F{}, T{}, F{});
    else
      run(F{}, F{}, F{});
  }
}

void pakd_f32_epilogue_ukernel__scalar(std::size_t c0, std::size_t c1, std::size_t s0, std::size_t s1, std::size_t ld,
                                       const float* scale, const float* bias, const float* res, int relu, float* y) {
  for (std::size_t c = c0; c < c1; ++c) {
    float* row = y + c * ld;
    const float s = scale != nullptr ? scale[c] : 1.0f;
    const float b = bias != nullptr ? bias[c] : 0.0f;
    if (res != nullptr) {  // a fused residual add, in one pass
      const float* r = res + c * ld;
      for (std::size_t i = s0; i < s1; ++i) {
        const float v = row[i] * s + b + r[i];
        row[i] = relu != 0 ? (v > 0.0f ? v : 0.0f) : v;
      }
      continue;
    }
    if (scale != nullptr) {
      for (std::size_t i = s0; i < s1; ++i) row[i] = row[i] * s + b;
    } else if (bias != nullptr) {
      for (std::size_t i = s0; i < s1; ++i) row[i] += b;
    }
    if (relu != 0) {
      for (std::size_t i = s0; i < s1; ++i) row[i] = row[i] > 0.0f ? row[i] : 0.0f;
    }
  }
}
