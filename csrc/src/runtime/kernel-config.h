// The kernel tables and the one kernel configuration of the runtime.
//
// Every kernel family has one list, kernels/<family>-list.inc (one line per
// kernel: function, name, isa, required CPU features; slowest first, the
// family's reference first). kernel-config.cc turns each list into a
// KernelTable<Fn>; KernelConfig holds one kernel per family, resolved once at
// start-up from the detected CPU features (the last supported entry of each
// list), and a Session takes all its kernels from one KernelConfig. So adding
// a kernel is a source file plus one list line; nothing here changes.
#ifndef PAKD_SRC_RUNTIME_KERNEL_CONFIG_H_
#define PAKD_SRC_RUNTIME_KERNEL_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace pakd::runtime {

// What every list line says about a kernel, whatever its family.
struct KernelInfo {
  const char* name;        // unique in its family (pakd._core.kernels(family))
  const char* isa;         // instruction set, in words
  std::uint32_t required;  // OR of CpuFeature bits the running CPU must have
};

// One list line: its description and the entry point.
template <typename Fn>
struct KernelEntry : KernelInfo {
  Fn fn;
};

// Whether the running CPU can execute a kernel that needs `required`.
bool kernel_supported(std::uint32_t required);

// The compiled-in kernels of one family, in list order (slowest first).
template <typename Fn>
struct KernelTable {
  const KernelEntry<Fn>* entries;
  std::size_t count;

  const KernelEntry<Fn>* begin() const { return entries; }
  const KernelEntry<Fn>* end() const { return entries + count; }
  std::size_t size() const { return count; }
  // The first entry: the family's reference (needs no CPU feature).
  const KernelEntry<Fn>& reference() const { return entries[0]; }
  // The last entry the running CPU supports.
  const KernelEntry<Fn>& best() const {
    const KernelEntry<Fn>* chosen = entries;
    for (const KernelEntry<Fn>& kernel : *this) {
      if (kernel_supported(kernel.required)) chosen = &kernel;
    }
    return *chosen;
  }
  // The kernel named `name`, or nullptr if there is none.
  const KernelEntry<Fn>* find(const char* name) const;
  // The first kernel with instruction set `isa` (to pair the kernels of two
  // families, e.g. a convolution with its input pass), or nullptr.
  const KernelEntry<Fn>* find_isa(const char* isa) const;
};

// The tables, one per list.
const KernelTable<F32GemmFn>& f32_gemm_kernels();                 // f32-gemm
const KernelTable<F32DconvFn>& f32_dconv_wide_kernels();          // f32-dconv-wide
const KernelTable<F32DconvOcFn>& f32_dconv_oc_kernels();          // f32-dconv-oc
const KernelTable<F32PadPlanesFn>& f32_dconv_pad_kernels();       // f32-dconv-pad
const KernelTable<F32WideRowsOutFn>& f32_dconv_out_kernels();     // f32-dconv-out
const KernelTable<F32EpilogueFn>& f32_epilogue_kernels();         // f32-epilogue
const KernelTable<F32Wino4x4PackFn>& f32_wino4x4_pack_kernels();  // f32-wino4x4-pack
const KernelTable<F32Wino4x4Fn>& f32_wino4x4_kernels();           // f32-wino4x4
const KernelTable<F32DwconvFn>& f32_dwconv_kernels();             // f32-dwconv
const KernelTable<F32SparseDconvFn>& f32_sdconv_kernels();        // f32-sdconv
const KernelTable<F32BlockSpmvFn>& f32_spmv_kernels();            // f32-spmv
const KernelTable<F32SpmmFn>& f32_spmm_kernels();                 // f32-spmm
const KernelTable<F32CbSpmmFn>& f32_cbspmm_kernels();             // f32-cbspmm
const KernelTable<Qs8GemmFn>& qs8_gemm_kernels();                 // qs8-gemm

// One kernel per family: what a Session runs.
struct KernelConfig {
  const KernelEntry<F32GemmFn>* gemm;
  const KernelEntry<F32DconvFn>* dconv_wide;
  const KernelEntry<F32DconvOcFn>* dconv_oc;
  const KernelEntry<F32PadPlanesFn>* dconv_pad;
  const KernelEntry<F32WideRowsOutFn>* dconv_out;
  const KernelEntry<F32EpilogueFn>* epilogue;
  const KernelEntry<F32Wino4x4PackFn>* wino4x4_pack;
  const KernelEntry<F32Wino4x4Fn>* wino4x4;
  const KernelEntry<F32DwconvFn>* dwconv;
  const KernelEntry<F32SparseDconvFn>* sdconv;
  // nullptr: no blocked kernel faster than the CSR ones (only the reference
  // is supported), so sparse linear layers stay CSR.
  const KernelEntry<F32BlockSpmvFn>* spmv;
  const KernelEntry<F32SpmmFn>* spmm;
  const KernelEntry<F32CbSpmmFn>* cbspmm;
  const KernelEntry<Qs8GemmFn>* qs8_gemm;

  // The best kernel of every family for the running CPU (resolved once).
  static const KernelConfig& best();
  // Every family's reference kernel (the oracle sessions: config.reference).
  static const KernelConfig& reference();
};

// A family seen without its function type: for listings (pakd._core).
struct KernelFamily {
  const char* name;  // the list's name: kernels/<name>-list.inc
  std::vector<KernelInfo> kernels;
  const KernelInfo& best() const;
};

// Every family, in a fixed order.
const std::vector<KernelFamily>& kernel_families();
// The family named `name`, or nullptr.
const KernelFamily* find_kernel_family(const char* name);

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_KERNEL_CONFIG_H_
