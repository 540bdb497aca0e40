// The blocked format of the batch-1 sparse matrix-vector kernels
// (F32BlockSpmvFn in kernels/kernels.h), built from CSR at load. Portable.
#include <algorithm>

#include "kernels/kernels.h"

namespace pakd {
namespace {

// Calls step(slice, panel, t, lane_col[8], lane_pos[8]) for every step of
// the blocked format, in storage order; lane_pos[r] is the CSR position of
// lane r's nonzero or -1 for padding. Returns the number of steps.
template <class Step>
std::size_t for_each_step(std::size_t m, std::size_t k, const std::uint32_t* row_ptr, const std::uint32_t* col_idx,
                          Step&& step) {
  constexpr std::size_t R = kBlockSpmvRows, C = kBlockSpmvCols;
  const std::size_t panels = (k + C - 1) / C;
  std::size_t steps = 0;
  for (std::size_t s = 0; s * R < m; ++s) {
    const std::size_t rows = std::min(R, m - s * R);
    std::uint32_t next[R];  // per lane: the next CSR position (columns ascend within a row)
    for (std::size_t r = 0; r < rows; ++r) next[r] = row_ptr[s * R + r];
    for (std::size_t p = 0; p < panels; ++p) {
      const std::uint32_t end_col = static_cast<std::uint32_t>((p + 1) * C);
      for (std::size_t t = 0;; ++t) {
        int lane_col[R] = {};
        std::int64_t lane_pos[R];
        bool any = false;
        for (std::size_t r = 0; r < R; ++r) {
          lane_pos[r] = -1;
          if (r < rows && next[r] < row_ptr[s * R + r + 1] && col_idx[next[r]] < end_col) {
            lane_pos[r] = static_cast<std::int64_t>(next[r]);
            lane_col[r] = static_cast<int>(col_idx[next[r]] - p * C);
            ++next[r];
            any = true;
          }
        }
        if (!any) break;
        step(s, p, steps, lane_col, lane_pos);
        ++steps;
      }
    }
  }
  return steps;
}

}  // namespace

std::size_t block_spmv_steps(std::size_t m, std::size_t k, const std::uint32_t* row_ptr, const std::uint32_t* col_idx) {
  if ((k + kBlockSpmvCols - 1) / kBlockSpmvCols > kBlockSpmvMaxPanels) return 0;
  return for_each_step(m, k, row_ptr, col_idx,
                       [](std::size_t, std::size_t, std::size_t, const int*, const std::int64_t*) {});
}

void block_spmv_pack(std::size_t m, std::size_t k, const std::uint32_t* row_ptr, const std::uint32_t* col_idx,
                     const float* values, std::uint32_t* slice_ptr, std::uint32_t* words, float* packed) {
  const std::size_t slices = (m + kBlockSpmvRows - 1) / kBlockSpmvRows;
  std::fill(slice_ptr, slice_ptr + slices + 1, 0u);
  for_each_step(m, k, row_ptr, col_idx,
                [&](std::size_t s, std::size_t p, std::size_t t, const int* lane_col, const std::int64_t* lane_pos) {
                  std::uint32_t word = static_cast<std::uint32_t>(p) << 24;
                  for (std::size_t r = 0; r < kBlockSpmvRows; ++r) {
                    word |= static_cast<std::uint32_t>(lane_col[r]) << (3 * r);
                    packed[t * kBlockSpmvRows + r] = lane_pos[r] >= 0 ? values[lane_pos[r]] : 0.0f;
                  }
                  words[t] = word;
                  slice_ptr[s + 1] = static_cast<std::uint32_t>(t + 1);
                });
  for (std::size_t s = 1; s <= slices; ++s) slice_ptr[s] = std::max(slice_ptr[s], slice_ptr[s - 1]);
}

}  // namespace pakd
