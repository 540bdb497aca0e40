// f32-dconv-oc: the direct convolution over tiles of 6 positions x 16 output
// channels, strides 1 and 2, over the real model shapes (LeNet-5's 1 -> 6 5x5
// pad 2 on 28x28 and 6 -> 16 5x5 on 14x14, ResNet-20's 3x3 layers and its
// stride-2 3x3 and 1x1 shortcut layers, a pruned one's with 12 / 27 / 9 / 18
// channels) and awkward ones: 1..20 input channels, 1x1/3x3/5x5 kernels,
// output channels past every multiple of 4 and 16, position ranges that
// neither start nor end on a tile, channel ranges starting at block 1, a
// padded ldy (everything outside the ranges stays untouched). The input is
// exactly the padded planes (the kernel reads only inside them). Weights
// packed by the session's pack_direct_conv.
#include "kernel-check/kernel-check.h"
#include "runtime/pack.h"

namespace pakd::check {

PAKD_KERNEL_CHECK("f32-dconv-oc") {
  const auto& table = runtime::f32_dconv_oc_kernels();
  // cin, h, w, cout, k, pad, stride
  const std::size_t shapes[][7] = {
      {6, 14, 14, 16, 5, 0, 1},  {1, 28, 28, 6, 5, 2, 1},   {16, 28, 28, 32, 3, 1, 2}, {32, 14, 14, 64, 3, 1, 2},
      {16, 28, 28, 32, 1, 0, 2}, {32, 14, 14, 64, 1, 0, 2}, {64, 7, 7, 64, 3, 1, 1},   {16, 28, 28, 16, 3, 1, 1},
      {3, 9, 11, 5, 3, 1, 1},    {20, 6, 7, 17, 3, 0, 2},   {1, 5, 5, 1, 1, 0, 1},     {7, 12, 10, 33, 5, 2, 1},
      {5, 11, 13, 20, 3, 1, 2},  {2, 3, 3, 16, 3, 1, 1},    {9, 8, 8, 31, 1, 0, 1},    {4, 10, 9, 3, 5, 2, 2},
      {6, 28, 28, 12, 3, 1, 2},  {9, 14, 14, 27, 3, 1, 2},  {6, 28, 28, 9, 1, 0, 2},   {9, 14, 14, 18, 1, 0, 2}};
  for (const auto& s : shapes) {
    const std::size_t cin = s[0], h = s[1], w = s[2], cout = s[3], k = s[4], pad = s[5], stride = s[6];
    const std::size_t hp = h + 2 * pad, wp = w + 2 * pad, plane = hp * wp;
    const std::size_t ho = (hp - k) / stride + 1, wo = (wp - k) / stride + 1, np = ho * wo, ldy = np + 3;
    const std::size_t taps = cin * k * k;
    const std::vector<float> x = c.rng.floats(cin * plane);
    const std::vector<float> wts = c.rng.floats(cout * taps);
    const runtime::DirectConvWeight packed = runtime::pack_direct_conv(wts.data(), cout, taps, kDconvOcVector);
    const std::size_t ranges[][4] = {{0, cout, 0, np},
                                     {cout > 16 ? std::size_t{16} : std::size_t{0}, cout,
                                      np > 7 ? std::size_t{5} : std::size_t{0}, np > 7 ? np - 2 : np},
                                     {0, cout > 3 ? cout - 3 : cout, np > 13 ? std::size_t{13} : std::size_t{0}, np}};
    for (const auto& r : ranges) {
      const std::size_t oc_begin = r[0], oc_end = r[1], p_begin = r[2], p_end = r[3];
      std::vector<float> want(cout * ldy, -7.0f);
      table.reference().fn(oc_begin, oc_end, p_begin, p_end, cin, k, k, wp, wo, stride, plane, packed.packed.data(),
                           x.data(), want.data(), ldy);
      for (const auto& kernel : table) {
        if (!c.use(kernel)) continue;
        std::vector<float> got(cout * ldy, -7.0f);
        kernel.fn(oc_begin, oc_end, p_begin, p_end, cin, k, k, wp, wo, stride, plane, packed.packed.data(), x.data(),
                  got.data(), ldy);
        c.expect_close(kernel,
                       format("cin=%zu %zux%zu cout=%zu k=%zu pad=%zu stride=%zu oc=[%zu,%zu) p=[%zu,%zu)", cin, h, w,
                              cout, k, pad, stride, oc_begin, oc_end, p_begin, p_end),
                       got.data(), want.data(), got.size(), 1e-5f);
      }
    }
  }
}

}  // namespace pakd::check
