// f32-wino4x4-pack: one sample into 8-channel-interleaved, zero-padded
// planes; bit-exact against the reference (data movement), every element of
// the output written (the buffers start filled with garbage). Channel counts
// past every multiple of 8 (1, 3, 9, 17), widths past 4 / 8 columns, several
// paddings, and the ResNet-20 shapes.
#include <vector>

#include "kernel-check/kernel-check.h"

namespace pakd::check {

PAKD_KERNEL_CHECK("f32-wino4x4-pack") {
  const auto& table = runtime::f32_wino4x4_pack_kernels();
  // cin, h, w, ph, pw
  const std::size_t shapes[][5] = {{1, 28, 28, 1, 1}, {16, 28, 28, 1, 1}, {32, 14, 14, 1, 1}, {64, 7, 7, 1, 1},
                                   {3, 5, 7, 0, 0},   {9, 11, 13, 2, 1},  {17, 6, 9, 1, 2},   {8, 1, 1, 1, 1},
                                   {24, 4, 12, 0, 3}, {5, 9, 3, 1, 0},    {33, 3, 17, 1, 1}};
  for (const auto& s : shapes) {
    const std::size_t cin = s[0], h = s[1], w = s[2], ph = s[3], pw = s[4];
    const std::size_t ho = h + 2 * ph - 2, wo = w + 2 * pw - 2;
    const std::size_t hpp = (ho + 3) / 4 * 4 + 2, wpp = (wo + 3) / 4 * 4 + 2;
    const std::size_t size = (cin + 7) / 8 * 8 * hpp * wpp;
    const std::vector<float> x = c.rng.floats(cin * h * w);
    std::vector<float> want(size, -3.0f);
    table.reference().fn(cin, h, w, ph, pw, x.data(), want.data(), hpp, wpp);
    for (const auto& kernel : table) {
      if (!c.use(kernel)) continue;
      std::vector<float> got(size, 5.0f);
      kernel.fn(cin, h, w, ph, pw, x.data(), got.data(), hpp, wpp);
      c.expect_close(kernel, format("cin=%zu h=%zu w=%zu ph=%zu pw=%zu", cin, h, w, ph, pw), got.data(), want.data(),
                     size, 0.0f);
    }
  }
}

}  // namespace pakd::check
