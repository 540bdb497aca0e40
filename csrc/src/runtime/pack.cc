#include "runtime/pack.h"

#include <algorithm>

#include "kernels/kernels.h"

namespace pakd::runtime {

DirectConvWeight pack_direct_conv(const float* w, std::size_t cout, std::size_t taps, std::size_t block) {
  DirectConvWeight p;
  p.block = block;
  p.packed.assign((cout + block - 1) / block * block * taps, 0.0f);
  for (std::size_t oc = 0; oc < cout; ++oc) {  // [block][ic][ky][kx][block], zero-padded channels
    for (std::size_t tap = 0; tap < taps; ++tap) {
      p.packed[(oc / block) * taps * block + tap * block + oc % block] = w[oc * taps + tap];
    }
  }
  return p;
}

SparseDconvWeight pack_sparse_direct_conv(const float* w, std::size_t cout, std::size_t cin, std::size_t kh,
                                          std::size_t kw, std::size_t hp, std::size_t wo) {
  // CSR over (output channel, tap) with each tap's offset into the packed padded input
  const std::size_t rs = sdconv_row_stride(kw), taps = kh * kw, cols = cin * taps;
  const std::size_t cs = sdconv_input_size(1, hp, wo, kw);  // floats per input channel
  SparseDconvWeight p;
  p.row_ptr.assign(cout + 1, 0);
  for (std::size_t r = 0; r < cout; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      const float v = w[r * cols + c];
      if (v == 0.0f) continue;
      const std::size_t ic = c / taps, ky = (c % taps) / kw, kx = c % kw;
      p.offsets.push_back(static_cast<std::uint32_t>(ic * cs + ky * rs + kx));
      p.values.push_back(v);
    }
    p.row_ptr[r + 1] = static_cast<std::uint32_t>(p.values.size());
  }
  return p;
}

WinogradWeight pack_winograd(const float* w, std::size_t cout, std::size_t cin, const float* scale, const float* bias) {
  const std::size_t cout_p = (cout + kWinoCoutBlock - 1) / kWinoCoutBlock * kWinoCoutBlock;
  const std::size_t cin_p = (cin + kWinoCinBlock - 1) / kWinoCinBlock * kWinoCinBlock;
  WinogradWeight p;
  p.u.assign(kWinoPositions * cout_p * cin_p, 0.0f);
  pack_wino4x4_weights(cout, cin, w, scale, p.u.data());
  if (bias != nullptr) {
    p.bias.assign(cout_p, 0.0f);
    std::copy(bias, bias + cout, p.bias.begin());
  }
  return p;
}

CsrWeight csr_from_dense(const float* w, std::size_t rows, std::size_t cols) {
  CsrWeight p;
  p.row_ptr.assign(rows + 1, 0);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      const float v = w[r * cols + c];
      if (v == 0.0f) continue;
      p.col_idx.push_back(static_cast<std::uint32_t>(c));
      p.values.push_back(v);
    }
    p.row_ptr[r + 1] = static_cast<std::uint32_t>(p.col_idx.size());
  }
  return p;
}

CsrCodebookWeight csr_codebook_from_tensor(const Tensor& t, std::size_t rows, std::size_t cols) {
  CsrCodebookWeight p;
  p.row_ptr.assign(rows + 1, 0);
  // code of element pos: per stored element (sparse layout: stored in
  // position order) or per element (dense layout)
  std::size_t stored = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      const std::size_t pos = r * cols + c;
      std::uint8_t code = 0;
      if (t.sparse) {
        while (stored < t.positions.size() && t.positions[stored] < pos) ++stored;
        if (stored < t.positions.size() && t.positions[stored] == pos) code = t.codes[stored];
      } else {
        code = t.codes[pos];
      }
      if (t.values[pos] == 0.0f) continue;
      p.col_idx.push_back(static_cast<std::uint32_t>(c));
      p.codes.push_back(code);
    }
    p.row_ptr[r + 1] = static_cast<std::uint32_t>(p.col_idx.size());
  }
  p.table = t.codebook;
  return p;
}

std::size_t block_spmv_steps(const CsrWeight& csr, std::size_t rows, std::size_t cols) {
  return pakd::block_spmv_steps(rows, cols, csr.row_ptr.data(), csr.col_idx.data());
}

BlockSpmvWeight pack_block_spmv(const CsrWeight& csr, std::size_t rows, std::size_t cols, std::size_t steps) {
  BlockSpmvWeight p;
  p.slices.resize((rows + kBlockSpmvRows - 1) / kBlockSpmvRows + 1);
  p.words.resize(steps);
  p.values.resize(steps * kBlockSpmvRows);
  block_spmv_pack(rows, cols, csr.row_ptr.data(), csr.col_idx.data(), csr.values.data(), p.slices.data(),
                  p.words.data(), p.values.data());
  return p;
}

DenseWeight transpose_linear(const float* w, std::size_t out, std::size_t in) {
  DenseWeight p;
  p.w.resize(out * in);  // W^T: [in, out]
  for (std::size_t r = 0; r < out; ++r) {
    for (std::size_t c = 0; c < in; ++c) p.w[c * out + r] = w[r * in + c];
  }
  return p;
}

}  // namespace pakd::runtime
