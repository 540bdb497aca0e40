// Kernel tables of the sparse and int8 kernel families and the start-up
// choice of each family's default kernel (same scheme as gemm-config.h):
//   f32 spmm    sparse CSR (f32 values) x dense       kernels/f32-spmm-list.inc
//   f32 cbspmm  sparse CSR (u8 codebook values) x dense  kernels/f32-cbspmm-list.inc
//   qs8 gemm    int8 x int8 -> f32, dynamic quantization  kernels/qs8-gemm-list.inc
#ifndef PAKD_SRC_RUNTIME_SPARSE_CONFIG_H_
#define PAKD_SRC_RUNTIME_SPARSE_CONFIG_H_

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace pakd {

// One entry of a kernel list: public name, instruction set in words, the
// CpuFeature bits it needs, and the entry point.
template <typename Fn>
struct KernelEntry {
  const char* name;
  const char* isa;
  std::uint32_t required;  // OR of CpuFeature bits
  Fn fn;
};

// The compiled-in kernels of one family, in list order (slowest first).
template <typename Fn>
struct KernelTable {
  const KernelEntry<Fn>* entries;
  std::size_t count;

  const KernelEntry<Fn>* begin() const { return entries; }
  const KernelEntry<Fn>* end() const { return entries + count; }
  // The kernel named `name`, or nullptr if there is none.
  const KernelEntry<Fn>* find(const char* name) const;
  // The best kernel for the running CPU: the last supported entry (chosen once).
  const KernelEntry<Fn>& best() const;
};

// Whether the running CPU can execute a kernel that needs `required`.
bool kernel_supported(std::uint32_t required);

using F32SpmmKernel = KernelEntry<F32SpmmFn>;
using F32CbSpmmKernel = KernelEntry<F32CbSpmmFn>;
using Qs8GemmKernel = KernelEntry<Qs8GemmFn>;

const KernelTable<F32SpmmFn>& f32_spmm_kernels();
const KernelTable<F32CbSpmmFn>& f32_cbspmm_kernels();
const KernelTable<Qs8GemmFn>& qs8_gemm_kernels();

}  // namespace pakd

#endif  // PAKD_SRC_RUNTIME_SPARSE_CONFIG_H_
