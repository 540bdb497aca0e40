// qs8-gemm: int8 weights with per-row scales x int8 activations, exact int32
// sums: every kernel must give the reference's output to rounding of the
// final f32 scaling (tolerance 1e-6).
#include <cstdint>

#include "kernel-check/kernel-check.h"

namespace pakd::check {

PAKD_KERNEL_CHECK("qs8-gemm") {
  const auto& table = runtime::qs8_gemm_kernels();
  const std::size_t shapes[][3] = {{7, 29, 13}, {1, 65, 1}, {37, 3, 33}, {4, 16, 8}, {9, 400, 1}, {5, 1, 17}};
  for (const auto& s : shapes) {
    const std::size_t m = s[0], k = s[1], n = s[2], lda = k + 1, ldb = n + 3, ldy = n + 1;
    std::vector<std::int8_t> a(m * lda), b(k * ldb);
    for (auto& v : a) v = static_cast<std::int8_t>(static_cast<int>(c.rng.below(255)) - 127);
    for (auto& v : b) v = static_cast<std::int8_t>(static_cast<int>(c.rng.below(255)) - 127);
    const std::vector<float> a_scale = c.rng.floats(m, 0.5f, 1.5f), bias = c.rng.floats(m);
    const float b_scale = 0.0125f;
    std::vector<float> want(m * ldy, -7.0f);
    table.reference().fn(0, m, n, k, a.data(), lda, a_scale.data(), b.data(), ldb, b_scale, bias.data(), want.data(),
                         ldy);
    for (const auto& kernel : table) {
      if (!c.use(kernel)) continue;
      std::vector<float> got(m * ldy, -7.0f);
      kernel.fn(0, m, n, k, a.data(), lda, a_scale.data(), b.data(), ldb, b_scale, bias.data(), got.data(), ldy);
      c.expect_close(kernel, format("m=%zu k=%zu n=%zu", m, k, n), got.data(), want.data(), got.size(), 1e-6f);
    }
  }
}

}  // namespace pakd::check
