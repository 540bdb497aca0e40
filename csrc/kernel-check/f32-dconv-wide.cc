// f32-dconv-wide: the wide-row direct stride-1 convolution (4 output channels x
// 24 positions) over the real model shapes (LeNet-5's 1 -> 6 5x5 pad 2 on
// 28x28 and 6 -> 16 5x5 on 14x14, ResNet-20's 16/32/64-channel 3x3 layers on
// 28x28/14x14/7x7, a pruned one's 6 -> 5 and 9 -> 7) and awkward ones: 1..20
// input channels, 1x1/3x3/5x5 kernels, output channel counts with last blocks
// of 1..3 channels (3x3: the last 5 or 6 in one pass), ranges that start past
// block 0, a padded ldy (the rows past oc_end and the columns past n stay
// untouched). Weights packed by the session's pack_direct_conv.
#include "kernel-check/kernel-check.h"
#include "runtime/pack.h"

namespace pakd::check {

PAKD_KERNEL_CHECK("f32-dconv-wide") {
  const auto& table = runtime::f32_dconv_wide_kernels();
  // cin, h, w, cout, k, pad
  const std::size_t shapes[][6] = {
      {1, 28, 28, 6, 5, 2}, {6, 14, 14, 16, 5, 0}, {16, 28, 28, 16, 3, 1}, {32, 14, 14, 32, 3, 1}, {64, 7, 7, 64, 3, 1},
      {3, 9, 11, 5, 3, 1},  {20, 6, 7, 7, 3, 0},   {1, 5, 5, 1, 1, 0},     {7, 12, 10, 3, 5, 2},   {2, 4, 4, 2, 3, 1},
      {13, 8, 9, 10, 1, 0}, {20, 10, 10, 9, 3, 1}, {5, 3, 30, 11, 3, 1},   {4, 6, 6, 13, 5, 2},    {6, 28, 28, 5, 3, 1},
      {9, 14, 14, 7, 3, 1}, {3, 5, 4, 6, 3, 0},    {6, 28, 28, 6, 3, 1},   {2, 7, 9, 6, 3, 1},     {5, 6, 6, 10, 3, 1}};
  for (const auto& s : shapes) {
    const std::size_t cin = s[0], h = s[1], w = s[2], cout = s[3], k = s[4], pad = s[5];
    const std::size_t hp = h + 2 * pad, wp = w + 2 * pad, ho = hp - k + 1, plane = hp * wp;
    const std::size_t n = (ho * wp + kDconvTile - 1) / kDconvTile * kDconvTile, ldy = n + 5;
    const std::size_t taps = cin * k * k;
    // the padded planes and the kernel's read slack past them (values need not be zero here)
    const std::vector<float> x = c.rng.floats(cin * plane + (n - ho * wp) + k);
    const std::vector<float> wts = c.rng.floats(cout * taps);
    const runtime::DirectConvWeight packed = runtime::pack_direct_conv(wts.data(), cout, taps, kDconvOcBlock);
    for (std::size_t oc_begin : {std::size_t{0}, std::size_t{4}}) {
      if (oc_begin >= cout) continue;
      // the whole range and one ending inside a block (a 1..3-channel tail) when possible
      for (std::size_t oc_end : {cout, cout > oc_begin + 5 ? cout - 2 : cout}) {
        std::vector<float> want(cout * ldy, -7.0f);
        table.reference().fn(oc_begin, oc_end, n, cin, k, k, wp, plane, packed.packed.data(), x.data(), want.data(),
                             ldy);
        for (const auto& kernel : table) {
          if (!c.use(kernel)) continue;
          std::vector<float> got(cout * ldy, -7.0f);
          kernel.fn(oc_begin, oc_end, n, cin, k, k, wp, plane, packed.packed.data(), x.data(), got.data(), ldy);
          c.expect_close(kernel,
                         format("cin=%zu %zux%zu cout=%zu k=%zu pad=%zu oc=[%zu,%zu) n=%zu", cin, h, w, cout, k, pad,
                                oc_begin, oc_end, n),
                         got.data(), want.data(), got.size(), 1e-5f);
        }
      }
    }
  }
}

}  // namespace pakd::check
