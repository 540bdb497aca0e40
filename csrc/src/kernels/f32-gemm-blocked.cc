// Cache-blocked GEMM driver: loops, packing and edge handling (see the header
// for the blocking scheme). No ISA-specific code here.
#include "kernels/f32-gemm-blocked.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <memory>

namespace pakd {
namespace {

constexpr std::size_t kAlignFloats = 16;  // 64-byte (cache line) alignment

// Packing workspace: one uninitialized, 64-byte aligned float buffer per
// thread, grown on demand and reused by later calls on that thread. Reuse
// matters: a fresh ~0.5 MiB allocation per call is served by mmap and costs
// its page faults every time (~15% of a 256^3 GEMM). At most
// (MC + NC) * KC floats per thread (about 4.2 MiB with the AVX2 blocking).
// The packing routines write every element the micro-kernels read, so the
// buffer is never zero-filled.
float* workspace(std::size_t floats) {
  thread_local std::unique_ptr<float[]> storage;
  thread_local std::size_t capacity = 0;
  if (capacity < floats) {
    storage.reset();  // free the old buffer before allocating the new one
    capacity = 0;
    storage.reset(new float[floats + kAlignFloats]);
    capacity = floats;
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(storage.get());
  const std::size_t misalign = (addr / sizeof(float)) % kAlignFloats;
  return storage.get() + (misalign ? kAlignFloats - misalign : 0);
}

std::size_t round_up(std::size_t x, std::size_t to) { return (x + to - 1) / to * to; }

// Packs one full MR x kc panel of A: element (i, p) goes to out[p * MR + i].
// MR is a compile-time constant so the MR row reads of a k step unroll.
template <std::size_t MR>
void pack_a_panel(std::size_t kc, const float* a, std::size_t lda, float* out) {
  const float* rows[MR];
  for (std::size_t i = 0; i < MR; ++i) rows[i] = a + i * lda;
  for (std::size_t p = 0; p < kc; ++p) {
    for (std::size_t i = 0; i < MR; ++i) out[p * MR + i] = rows[i][p];
  }
}

// Packs A[0:mc, 0:kc] (row stride lda) into ceil(mc / mr) panels of mr x kc,
// panel by panel; inside a panel element (i, p) goes to p * mr + i. Rows past
// mc are zero, so the micro-kernel always sees full panels.
void pack_a(std::size_t mc, std::size_t kc, std::size_t mr, const float* a, std::size_t lda, float* out) {
  for (std::size_t ir = 0; ir < mc; ir += mr, out += mr * kc) {
    const std::size_t rows = std::min(mr, mc - ir);
    const float* const src = a + ir * lda;
    if (rows == mr) {  // fast paths for the tile heights in use
      if (mr == 4) {
        pack_a_panel<4>(kc, src, lda, out);
        continue;
      }
      if (mr == 6) {
        pack_a_panel<6>(kc, src, lda, out);
        continue;
      }
      if (mr == 8) {
        pack_a_panel<8>(kc, src, lda, out);
        continue;
      }
    }
    for (std::size_t p = 0; p < kc; ++p) {
      for (std::size_t i = 0; i < mr; ++i) {
        out[p * mr + i] = i < rows ? src[i * lda + p] : 0.0f;
      }
    }
  }
}

// Packs B[0:kc, 0:nc] (row stride ldb) into ceil(nc / nr) panels of kc x nr;
// inside a panel element (p, j) goes to p * nr + j. Columns past nc are zero.
// Reads B row by row (contiguous), writes each row segment to its panel.
void pack_b(std::size_t kc, std::size_t nc, std::size_t nr, const float* b, std::size_t ldb, float* out) {
  const std::size_t panel_size = kc * nr;
  for (std::size_t p = 0; p < kc; ++p) {
    const float* src = b + p * ldb;
    float* dst = out + p * nr;
    std::size_t jr = 0;
    for (; jr + nr <= nc; jr += nr) {                             // full panels (a plain loop: nr is
      for (std::size_t j = 0; j < nr; ++j) dst[j] = src[jr + j];  // small)
      dst += panel_size;
    }
    if (jr < nc) {  // last, partial panel: zero-pad to nr columns
      const std::size_t cols = nc - jr;
      for (std::size_t j = 0; j < cols; ++j) dst[j] = src[jr + j];
      for (std::size_t j = cols; j < nr; ++j) dst[j] = 0.0f;
    }
  }
}

// Writes an rows x cols corner of a full micro-tile computed into `tile`
// (row stride tile_ld) to C, adding to C when accumulating.
void store_partial(std::size_t rows, std::size_t cols, const float* tile, std::size_t tile_ld, float* c,
                   std::size_t ldc, bool accumulate) {
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t j = 0; j < cols; ++j) {
      const float v = tile[i * tile_ld + j];
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + v : v;
    }
  }
}

// Thin A (at most MR / 2 rows, e.g. a batch-1 fully-connected layer): each
// row of C is a vector-matrix product, and an MR-row tile would mostly
// multiply zero padding. B is used in place, without packing (each element
// of B is read once per row anyway):
//   for each chunk of NB columns        the C chunk stays in L1
//     for each strip of KT rows of B     KT contiguous runs of NB floats
//       row kernel over the chunk
// Walking down one NR-wide column panel instead would touch one cache line
// per row of B, all in the same cache set when ldb is a power of two; KT is
// kept within the L1 associativity for the same reason.
void gemm_thin(const F32GemmBlocking& blk, std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
               const float* b, std::size_t ldb, float* c, std::size_t ldc) {
  const std::size_t kt = blk.thin_kt;  // rows of B per strip
  const std::size_t nb = blk.thin_nb;  // columns per chunk (multiple of NR)
  const std::size_t nr = blk.nr;
  const std::size_t n_full = n / nr * nr;  // columns in full NR-wide panels

  for (std::size_t jn = 0; jn < n_full; jn += nb) {
    const std::size_t nc = std::min(nb, n_full - jn);
    for (std::size_t pc = 0; pc < k; pc += kt) {
      const std::size_t kc = std::min(kt, k - pc);
      for (std::size_t i = 0; i < m; ++i) {
        blk.row_ukernel(kc, nc, a + i * lda + pc, 1, b + pc * ldb + jn, ldb, c + i * ldc + jn, /*accumulate=*/pc != 0);
      }
    }
  }
  if (n_full == n) return;

  // The last n - n_full (< NR) columns in place, a plain loop down B's rows:
  // each element of B is used once, so copying them into a padded panel (as
  // the blocked path does) would cost more than the products themselves.
  const std::size_t nt = n - n_full;
  constexpr std::size_t kMaxTail = 32;  // NR of every kernel in use is at most 32
  assert(nt < kMaxTail);
  for (std::size_t i = 0; i < m; ++i) {
    float acc[kMaxTail] = {};
    const float* ai = a + i * lda;
    const float* bt = b + n_full;
    for (std::size_t p = 0; p < k; ++p) {
      const float ap = ai[p];
      for (std::size_t j = 0; j < nt; ++j) acc[j] += ap * bt[p * ldb + j];
    }
    for (std::size_t j = 0; j < nt; ++j) c[i * ldc + n_full + j] = acc[j];
  }
}

}  // namespace

