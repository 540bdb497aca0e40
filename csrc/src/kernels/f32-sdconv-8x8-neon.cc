// Sparse direct stride-1 convolution with NEON over 2-D output tiles of up
// to 8 output rows x 8 output columns (AArch64; 4 rows on 32-bit ARM with
// its 16 q-registers): per row two q-register accumulators, so a full tile
// keeps 16 independent FMA chains. Per nonzero tap: its offset and value,
// per row one pair load of the 8 input columns and two FMAs by lane (32
// instructions for 64 multiply-adds in a full tile, two taps a pass; ~0.55
// instructions per tap and output position on cortex-a72 with the tile
// overheads, LeNet-5 shapes). The output rows of a channel are split into
// passes of (nearly) equal height, so 10 rows run as 5 + 5, not 8 + 2 (the
// per-tap overhead is shared by more rows). The row stride is a compile-time
// constant for the layouts kernels of width <= 25 give (16 or 32 floats), so
// the row loads take immediate offsets. The last, partial column tile is
// computed whole (the layout keeps its reads inside the tile's rows) and
// stored through a buffer.
// Contract: F32SparseDconvFn in kernels/kernels.h.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace {

#if defined(__aarch64__)
constexpr std::size_t kMaxRows = 8;
inline float32x4_t fma_n(float32x4_t acc, float32x4_t x, float v) { return vfmaq_n_f32(acc, x, v); }
#else
constexpr std::size_t kMaxRows = 4;
inline float32x4_t fma_n(float32x4_t acc, float32x4_t x, float v) { return vmlaq_n_f32(acc, x, v); }
#endif

// GCC's first scheduling pass hoists all 16 row loads of a tap above the
// FMAs and spills accumulators (36 instructions a tap with 2 spills vs 33):
// keep source order.
#if defined(__GNUC__) && !defined(__clang__)
#define PAKD_SDCONV_NO_SCHED __attribute__((optimize("no-schedule-insns")))
#else
#define PAKD_SDCONV_NO_SCHED
#endif

// One tile of R rows x 8 columns; RS: the row stride when fixed at compile
// time (0: rs). Stores `cols` (<= 8) columns of each row. Per tap the rows'
// loads go in groups of 4 ahead of their FMAs.
template <std::size_t R, std::size_t RS>
PAKD_SDCONV_NO_SCHED void tile(std::uint32_t j0, std::uint32_t j1, const std::uint32_t* __restrict offsets,
                               const float* __restrict values, const float* __restrict x, std::size_t rs_runtime,
                               float* __restrict y, std::size_t wo, std::size_t cols) {
  constexpr std::size_t G = 4;
  const std::size_t rs = RS != 0 ? RS : rs_runtime;
  float32x4_t lo[R], hi[R];
#pragma GCC unroll 8
  for (std::size_t r = 0; r < R; ++r) {
    lo[r] = vdupq_n_f32(0.0f);
    hi[r] = lo[r];
  }
  auto tap = [&](const float* xa, float v) {
#pragma GCC unroll 8
    for (std::size_t r = 0; r < R; r += G) {
      float32x4_t a[G], b[G];
      const std::size_t n = R - r < G ? R - r : G;
#pragma GCC unroll 4
      for (std::size_t g = 0; g < n; ++g) {
        a[g] = vld1q_f32(xa + (r + g) * rs);
        b[g] = vld1q_f32(xa + (r + g) * rs + 4);
      }
#pragma GCC unroll 4
      for (std::size_t g = 0; g < n; ++g) {
        lo[r + g] = fma_n(lo[r + g], a[g], v);
        hi[r + g] = fma_n(hi[r + g], b[g], v);
      }
    }
  };
  const std::uint32_t* o = offsets + j0;
  const std::uint32_t* const o_end = offsets + j1;
  const float* v = values + j0;
  for (; o_end - o >= 2; o += 2, v += 2) {  // two taps a pass: one loop test
    tap(x + o[0], v[0]);
    tap(x + o[1], v[1]);
  }
  if (o != o_end) tap(x + o[0], v[0]);
  if (cols == 8) {
#pragma GCC unroll 8
    for (std::size_t r = 0; r < R; ++r) {
      vst1q_f32(y + r * wo, lo[r]);
      vst1q_f32(y + r * wo + 4, hi[r]);
    }
  } else {
#pragma GCC unroll 8
    for (std::size_t r = 0; r < R; ++r) {
      float buf[8];
      vst1q_f32(buf, lo[r]);
      vst1q_f32(buf + 4, hi[r]);
      for (std::size_t u = 0; u < cols; ++u) y[r * wo + u] = buf[u];
    }
  }
}

using TileFn = void (*)(std::uint32_t, std::uint32_t, const std::uint32_t*, const float*, const float*, std::size_t,
                        float*, std::size_t, std::size_t);

template <std::size_t RS>
TileFn tile_fn(std::size_t rows) {
  switch (rows) {
    case 1: return &tile<1, RS>;
    case 2: return &tile<2, RS>;
    case 3: return &tile<3, RS>;
#if defined(__aarch64__)
    case 4: return &tile<4, RS>;
    case 5: return &tile<5, RS>;
    case 6: return &tile<6, RS>;
    case 7: return &tile<7, RS>;
    default: return &tile<8, RS>;
#else
    default: return &tile<4, RS>;
#endif
  }
}

TileFn pick(std::size_t rows, std::size_t rs) {
  if (rs == 16) return tile_fn<16>(rows);
  if (rs == 32) return tile_fn<32>(rows);
  return tile_fn<0>(rows);
}

}  // namespace

void pakd_f32_sdconv_ukernel_8x8__neon(std::size_t oc_begin, std::size_t oc_end, std::size_t ho, std::size_t wo,
                                       std::size_t rs, std::size_t ts, const std::uint32_t* row_ptr,
                                       const std::uint32_t* offsets, const float* values, const float* x, float* y,
                                       std::size_t ldy) {
  if (ho == 0 || wo == 0) return;
  // passes of nearly equal height: the first `extra` passes take one row more
  const std::size_t passes = (ho + kMaxRows - 1) / kMaxRows, base = ho / passes, extra = ho % passes;
  const TileFn tall = pick(base + 1, rs), low = pick(base, rs);
  constexpr std::size_t C = pakd::kSdconvTileCols;
  for (std::size_t oc = oc_begin; oc < oc_end; ++oc) {
    const std::uint32_t j0 = row_ptr[oc], j1 = row_ptr[oc + 1];
    float* yc = y + oc * ldy;
    for (std::size_t t = 0; C * t < wo; ++t) {
      const std::size_t cols = wo - C * t < C ? wo - C * t : C;
      const float* xt = x + t * ts;
      std::size_t oy = 0;
      for (std::size_t p = 0; p < passes; ++p) {
        const std::size_t rows = p < extra ? base + 1 : base;
        (p < extra ? tall : low)(j0, j1, offsets, values, xt + oy * rs, rs, yc + oy * wo + C * t, wo, cols);
        oy += rows;
      }
    }
  }
}
