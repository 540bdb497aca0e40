// Sparse direct stride-1 convolution over 2-D output tiles, portable C++:
// per output channel, tiles of 4 output rows x 8 output columns per pass over
// the channel's nonzero taps (the 8-wide inner loops vectorize; 4 rows keep
// the accumulators in registers on 32-bit ARM too). Contract:
// F32SparseDconvFn in kernels/kernels.h.
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace {

constexpr std::size_t kRows = 4, kCols = 8;

// One tile of `rows` x `cols` outputs; R, C: compile-time bounds (full tiles
// get fixed trip counts the compiler vectorizes).
template <std::size_t R, std::size_t C>
void tile(std::size_t rows, std::size_t cols, std::uint32_t j0, std::uint32_t j1,
          const std::uint32_t* __restrict offsets, const float* __restrict values, const float* __restrict x,
          std::size_t rs, float* __restrict y, std::size_t wo) {
  float acc[kRows][kCols] = {};
  const std::size_t nr = R != 0 ? R : rows, nc = C != 0 ? C : cols;
  for (std::uint32_t j = j0; j < j1; ++j) {
    const float v = values[j];
    const float* xs = x + offsets[j];
    for (std::size_t r = 0; r < nr; ++r) {
      for (std::size_t t = 0; t < nc; ++t) acc[r][t] += v * xs[r * rs + t];
    }
  }
  for (std::size_t r = 0; r < nr; ++r) {
    for (std::size_t t = 0; t < nc; ++t) y[r * wo + t] = acc[r][t];
  }
}

}  // namespace

void pakd_f32_sdconv_ukernel_4x8__scalar(std::size_t oc_begin, std::size_t oc_end, std::size_t ho, std::size_t wo,
                                         std::size_t rs, std::size_t ts, const std::uint32_t* row_ptr,
                                         const std::uint32_t* offsets, const float* values, const float* x, float* y,
                                         std::size_t ldy) {
  for (std::size_t oc = oc_begin; oc < oc_end; ++oc) {
    const std::uint32_t j0 = row_ptr[oc], j1 = row_ptr[oc + 1];
    for (std::size_t oy = 0; oy < ho; oy += kRows) {
      const std::size_t rows = ho - oy < kRows ? ho - oy : kRows;
      for (std::size_t t = 0; kCols * t < wo; ++t) {
        const std::size_t cols = wo - kCols * t < kCols ? wo - kCols * t : kCols;
        const float* xt = x + t * ts + oy * rs;
        float* yt = y + oc * ldy + oy * wo + kCols * t;
        if (rows == kRows && cols == kCols) {
          tile<kRows, kCols>(rows, cols, j0, j1, offsets, values, xt, rs, yt, wo);
        } else {
          tile<0, 0>(rows, cols, j0, j1, offsets, values, xt, rs, yt, wo);
        }
      }
    }
  }
}
