// Cache-blocked GEMM driver shared by the optimized f32 GEMM kernels.
//
// The classic Goto/BLIS scheme: an ISA-specific kernel file provides only a
// register-blocked micro-kernel (MR x NR tile of C) and its blocking
// parameters; this driver (compiled WITHOUT ISA-specific flags, so it is safe
// to run anywhere) does the loops, the packing and every edge case.
//
//   for jc in [0, n) step NC            B block KC x NC  -> lives in L3
//     for pc in [0, k) step KC          packed B: KC x NR panels, contiguous
//       for ic in [0, m) step MC        A block MC x KC  -> lives in L2
//         pack A into MR x KC panels
//         for jr in [0, NC) step NR     one KC x NR B panel -> stays in L1
//           for ir in [0, MC) step MR
//             micro-kernel: C[ir:ir+MR, jr:jr+NR] (+)= Apanel * Bpanel
//
// Edges: packed panels are zero-padded to full MR / NR, so the micro-kernel
// always computes a full tile; a partial tile is computed into a buffer and
// only its real corner is written to C. k == 0 sets C to zero.
// Thin matrices: m <= MR / 2 rows (batch-1 layers) go through a row kernel
// reading B in place (see gemm_thin); for MR / 2 < m <= MR, B is read in
// place by the micro-kernel instead of being packed (no reuse to pay for it).
#ifndef PAKD_SRC_KERNELS_F32_GEMM_BLOCKED_H_
#define PAKD_SRC_KERNELS_F32_GEMM_BLOCKED_H_

#include <cstddef>

namespace pakd {

// Computes one full MR x NR tile:
//   C[0:MR, 0:NR] = (accumulate ? C : 0) + A * B
// a: packed A panel, element (i, p) at a[p * MR + i] (MR consecutive rows
//    interleaved per k step, so one k step is MR contiguous floats).
// b: B panel, element (p, j) at b[p * b_stride + j], 0 <= j < NR; b_stride is
//    NR for a packed panel, or ldb when B is read in place.
// c: row-major C tile with row stride ldc.
using F32GemmMicrokernel = void (*)(std::size_t kc, const float* a, const float* b, std::size_t b_stride, float* c,
                                    std::size_t ldc, bool accumulate);

// Computes one row of C over nc columns (nc a multiple of NR), i.e. a
// vector-matrix product:
//   c[0:nc] = (accumulate ? c : 0) + sum_p a[p * a_stride] * b[p * b_stride + 0:nc]
// Used for thin A (e.g. batch-1 fully-connected layers, m = 1) and for the
// last few rows of a matrix, where an MR-row tile would mostly multiply zero
// padding. b is either B in place (b_stride = ldb, nc up to n) or one packed
// panel (b_stride = NR, nc = NR).
using F32GemmRowMicrokernel = void (*)(std::size_t kc, std::size_t nc, const float* a, std::size_t a_stride,
                                       const float* b, std::size_t b_stride, float* c, bool accumulate);

struct F32GemmBlocking {
  std::size_t mr;  // micro-tile rows (register blocking)
  std::size_t nr;  // micro-tile columns (register blocking)
  std::size_t mc;  // rows of A per packed block (multiple of mr; L2-sized)
  std::size_t kc;  // depth per packed block (B panel KC x NR sized for L1)
  std::size_t nc;  // columns of B per packed block (multiple of nr; L3-sized)
  F32GemmMicrokernel ukernel;
  // Thin A (m <= mr / 2) path, taken only when row_ukernel is set: B is read
  // in place in strips of thin_kt rows (at most the L1 associativity, so a
  // power-of-two ldb cannot thrash a cache set) and chunks of thin_nb
  // columns (multiple of nr; the C chunk stays in L1).
  F32GemmRowMicrokernel row_ukernel;  // optional (may be nullptr)
  std::size_t thin_kt;
  std::size_t thin_nb;
};

// Largest micro-tile (mr * nr) the driver supports (size of its on-stack edge buffer).
constexpr std::size_t kF32GemmMaxTile = 8 * 32;

// C = A * B using `blocking`'s micro-kernels; same contract as F32GemmFn.
void f32_gemm_blocked(const F32GemmBlocking& blocking, std::size_t m, std::size_t n, std::size_t k, const float* a,
                      std::size_t lda, const float* b, std::size_t ldb, float* c, std::size_t ldc);

}  // namespace pakd

#endif  // PAKD_SRC_KERNELS_F32_GEMM_BLOCKED_H_
