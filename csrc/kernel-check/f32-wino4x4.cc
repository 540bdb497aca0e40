// f32-wino4x4: Winograd F(4x4, 3x3) against the scalar reference (and the
// reference against a direct convolution in double), over the ResNet-20
// shapes (16 / 32 / 64 channels on 28x28 / 14x14 / 7x7) and awkward ones
// (1, 3, 9, 17 channels, cin not a multiple of 4 or 8, cout past 8 / 16,
// partial edge tiles, no padding; the pruned ResNet-20's 9..27 channels, last
// blocks of 4 / 8 / 12 channels over many tiles), with and without bias,
// residual and ReLU,
// the tiles split into several ranges (as threads split them) so chunks start
// anywhere and end short. The input is packed with the reference packing.
#include <cmath>
#include <vector>

#include "kernel-check/kernel-check.h"
#include "runtime/pack.h"

namespace pakd::check {
namespace {

// y[oc][oy][ox] = act(bias + sum w x + residual), in double.
std::vector<float> direct_conv(const std::vector<float>& x, const std::vector<float>& w, const float* bias,
                               const float* res, bool relu, std::size_t cin, std::size_t h, std::size_t wd,
                               std::size_t cout, std::size_t ph, std::size_t pw) {
  const std::size_t ho = h + 2 * ph - 2, wo = wd + 2 * pw - 2;
  std::vector<float> y(cout * ho * wo);
  for (std::size_t oc = 0; oc < cout; ++oc) {
    for (std::size_t oy = 0; oy < ho; ++oy) {
      for (std::size_t ox = 0; ox < wo; ++ox) {
        double s = bias != nullptr ? bias[oc] : 0.0;
        for (std::size_t ic = 0; ic < cin; ++ic) {
          for (std::size_t ky = 0; ky < 3; ++ky) {
            for (std::size_t kx = 0; kx < 3; ++kx) {
              const std::ptrdiff_t iy = static_cast<std::ptrdiff_t>(oy + ky) - static_cast<std::ptrdiff_t>(ph);
              const std::ptrdiff_t ix = static_cast<std::ptrdiff_t>(ox + kx) - static_cast<std::ptrdiff_t>(pw);
              if (iy < 0 || ix < 0 || iy >= static_cast<std::ptrdiff_t>(h) || ix >= static_cast<std::ptrdiff_t>(wd)) {
                continue;
              }
              s += static_cast<double>(w[((oc * cin + ic) * 3 + ky) * 3 + kx]) *
                   x[(ic * h + static_cast<std::size_t>(iy)) * wd + static_cast<std::size_t>(ix)];
            }
          }
        }
        const std::size_t at = (oc * ho + oy) * wo + ox;
        if (res != nullptr) s += res[at];
        y[at] = relu && !(s > 0.0) ? 0.0f : static_cast<float>(s);
      }
    }
  }
  return y;
}

}  // namespace

PAKD_KERNEL_CHECK("f32-wino4x4") {
  const auto& table = runtime::f32_wino4x4_kernels();
  const auto pack = runtime::f32_wino4x4_pack_kernels().reference().fn;
  // cin, cout, h, w, ph, pw, parts
  const std::size_t shapes[][7] = {
      {16, 16, 28, 28, 1, 1, 1}, {32, 32, 14, 14, 1, 1, 2}, {64, 64, 7, 7, 1, 1, 1},   {1, 16, 28, 28, 1, 1, 3},
      {16, 32, 14, 14, 1, 1, 1}, {32, 64, 7, 7, 1, 1, 2},   {3, 9, 11, 13, 1, 1, 1},   {9, 17, 5, 6, 0, 0, 1},
      {17, 3, 9, 9, 1, 1, 2},    {1, 1, 3, 3, 0, 0, 1},     {13, 24, 30, 10, 1, 1, 4}, {8, 40, 4, 20, 1, 1, 1},
      {5, 8, 7, 5, 1, 1, 1},     {20, 33, 6, 6, 1, 1, 5},   {12, 9, 14, 14, 1, 1, 1},  {27, 18, 7, 7, 1, 1, 1},
      {18, 26, 7, 7, 1, 1, 1},   {6, 7, 30, 30, 1, 1, 2},   {4, 5, 26, 26, 1, 1, 1},   {11, 12, 22, 22, 1, 1, 3}};
  int variant = 0;
  for (const auto& s : shapes) {
    const std::size_t cin = s[0], cout = s[1], h = s[2], wd = s[3], ph = s[4], pw = s[5], parts = s[6];
    const std::size_t ho = h + 2 * ph - 2, wo = wd + 2 * pw - 2;
    const std::size_t tx = (wo + 3) / 4, ty = (ho + 3) / 4, hpp = 4 * ty + 2, wpp = 4 * tx + 2, tiles = tx * ty;
    const std::size_t cin_p = (cin + 7) / 8 * 8;
    const std::vector<float> x = c.rng.floats(cin * h * wd), w = c.rng.floats(cout * cin * 9, -0.5f, 0.5f);
    const std::vector<float> bias = c.rng.floats(cout), res = c.rng.floats(cout * ho * wo);
    std::vector<float> xh(cin_p * hpp * wpp);
    pack(cin, h, wd, ph, pw, x.data(), xh.data(), hpp, wpp);
    for (int flags = 0; flags < 8; ++flags, ++variant) {
      // ResNet's real combinations always, the others on alternate shapes
      const bool with_bias = (flags & 1) != 0, with_res = (flags & 2) != 0, relu = (flags & 4) != 0;
      if (flags != 5 && flags != 7 && flags != 0 && (variant % 2) != 0) continue;
      const runtime::WinogradWeight packed =
          runtime::pack_winograd(w.data(), cout, cin, nullptr, with_bias ? bias.data() : nullptr);
      const float* const pb = packed.bias.empty() ? nullptr : packed.bias.data();
      const float* const pr = with_res ? res.data() : nullptr;
      auto run = [&](pakd::F32Wino4x4Fn fn, std::vector<float>& y) {
        const std::size_t chunk = (tiles + parts - 1) / parts;
        for (std::size_t t0 = 0; t0 < tiles; t0 += chunk) {
          fn(t0, t0 + chunk < tiles ? t0 + chunk : tiles, tx, cin, cin_p, cout, packed.u.data(), pb, relu ? 1 : 0, pr,
             xh.data(), hpp, wpp, y.data(), ho, wo);
        }
      };
      const std::string what = format("cin=%zu cout=%zu %zux%zu pad=%zu,%zu parts=%zu bias=%d res=%d relu=%d", cin,
                                      cout, h, wd, ph, pw, parts, with_bias, with_res, relu);
      std::vector<float> want(cout * ho * wo, -9.0f);
      run(table.reference().fn, want);
      if (c.use(table.reference())) {  // the reference itself against the direct convolution
        const std::vector<float> exact =
            direct_conv(x, w, with_bias ? bias.data() : nullptr, pr, relu, cin, h, wd, cout, ph, pw);
        c.expect_close(table.reference(), what + " vs direct", want.data(), exact.data(), want.size(), 1e-4f);
      }
      for (const auto& kernel : table) {
        if (!c.use(kernel)) continue;
        std::vector<float> got(cout * ho * wo, -9.0f);
        run(kernel.fn, got);
        c.expect_close(kernel, what, got.data(), want.data(), got.size(), 1e-4f);
      }
    }
  }
}

}  // namespace pakd::check
