// The forms a conv / linear weight is held in for its kernels: one type per
// form, built at load by runtime/pack.h, run by the Session method of the
// form's ConvMethod (runtime/conv-plan.h).
#ifndef PAKD_SRC_RUNTIME_WEIGHTS_H_
#define PAKD_SRC_RUNTIME_WEIGHTS_H_

#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

namespace pakd::runtime {

// No weight (ops other than conv2d / linear).
struct NoWeight {};

// The weight as in the file, rows x cols (rows = output channels / features):
// the reference sessions' (and conv_reference's) operand.
struct ReferenceWeight {
  std::vector<float> w;
};

// Dense f32 for the GEMM: a convolution's [Cout, Cin/g * kh * kw] as is, a
// linear layer's transposed ([in, out]) so that Y = X W^T is one GEMM.
struct DenseWeight {
  std::vector<float> w;
};

// The dense direct convolutions: blocks of `block` output channels,
// [block][ic][ky][kx][block], channels past the real count zero.
// block == kDconvOcBlock (4): the wide-row kernels (F32DconvFn);
// block == kDconvOcVector (16): the output-channel-tile kernels (F32DconvOcFn).
struct DirectConvWeight {
  std::vector<float> packed;
  std::size_t block;
};

// Winograd F(4x4, 3x3): the transformed weights with the per-channel scale
// folded in, and the bias zero-padded to 16-channel blocks (empty: none).
struct WinogradWeight {
  std::vector<float> u, bias;
};

// Sparse CSR with f32 values.
struct CsrWeight {
  std::vector<std::uint32_t> row_ptr, col_idx;
  std::vector<float> values;
};

// Sparse CSR with u8 codes into a codebook of at most 256 values.
struct CsrCodebookWeight {
  std::vector<std::uint32_t> row_ptr, col_idx;
  std::vector<std::uint8_t> codes;
  std::vector<float> table;
};

// The sparse direct convolution (F32SparseDconvFn): CSR over (output
// channel, tap) with each tap's offset into the packed padded input.
struct SparseDconvWeight {
  std::vector<std::uint32_t> row_ptr, offsets;
  std::vector<float> values;
};

// The blocked batch-1 sparse matrix-vector form (F32BlockSpmvFn) of a sparse
// linear layer: 8-row slices of steps over 8-column panels.
struct BlockSpmvWeight {
  std::vector<std::uint32_t> slices, words;
  std::vector<float> values;
};

using Weight = std::variant<NoWeight, ReferenceWeight, DenseWeight, DirectConvWeight, WinogradWeight, CsrWeight,
                            CsrCodebookWeight, SparseDconvWeight, BlockSpmvWeight>;

// Bytes of memory the weight holds.
std::size_t weight_bytes(const Weight& w);
// The form in words, for op descriptions: "dense", "csr", "winograd", ...
const char* weight_form(const Weight& w);

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_WEIGHTS_H_
