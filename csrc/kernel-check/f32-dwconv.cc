// f32-dwconv: depthwise convolutions over zero-padded planes against the
// reference at 1e-5 (the vector kernels sum with FMA in the same tap order):
// 3x3, 5x5 (unrolled) and other sizes (1x1, 2x3, 7x7: the run-time loops),
// strides 1, 2 and 3, widths around the vector widths (1..19 and MobileNet's
// 7, 14, 28, 56), odd channel counts and channel ranges that do not start at
// 0, with and without bias, the identity, ReLU and ReLU6 clamps, and a NaN
// input (kept by every clamp). The input has exactly the contract's read
// slack past the last plane, so an over-read shows under a sanitizer.
#include <limits>

#include "kernel-check/kernel-check.h"

namespace pakd::check {

PAKD_KERNEL_CHECK("f32-dwconv") {
  const auto& table = runtime::f32_dwconv_kernels();
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const float clamps[][2] = {{-kInf, kInf}, {0.0f, kInf}, {0.0f, 6.0f}};
  // channels, h, w, kh, kw, stride, padding
  const std::size_t shapes[][7] = {
      {3, 9, 9, 3, 3, 1, 1},   {5, 7, 13, 3, 3, 2, 1},  {2, 14, 14, 3, 3, 1, 1}, {7, 28, 28, 3, 3, 2, 1},
      {3, 11, 19, 5, 5, 1, 2}, {4, 14, 14, 5, 5, 2, 2}, {1, 5, 5, 5, 5, 1, 0},   {2, 1, 1, 3, 3, 1, 1},
      {3, 8, 17, 3, 3, 2, 0},  {2, 6, 9, 2, 3, 1, 1},   {3, 9, 11, 7, 7, 2, 3},  {5, 10, 12, 1, 1, 2, 0},
      {2, 13, 15, 3, 3, 3, 1}, {1, 56, 56, 3, 3, 2, 1}, {6, 7, 7, 5, 5, 1, 2},   {3, 12, 4, 5, 5, 2, 2},
  };
  for (const auto& sh : shapes) {
    const std::size_t ch = sh[0], h = sh[1], w = sh[2], kh = sh[3], kw = sh[4], s = sh[5], p = sh[6];
    const std::size_t hp = h + 2 * p, wp = w + 2 * p, plane = hp * wp;
    const std::size_t ho = (hp - kh) / s + 1, wo = (wp - kw) / s + 1;
    std::vector<float> x = c.rng.floats(ch * plane + kDwconvReadSlack, -2.0f, 2.0f);
    x[p * wp + p] = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> wts = c.rng.floats(ch * kh * kw), bias = c.rng.floats(ch);
    const std::size_t ranges[][2] = {{0, ch}, {ch > 1 ? ch / 2 : 0, ch}};
    for (const auto& r : ranges) {
      for (const auto& cl : clamps) {
        for (int with_bias = 0; with_bias < 2; ++with_bias) {
          const float* pb = with_bias != 0 ? bias.data() : nullptr;
          std::vector<float> want(ch * ho * wo, 0.5f);
          table.reference().fn(r[0], r[1], kh, kw, s, wp, plane, ho, wo, wts.data(), pb, cl[0], cl[1], x.data(),
                               want.data(), ho * wo);
          for (const auto& kernel : table) {
            if (!c.use(kernel)) continue;
            std::vector<float> got(ch * ho * wo, 0.5f);
            kernel.fn(r[0], r[1], kh, kw, s, wp, plane, ho, wo, wts.data(), pb, cl[0], cl[1], x.data(), got.data(),
                      ho * wo);
            c.expect_close(
                kernel,
                format("c=%zu [%zu,%zu) %zux%zu k=%zux%zu s=%zu p=%zu clamp=[%g,%g] bias=%d", ch, r[0], r[1], h, w, kh,
                       kw, s, p, static_cast<double>(cl[0]), static_cast<double>(cl[1]), with_bias),
                got.data(), want.data(), got.size(), 1e-5f);
          }
        }
      }
    }
  }
}

}  // namespace pakd::check
