// The input and output passes of the wide-row direct convolution, portable
// C++ (the compiler vectorizes the row loops). Contracts: F32PadPlanesFn and
// F32WideRowsOutFn in kernels/kernels.h.
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
