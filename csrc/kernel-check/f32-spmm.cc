// f32-spmm and f32-cbspmm: CSR x dense (n == 1 is the batch-1 matrix-vector
// product) with f32 or u8-codebook values, over densities from 5% to 90%,
// empty rows, row ranges that do not start at 0, and padded strides.
#include <cstdint>

#include "kernel-check/kernel-check.h"

namespace pakd::check {
namespace {

struct Csr {
  std::vector<std::uint32_t> row_ptr, col_idx;
  std::vector<float> values;
  std::vector<std::uint8_t> codes;
};

Csr random_csr(Rng& rng, std::size_t m, std::size_t k, double density, std::size_t table) {
  Csr a;
  a.row_ptr.push_back(0);
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < k; ++j) {
      if (!rng.chance(density)) continue;
      a.col_idx.push_back(static_cast<std::uint32_t>(j));
      a.values.push_back(rng.uniform());
      a.codes.push_back(static_cast<std::uint8_t>(rng.below(table)));
    }
    a.row_ptr.push_back(static_cast<std::uint32_t>(a.col_idx.size()));
  }
  return a;
}

const std::size_t kShapes[][3] = {{13, 29, 1}, {7, 40, 37}, {33, 5, 70}, {120, 400, 1}, {9, 64, 17}, {4, 3, 100}};
const double kDensities[] = {0.05, 0.3, 0.9};

}  // namespace

PAKD_KERNEL_CHECK("f32-spmm") {
  const auto& table = runtime::f32_spmm_kernels();
  for (const auto& s : kShapes) {
    for (double density : kDensities) {
      const std::size_t m = s[0], k = s[1], n = s[2], ldx = n + 1, ldy = n + 2;
      const Csr a = random_csr(c.rng, m, k, density, 1);
      const std::vector<float> x = c.rng.floats(k * ldx), bias = c.rng.floats(m);
      for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
        const std::size_t m0 = m > 2 ? 1 : 0;  // a range that does not start at row 0
        std::vector<float> want(m * ldy, -7.0f);
        table.reference().fn(m0, m, n, a.row_ptr.data(), a.col_idx.data(), a.values.data(), b, x.data(), ldx,
                             want.data(), ldy);
        for (const auto& kernel : table) {
          if (!c.use(kernel)) continue;
          std::vector<float> got(m * ldy, -7.0f);
          kernel.fn(m0, m, n, a.row_ptr.data(), a.col_idx.data(), a.values.data(), b, x.data(), ldx, got.data(), ldy);
          c.expect_close(kernel, format("m=%zu k=%zu n=%zu density=%.2f bias=%d", m, k, n, density, b != nullptr),
                         got.data(), want.data(), got.size(), 1e-5f);
        }
      }
    }
  }
}

PAKD_KERNEL_CHECK("f32-cbspmm") {
  const auto& table = runtime::f32_cbspmm_kernels();
  for (const auto& s : kShapes) {
    for (double density : kDensities) {
      for (std::size_t entries : {std::size_t{17}, std::size_t{256}}) {
        const std::size_t m = s[0], k = s[1], n = s[2], ldx = n, ldy = n + 1;
        const Csr a = random_csr(c.rng, m, k, density, entries);
        const std::vector<float> x = c.rng.floats(k * ldx), bias = c.rng.floats(m), codebook = c.rng.floats(entries);
        std::vector<float> want(m * ldy, -7.0f);
        table.reference().fn(0, m, n, a.row_ptr.data(), a.col_idx.data(), a.codes.data(), codebook.data(), bias.data(),
                             x.data(), ldx, want.data(), ldy);
        for (const auto& kernel : table) {
          if (!c.use(kernel)) continue;
          std::vector<float> got(m * ldy, -7.0f);
          kernel.fn(0, m, n, a.row_ptr.data(), a.col_idx.data(), a.codes.data(), codebook.data(), bias.data(), x.data(),
                    ldx, got.data(), ldy);
          c.expect_close(kernel, format("m=%zu k=%zu n=%zu density=%.2f table=%zu", m, k, n, density, entries),
                         got.data(), want.data(), got.size(), 1e-5f);
        }
      }
    }
  }
}

}  // namespace pakd::check
