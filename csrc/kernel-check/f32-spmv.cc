// f32-spmv: the blocked batch-1 sparse matrix-vector product, on the
// session's packing (pack_block_spmv from CSR): LeNet-5's fully connected
// shapes, rows and columns past multiples of 8 (partial slices and panels),
// densities from 5% to 90%, empty rows, and slice ranges that do not start at 0.
#include <cstdint>

#include "kernel-check/kernel-check.h"
#include "kernels/kernels.h"
#include "runtime/pack.h"

namespace pakd::check {
namespace {

const std::size_t kShapes[][2] = {{120, 400}, {84, 120}, {10, 84}, {231, 336}, {13, 29},
                                  {7, 5},     {33, 64},  {64, 33}, {1, 1},     {17, 2048}};
const double kDensities[] = {0.05, 0.16, 0.3, 0.6, 0.9};

}  // namespace

PAKD_KERNEL_CHECK("f32-spmv") {
  const auto& table = runtime::f32_spmv_kernels();
  for (const auto& s : kShapes) {
    for (double density : kDensities) {
      const std::size_t m = s[0], k = s[1];
      std::vector<float> w(m * k, 0.0f);
      for (std::size_t i = 0; i < m; ++i) {
        if (m > 3 && i % 7 == 3) continue;  // an empty row
        for (std::size_t j = 0; j < k; ++j) {
          if (c.rng.chance(density)) w[i * k + j] = c.rng.uniform();
        }
      }
      const runtime::CsrWeight csr = runtime::csr_from_dense(w.data(), m, k);
      const std::size_t steps = runtime::block_spmv_steps(csr, m, k);
      if (steps == 0) continue;
      const runtime::BlockSpmvWeight p = runtime::pack_block_spmv(csr, m, k, steps);
      const std::vector<float> x = c.rng.floats(k);
      const std::size_t slices = (m + kBlockSpmvRows - 1) / kBlockSpmvRows;
      for (std::size_t s0 : {std::size_t{0}, slices > 1 ? std::size_t{1} : std::size_t{0}}) {
        std::vector<float> want(m + 5, -7.0f);
        table.reference().fn(m, k, s0, slices, p.slices.data(), p.words.data(), p.values.data(), x.data(), want.data());
        for (const auto& kernel : table) {
          if (!c.use(kernel)) continue;
          std::vector<float> got(m + 5, -7.0f);
          kernel.fn(m, k, s0, slices, p.slices.data(), p.words.data(), p.values.data(), x.data(), got.data());
          c.expect_close(kernel, format("m=%zu k=%zu density=%.2f slices from %zu", m, k, density, s0), got.data(),
                         want.data(), got.size(), 1e-5f);
        }
      }
    }
  }
}

}  // namespace pakd::check
