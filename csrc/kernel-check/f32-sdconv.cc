// f32-sdconv: sparse direct stride-1 convolution over 8-column output tiles,
// on the session's packing (pack_sparse_direct_conv, sdconv_pack_input): the
// LeNet-5 and ResNet-20 shapes, odd channel counts (1..20), output widths past
// every multiple of 8, heights that split unevenly into row tiles, 3x3, 5x5
// and wider kernels (both compile-time row strides and a runtime one),
// densities from 5% to 90%, output channels with no nonzero tap, channel
// ranges that do not start at 0, and a padded output stride.
#include <cstdint>

#include "kernel-check/kernel-check.h"
#include "kernels/kernels.h"
#include "runtime/pack.h"

namespace pakd::check {
namespace {

struct Shape {
  std::size_t cin, cout, h, w, kh, kw, ph, pw;
};

const Shape kShapes[] = {
    {1, 6, 28, 28, 5, 5, 2, 2},    // LeNet-5 conv1
    {6, 16, 14, 14, 5, 5, 0, 0},   // LeNet-5 conv2
    {3, 16, 32, 32, 3, 3, 1, 1},   // ResNet-20 stem
    {16, 16, 32, 32, 3, 3, 1, 1},  // ResNet-20 stage 1
    {32, 32, 16, 16, 3, 3, 1, 1},  // stage 2
    {64, 64, 8, 8, 3, 3, 1, 1},    // stage 3
    {5, 7, 9, 13, 3, 3, 0, 0},     // 7 x 11
    {2, 3, 5, 21, 5, 5, 1, 1},     // 3 x 19
    {1, 1, 1, 9, 3, 3, 1, 1},      // 1 x 9
    {20, 20, 11, 11, 5, 5, 2, 2},  // 11 x 11
    {3, 4, 30, 30, 3, 3, 1, 1},    // 30 rows: 8 + 8 + 7 + 7
    {4, 5, 17, 23, 7, 7, 3, 3},    // 17 x 23, 7x7
    {3, 9, 12, 20, 3, 11, 1, 0},   // row stride 32
    {2, 3, 6, 40, 1, 27, 0, 1},    // row stride 48 (not a compile-time one)
    {9, 13, 10, 4, 3, 3, 1, 1},    // 10 x 4: one partial tile
};
const double kDensities[] = {0.05, 0.3, 0.6, 0.9};

}  // namespace

PAKD_KERNEL_CHECK("f32-sdconv") {
  const auto& table = runtime::f32_sdconv_kernels();
  for (const Shape& s : kShapes) {
    for (double density : kDensities) {
      const std::size_t ho = s.h + 2 * s.ph - s.kh + 1, wo = s.w + 2 * s.pw - s.kw + 1, hp = s.h + 2 * s.ph;
      const std::size_t taps = s.cin * s.kh * s.kw, ldy = ho * wo + 3;
      std::vector<float> w(s.cout * taps, 0.0f);
      for (std::size_t oc = 0; oc < s.cout; ++oc) {
        if (s.cout > 2 && oc % 5 == 1) continue;  // a channel with no nonzero tap
        for (std::size_t i = 0; i < taps; ++i) {
          if (c.rng.chance(density)) w[oc * taps + i] = c.rng.uniform();
        }
      }
      const runtime::SparseDconvWeight p =
          runtime::pack_sparse_direct_conv(w.data(), s.cout, s.cin, s.kh, s.kw, hp, wo);
      const std::vector<float> x = c.rng.floats(s.cin * s.h * s.w);
      const std::size_t rs = sdconv_row_stride(s.kw), ts = hp * rs;
      std::vector<float> xp(sdconv_input_size(s.cin, hp, wo, s.kw) + 16);
      float* xt = xp.data() + (16 - reinterpret_cast<std::uintptr_t>(xp.data()) % 64 / sizeof(float)) % 16;
      sdconv_pack_input(x.data(), s.cin, s.h, s.w, s.ph, s.pw, wo, s.kw, xt);
      const std::size_t oc0 = s.cout > 2 ? 1 : 0;  // a range that does not start at channel 0
      std::vector<float> want(s.cout * ldy, -7.0f);
      table.reference().fn(oc0, s.cout, ho, wo, rs, ts, p.row_ptr.data(), p.offsets.data(), p.values.data(), xt,
                           want.data(), ldy);
      for (const auto& kernel : table) {
        if (!c.use(kernel)) continue;
        std::vector<float> got(s.cout * ldy, -7.0f);
        kernel.fn(oc0, s.cout, ho, wo, rs, ts, p.row_ptr.data(), p.offsets.data(), p.values.data(), xt, got.data(),
                  ldy);
        c.expect_close(kernel,
                       format("cin=%zu cout=%zu %zux%zu k=%zux%zu pad=%zu,%zu density=%.2f", s.cin, s.cout, s.h, s.w,
                              s.kh, s.kw, s.ph, s.pw, density),
                       got.data(), want.data(), got.size(), 1e-5f);
      }
    }
  }
}

}  // namespace pakd::check
