// Kernel tables of the sparse and int8 families, generated from their lists
// (kernels/*-list.inc), and the choice of each family's default kernel from
// the detected CPU features: a table lookup, not an if-chain, so a new kernel
// needs no code here.
#include "runtime/sparse-config.h"

#include <cstring>
#include <iterator>

#include "runtime/cpu.h"

namespace pakd {
namespace {

constexpr F32SpmmKernel kF32Spmm[] = {
#define PAKD_F32_SPMM_KERNEL(fn, name, isa, required) {name, isa, static_cast<std::uint32_t>(required), fn},
#include "kernels/f32-spmm-list.inc"
#undef PAKD_F32_SPMM_KERNEL
};

constexpr F32CbSpmmKernel kF32CbSpmm[] = {
#define PAKD_F32_CBSPMM_KERNEL(fn, name, isa, required) {name, isa, static_cast<std::uint32_t>(required), fn},
#include "kernels/f32-cbspmm-list.inc"
#undef PAKD_F32_CBSPMM_KERNEL
};

constexpr Qs8GemmKernel kQs8Gemm[] = {
#define PAKD_QS8_GEMM_KERNEL(fn, name, isa, required) {name, isa, static_cast<std::uint32_t>(required), fn},
#include "kernels/qs8-gemm-list.inc"
#undef PAKD_QS8_GEMM_KERNEL
};

// The lists are ordered slowest first: the last supported entry wins. Each
// list starts with its reference kernel, which needs nothing.
template <typename Fn>
const KernelEntry<Fn>& choose_best(const KernelTable<Fn>& table) {
  const KernelEntry<Fn>* best = table.entries;
  for (const KernelEntry<Fn>& kernel : table) {
    if (kernel_supported(kernel.required)) best = &kernel;
  }
  return *best;
}

}  // namespace

bool kernel_supported(std::uint32_t required) { return cpu_features().has(required); }

template <typename Fn>
const KernelEntry<Fn>* KernelTable<Fn>::find(const char* name) const {
  for (const KernelEntry<Fn>& kernel : *this) {
    if (std::strcmp(kernel.name, name) == 0) return &kernel;
  }
  return nullptr;
}

template <typename Fn>
const KernelEntry<Fn>& KernelTable<Fn>::best() const {
  // One static per family (Fn differs per family); thread-safe initialization.
  static const KernelEntry<Fn>& chosen = choose_best(*this);
  return chosen;
}

template struct KernelTable<F32SpmmFn>;
template struct KernelTable<F32CbSpmmFn>;
template struct KernelTable<Qs8GemmFn>;

const KernelTable<F32SpmmFn>& f32_spmm_kernels() {
  static constexpr KernelTable<F32SpmmFn> table{kF32Spmm, std::size(kF32Spmm)};
  return table;
}

const KernelTable<F32CbSpmmFn>& f32_cbspmm_kernels() {
  static constexpr KernelTable<F32CbSpmmFn> table{kF32CbSpmm, std::size(kF32CbSpmm)};
  return table;
}

const KernelTable<Qs8GemmFn>& qs8_gemm_kernels() {
  static constexpr KernelTable<Qs8GemmFn> table{kQs8Gemm, std::size(kQs8Gemm)};
  return table;
}

}  // namespace pakd