void f32_gemm_blocked(const F32GemmBlocking& blk, std::size_t m, std::size_t n, std::size_t k, const float* a,
                      std::size_t lda, const float* b, std::size_t ldb, float* c, std::size_t ldc) {
  const std::size_t mr = blk.mr, nr = blk.nr;
  assert(mr * nr <= kF32GemmMaxTile);
  assert(blk.mc % mr == 0 && blk.nc % nr == 0 && blk.thin_nb % nr == 0);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // empty sum: C = 0
    for (std::size_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  // Leftover rows of a panel go row by row through the row kernel when at
  // most half of an MR-row tile would be real work.
  auto use_rows = [&](std::size_t rows) { return blk.row_ukernel != nullptr && 2 * rows <= mr; };
  if (use_rows(m)) {
    gemm_thin(blk, m, n, k, a, lda, b, ldb, c, ldc);
    return;
  }

  // Packing B pays off only when the packed panels are reused by more than
  // one MR-row panel of A. For m <= MR the micro-kernel reads full-width B
  // panels in place (b_stride = ldb), and only a partial last panel is
  // copied into a zero-padded buffer.
  const bool pack_b_panels = m > mr;

  const std::size_t kc_max = std::min(blk.kc, k);
  const std::size_t mc_max = std::min(blk.mc, round_up(m, mr));
  const std::size_t nc_max = std::min(blk.nc, round_up(n, nr));
  const std::size_t a_size = round_up(mc_max * kc_max, kAlignFloats);
  const std::size_t b_size = pack_b_panels ? kc_max * nc_max : kc_max * nr;
  float* const a_pack = workspace(a_size + b_size);
  float* const b_pack = a_pack + a_size;
  alignas(64) float tile[kF32GemmMaxTile];  // edge tiles are computed here

  for (std::size_t jc = 0; jc < n; jc += blk.nc) {
    const std::size_t nc = std::min(blk.nc, n - jc);
    for (std::size_t pc = 0; pc < k; pc += blk.kc) {
      const std::size_t kc = std::min(blk.kc, k - pc);
      const bool accumulate = pc != 0;  // first K block overwrites C
      const float* const b_block = b + pc * ldb + jc;
      if (pack_b_panels) pack_b(kc, nc, nr, b_block, ldb, b_pack);

      for (std::size_t ic = 0; ic < m; ic += blk.mc) {
        const std::size_t mc = std::min(blk.mc, m - ic);
        pack_a(mc, kc, mr, a + ic * lda + pc, lda, a_pack);

        for (std::size_t jr = 0; jr < nc; jr += nr) {
          const std::size_t cols = std::min(nr, nc - jr);
          const float* b_panel;
          std::size_t b_stride;
          if (pack_b_panels) {
            b_panel = b_pack + (jr / nr) * (kc * nr);
            b_stride = nr;
          } else if (cols == nr) {
            b_panel = b_block + jr;  // read in place
            b_stride = ldb;
          } else {
            pack_b(kc, cols, nr, b_block + jr, ldb, b_pack);
            b_panel = b_pack;
            b_stride = nr;
          }

          for (std::size_t ir = 0; ir < mc; ir += mr) {
            const std::size_t rows = std::min(mr, mc - ir);
            const float* const a_panel = a_pack + ir * kc;
            float* const c_tile = c + (ic + ir) * ldc + jc + jr;
            if (rows == mr && cols == nr) {
              blk.ukernel(kc, a_panel, b_panel, b_stride, c_tile, ldc, accumulate);
            } else if (use_rows(rows)) {
              for (std::size_t i = 0; i < rows; ++i) {
                float* const c_row = c_tile + i * ldc;
                if (cols == nr) {
                  blk.row_ukernel(kc, nr, a_panel + i, mr, b_panel, b_stride, c_row, accumulate);
                } else {
                  blk.row_ukernel(kc, nr, a_panel + i, mr, b_panel, b_stride, tile, false);
                  store_partial(1, cols, tile, nr, c_row, ldc, accumulate);
                }
              }
            } else {
              // Edge tile: the zero padding of the packed panels makes the
              // full tile well defined; keep only its rows x cols corner.
              blk.ukernel(kc, a_panel, b_panel, b_stride, tile, nr, false);
              store_partial(rows, cols, tile, nr, c_tile, ldc, accumulate);
            }
          }
        }
      }
    }
  }
}

}  // namespace pakd
