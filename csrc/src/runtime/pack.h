// Packing of weights into their forms (runtime/weights.h) for the kernels.
// The Session packs its weights with these at load, and the kernel bindings
// (csrc/python/bind-kernels.cc) with the same functions, so the kernel tests
// run the session's packing, not a copy of it.
#ifndef PAKD_SRC_RUNTIME_PACK_H_
#define PAKD_SRC_RUNTIME_PACK_H_

#include <cstddef>
#include <cstdint>

#include "runtime/model-file.h"
#include "runtime/weights.h"

namespace pakd::runtime {

// A dense convolution weight w[cout][taps] (taps = cin * kh * kw) in blocks
// of `block` output channels (kDconvOcBlock or kDconvOcVector).
DirectConvWeight pack_direct_conv(const float* w, std::size_t cout, std::size_t taps, std::size_t block);

// The sparse direct convolution's form of w[cout][cin][kh][kw] for an input
// of hp padded rows and an output wo wide (the tap offsets depend on them,
// kernels/f32-sdconv-pack.cc); zeros skipped.
SparseDconvWeight pack_sparse_direct_conv(const float* w, std::size_t cout, std::size_t cin, std::size_t kh,
                                          std::size_t kw, std::size_t hp, std::size_t wo);

// Winograd F(4x4, 3x3) of w[cout][cin][3][3], each output channel's weights
// times scale[oc] (nullptr: 1), bias (cout floats, nullptr: none) padded.
WinogradWeight pack_winograd(const float* w, std::size_t cout, std::size_t cin, const float* scale, const float* bias);

// The nonzeros of a dense rows x cols matrix as CSR (row by row, columns ascending).
CsrWeight csr_from_dense(const float* w, std::size_t rows, std::size_t cols);

// CSR with u8 codes of a codebook-encoded tensor t (rows x cols): codes
// taken per stored element (sparse layout) or per element (dense layout).
CsrCodebookWeight csr_codebook_from_tensor(const Tensor& t, std::size_t rows, std::size_t cols);

// The steps of the blocked batch-1 form of csr (rows x cols), 0 when cols is
// too large for it.
std::size_t block_spmv_steps(const CsrWeight& csr, std::size_t rows, std::size_t cols);
// The blocked batch-1 form of csr (steps from block_spmv_steps, > 0).
BlockSpmvWeight pack_block_spmv(const CsrWeight& csr, std::size_t rows, std::size_t cols, std::size_t steps);

// A linear weight w[out][in] transposed for the GEMM: [in][out].
DenseWeight transpose_linear(const float* w, std::size_t out, std::size_t in);

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_PACK_H_
