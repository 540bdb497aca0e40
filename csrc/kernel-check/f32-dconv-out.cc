// f32-dconv-out: the wide-row output pass act(wide * scale + bias + res)
// against the reference at 1e-6 (an ulp apart where a compiler fuses
// wide * scale + bias into an FMA in one kernel and not the other: AVX2 with
// -mfma against the host's scalar; on AArch64 both fuse, bit-identical), with every combination of scale, bias,
// residual (each may be absent) and ReLU, over the model shapes (LeNet-5's
// 28x28 of 32-wide rows and 10x10 of 14, ResNet-20's 28/14/7 with wp = wo + 2)
// and rows narrower than a vector; channel ranges not starting at 0; a few
// NaN, -0 and negative values (ReLU: NaN -> 0, -0 -> +0).
#include <limits>

#include "kernel-check/kernel-check.h"

namespace pakd::check {

PAKD_KERNEL_CHECK("f32-dconv-out") {
  const auto& table = runtime::f32_dconv_out_kernels();
  // wp, ho, wo, channels
  const std::size_t shapes[][4] = {{32, 28, 28, 6}, {14, 10, 10, 16}, {30, 28, 28, 5}, {16, 14, 14, 3}, {9, 7, 7, 7},
                                   {5, 3, 3, 2},    {4, 2, 2, 3},     {12, 5, 9, 4},   {8, 6, 6, 1},    {7, 4, 5, 9}};
  for (const auto& s : shapes) {
    const std::size_t wp = s[0], ho = s[1], wo = s[2], cout = s[3];
    const std::size_t n = (ho * wp + kDconvTile - 1) / kDconvTile * kDconvTile;
    std::vector<float> wide = c.rng.floats(cout * n, -2.0f, 2.0f);
    wide[0] = std::numeric_limits<float>::quiet_NaN();
    if (wide.size() > 5) wide[5] = -0.0f;
    const std::vector<float> scale = c.rng.floats(cout, 0.5f, 1.5f), bias = c.rng.floats(cout);
    const std::vector<float> res = c.rng.floats(cout * ho * wo);
    const std::size_t c0 = cout > 2 ? 1 : 0;
    for (int flags = 0; flags < 16; ++flags) {
      const float* ps = flags & 1 ? scale.data() : nullptr;
      const float* pb = flags & 2 ? bias.data() : nullptr;
      const float* pr = flags & 4 ? res.data() : nullptr;
      const int relu = flags & 8 ? 1 : 0;
      std::vector<float> want(cout * ho * wo, -7.0f);
      table.reference().fn(c0, cout, n, wp, ho, wo, wide.data(), ps, pb, pr, relu, want.data());
      for (const auto& kernel : table) {
        if (!c.use(kernel)) continue;
        std::vector<float> got(cout * ho * wo, -7.0f);
        kernel.fn(c0, cout, n, wp, ho, wo, wide.data(), ps, pb, pr, relu, got.data());
        c.expect_close(kernel,
                       format("wp=%zu %zux%zu c=[%zu,%zu) scale=%d bias=%d res=%d relu=%d", wp, ho, wo, c0, cout,
                              ps != nullptr, pb != nullptr, pr != nullptr, relu),
                       got.data(), want.data(), got.size(), 1e-6f);
      }
    }
  }
}

}  // namespace pakd::check
