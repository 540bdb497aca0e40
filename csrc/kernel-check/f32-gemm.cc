// f32-gemm: C = A B over shapes with tails past every tile (m past 4/6/8 rows,
// n past 8/16 columns, k from 1), with padded leading dimensions.
#include "kernel-check/kernel-check.h"

namespace pakd::check {

PAKD_KERNEL_CHECK("f32-gemm") {
  const auto& table = runtime::f32_gemm_kernels();
  const std::size_t shapes[][3] = {{7, 29, 13},   {1, 33, 65},  {37, 17, 3}, {6, 16, 1},    {8, 8, 8},
                                   {5, 3, 2},     {12, 64, 9},  {1, 1, 1},   {25, 50, 27},  {16, 120, 400},
                                   {1, 120, 400}, {1, 84, 120}, {1, 10, 84}, {16, 196, 32}, {32, 49, 64},
                                   {3, 40, 70},   {9, 71, 300}};
  for (const auto& s : shapes) {
    const std::size_t m = s[0], n = s[1], k = s[2];
    for (std::size_t pad : {std::size_t{0}, std::size_t{3}}) {
      const std::size_t lda = k + pad, ldb = n + pad, ldc = n + 2 * pad;
      const std::vector<float> a = c.rng.floats(m * lda), b = c.rng.floats(k * ldb);
      std::vector<float> want(m * ldc, -7.0f);
      table.reference().fn(m, n, k, a.data(), lda, b.data(), ldb, want.data(), ldc);
      for (const auto& kernel : table) {
        if (!c.use(kernel)) continue;
        std::vector<float> got(m * ldc, -7.0f);
        kernel.fn(m, n, k, a.data(), lda, b.data(), ldb, got.data(), ldc);
        // the columns past n of each row stay untouched (-7) in both
        c.expect_close(kernel, format("m=%zu n=%zu k=%zu pad=%zu", m, n, k, pad), got.data(), want.data(), got.size(),
                       1e-5f);
      }
    }
  }
}

}  // namespace pakd::check
