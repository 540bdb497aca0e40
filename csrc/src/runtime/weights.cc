#include "runtime/weights.h"

namespace pakd::runtime {
namespace {

template <typename T>
std::size_t bytes_of(const std::vector<T>& v) {
  return v.size() * sizeof(T);
}

struct Bytes {
  std::size_t operator()(const NoWeight&) const { return 0; }
  std::size_t operator()(const ReferenceWeight& w) const { return bytes_of(w.w); }
  std::size_t operator()(const DenseWeight& w) const { return bytes_of(w.w); }
  std::size_t operator()(const DirectConvWeight& w) const { return bytes_of(w.packed); }
  std::size_t operator()(const WinogradWeight& w) const { return bytes_of(w.u) + bytes_of(w.bias); }
  std::size_t operator()(const CsrWeight& w) const {
    return bytes_of(w.row_ptr) + bytes_of(w.col_idx) + bytes_of(w.values);
  }
  std::size_t operator()(const CsrCodebookWeight& w) const {
    return bytes_of(w.row_ptr) + bytes_of(w.col_idx) + bytes_of(w.codes) + bytes_of(w.table);
  }
  std::size_t operator()(const SparseDconvWeight& w) const {
    return bytes_of(w.row_ptr) + bytes_of(w.offsets) + bytes_of(w.values);
  }
  std::size_t operator()(const BlockSpmvWeight& w) const {
    return bytes_of(w.slices) + bytes_of(w.words) + bytes_of(w.values);
  }
};

struct Form {
  const char* operator()(const NoWeight&) const { return ""; }
  const char* operator()(const ReferenceWeight&) const { return "dense"; }
  const char* operator()(const DenseWeight&) const { return "dense"; }
  const char* operator()(const DirectConvWeight&) const { return "dense"; }
  const char* operator()(const WinogradWeight&) const { return "winograd"; }
  const char* operator()(const CsrWeight&) const { return "csr"; }
  const char* operator()(const CsrCodebookWeight&) const { return "csr-codebook"; }
  const char* operator()(const SparseDconvWeight&) const { return "sparse-direct"; }
  const char* operator()(const BlockSpmvWeight&) const { return "csr-blocked"; }
};

}  // namespace

std::size_t weight_bytes(const Weight& w) { return std::visit(Bytes{}, w); }

const char* weight_form(const Weight& w) { return std::visit(Form{}, w); }

}  // namespace pakd::runtime
