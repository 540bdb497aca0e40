// f32-epilogue: the in-place per-channel epilogue act(y * scale + bias + res),
// against the reference at 1e-6, as the Python tests (an ulp apart where a
// compiler fuses y * scale + bias into an FMA in one kernel and not the
// other; on AArch64 the NEON kernel is bit-identical), with every combination of scale, bias, residual (each may be
// absent) and ReLU, over model-like shapes (LeNet-5's 6 x 784 and 16 x 100,
// ResNet-20's 64 x 49) and rows shorter than a vector, position ranges that
// neither start nor end on a vector, padded row strides; a few NaN, -0 and
// negative values.
#include <limits>

#include "kernel-check/kernel-check.h"

namespace pakd::check {

PAKD_KERNEL_CHECK("f32-epilogue") {
  const auto& table = runtime::f32_epilogue_kernels();
  // channels, positions, ld
  const std::size_t shapes[][3] = {{6, 784, 784}, {16, 100, 100}, {5, 13, 16}, {3, 3, 3},
                                   {17, 49, 50},  {64, 49, 49},   {2, 1, 1},   {4, 37, 41}};
  for (const auto& s : shapes) {
    const std::size_t ch = s[0], sp = s[1], ld = s[2];
    std::vector<float> y = c.rng.floats(ch * ld, -2.0f, 2.0f);
    y[0] = std::numeric_limits<float>::quiet_NaN();
    if (y.size() > 2) y[2] = -0.0f;
    const std::vector<float> scale = c.rng.floats(ch, 0.5f, 1.5f), bias = c.rng.floats(ch);
    const std::vector<float> res = c.rng.floats(ch * ld);
    const std::size_t ranges[][4] = {
        {0, ch, 0, sp},
        {ch > 2 ? std::size_t{1} : std::size_t{0}, ch, sp > 2 ? std::size_t{1} : std::size_t{0}, sp > 2 ? sp - 1 : sp},
        {0, 1, sp > 3 ? std::size_t{3} : std::size_t{0}, sp}};
    for (const auto& r : ranges) {
      for (int flags = 0; flags < 16; ++flags) {
        const float* ps = flags & 1 ? scale.data() : nullptr;
        const float* pb = flags & 2 ? bias.data() : nullptr;
        const float* pr = flags & 4 ? res.data() : nullptr;
        const int relu = flags & 8 ? 1 : 0;
        std::vector<float> want = y;
        table.reference().fn(r[0], r[1], r[2], r[3], ld, ps, pb, pr, relu, want.data());
        for (const auto& kernel : table) {
          if (!c.use(kernel)) continue;
          std::vector<float> got = y;
          kernel.fn(r[0], r[1], r[2], r[3], ld, ps, pb, pr, relu, got.data());
          c.expect_close(kernel,
                         format("%zu x %zu ld=%zu c=[%zu,%zu) s=[%zu,%zu) scale=%d bias=%d res=%d relu=%d", ch, sp, ld,
                                r[0], r[1], r[2], r[3], ps != nullptr, pb != nullptr, pr != nullptr, relu),
                         got.data(), want.data(), got.size(), 1e-6f);
        }
      }
    }
  }
}

}  // namespace pakd::check
