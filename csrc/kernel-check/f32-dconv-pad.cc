// f32-dconv-pad: the direct convolutions' input pass (zero-padded planes),
// bit-exact, over the model shapes (LeNet-5 28x28 pad 2 and 14x14 pad 0,
// ResNet-20 pad 1 at 28/14/7) and rows narrower than a vector, paddings of
// 0..5 on either side; every element of the planes must be written (the
// buffer starts at 1e30).
#include "kernel-check/kernel-check.h"

namespace pakd::check {

PAKD_KERNEL_CHECK("f32-dconv-pad") {
  const auto& table = runtime::f32_dconv_pad_kernels();
  // cin, h, w, ph, pw
  const std::size_t shapes[][5] = {{1, 28, 28, 2, 2}, {6, 14, 14, 0, 0}, {16, 28, 28, 1, 1}, {64, 7, 7, 1, 1},
                                   {3, 1, 1, 1, 1},   {5, 3, 7, 2, 0},   {2, 5, 3, 0, 3},    {20, 7, 7, 1, 1},
                                   {4, 13, 17, 2, 2}, {1, 2, 5, 3, 1},   {7, 9, 33, 1, 2},   {2, 6, 12, 1, 4},
                                   {3, 4, 20, 0, 1},  {2, 3, 2, 1, 1},   {6, 28, 28, 1, 1},  {3, 5, 16, 1, 5}};
  for (const auto& s : shapes) {
    const std::size_t cin = s[0], h = s[1], w = s[2], ph = s[3], pw = s[4];
    const std::size_t size = cin * (h + 2 * ph) * (w + 2 * pw);
    const std::vector<float> x = c.rng.floats(cin * h * w);
    std::vector<float> want(size, 1e30f);
    table.reference().fn(cin, h, w, ph, pw, x.data(), want.data());
    for (const auto& kernel : table) {
      if (!c.use(kernel)) continue;
      std::vector<float> got(size, 1e30f);
      kernel.fn(cin, h, w, ph, pw, x.data(), got.data());
      c.expect_close(kernel, format("cin=%zu %zux%zu pad=(%zu,%zu)", cin, h, w, ph, pw), got.data(), want.data(), size,
                     0.0f);
    }
  }
}

}  // namespace pakd::check
