// The kernel tables, generated from the lists (kernels/*-list.inc), and the
// start-up choice of each family's kernel from the detected CPU features: a
// table lookup, not an if-chain, so a new kernel needs no code here.
#include "runtime/kernel-config.h"

#include <cstring>
#include <iterator>

#include "runtime/cpu.h"

namespace pakd::runtime {
namespace {

#define PAKD_UKERNEL(fn, name, isa, required) {{name, isa, static_cast<std::uint32_t>(required)}, fn},

constexpr KernelEntry<F32GemmFn> kF32Gemm[] = {
#include "kernels/f32-gemm-list.inc"
};
constexpr KernelEntry<F32DconvFn> kF32DconvWide[] = {
#include "kernels/f32-dconv-wide-list.inc"
};
constexpr KernelEntry<F32DconvOcFn> kF32DconvOc[] = {
#include "kernels/f32-dconv-oc-list.inc"
};
constexpr KernelEntry<F32PadPlanesFn> kF32DconvPad[] = {
#include "kernels/f32-dconv-pad-list.inc"
};
constexpr KernelEntry<F32WideRowsOutFn> kF32DconvOut[] = {
#include "kernels/f32-dconv-out-list.inc"
};
constexpr KernelEntry<F32EpilogueFn> kF32Epilogue[] = {
#include "kernels/f32-epilogue-list.inc"
};
constexpr KernelEntry<F32Wino4x4PackFn> kF32Wino4x4Pack[] = {
#include "kernels/f32-wino4x4-pack-list.inc"
};
constexpr KernelEntry<F32Wino4x4Fn> kF32Wino4x4[] = {
#include "kernels/f32-wino4x4-list.inc"
};
constexpr KernelEntry<F32DwconvFn> kF32Dwconv[] = {
#include "kernels/f32-dwconv-list.inc"
};
constexpr KernelEntry<F32SparseDconvFn> kF32Sdconv[] = {
#include "kernels/f32-sdconv-list.inc"
};
constexpr KernelEntry<F32BlockSpmvFn> kF32Spmv[] = {
#include "kernels/f32-spmv-list.inc"
};
constexpr KernelEntry<F32SpmmFn> kF32Spmm[] = {
#include "kernels/f32-spmm-list.inc"
};
constexpr KernelEntry<F32CbSpmmFn> kF32CbSpmm[] = {
#include "kernels/f32-cbspmm-list.inc"
};
constexpr KernelEntry<Qs8GemmFn> kQs8Gemm[] = {
#include "kernels/qs8-gemm-list.inc"
};

#undef PAKD_UKERNEL

template <typename Fn, std::size_t N>
constexpr KernelTable<Fn> table(const KernelEntry<Fn> (&entries)[N]) {
  return {entries, N};
}

template <typename Fn>
KernelFamily describe(const char* name, const KernelTable<Fn>& kernels) {
  KernelFamily family{name, {}};
  for (const KernelEntry<Fn>& kernel : kernels) family.kernels.push_back(kernel);
  return family;
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
const KernelEntry<Fn>* KernelTable<Fn>::find_isa(const char* isa) const {
  for (const KernelEntry<Fn>& kernel : *this) {
    if (std::strcmp(kernel.isa, isa) == 0) return &kernel;
  }
  return nullptr;
}

#define PAKD_KERNEL_TABLE(accessor, Fn, array)         \
  template struct KernelTable<Fn>;                     \
  const KernelTable<Fn>& accessor() {                  \
    static constexpr KernelTable<Fn> t = table(array); \
    return t;                                          \
  }
PAKD_KERNEL_TABLE(f32_gemm_kernels, F32GemmFn, kF32Gemm)
PAKD_KERNEL_TABLE(f32_dconv_wide_kernels, F32DconvFn, kF32DconvWide)
PAKD_KERNEL_TABLE(f32_dconv_oc_kernels, F32DconvOcFn, kF32DconvOc)
PAKD_KERNEL_TABLE(f32_dconv_pad_kernels, F32PadPlanesFn, kF32DconvPad)
PAKD_KERNEL_TABLE(f32_dconv_out_kernels, F32WideRowsOutFn, kF32DconvOut)
PAKD_KERNEL_TABLE(f32_epilogue_kernels, F32EpilogueFn, kF32Epilogue)
PAKD_KERNEL_TABLE(f32_wino4x4_pack_kernels, F32Wino4x4PackFn, kF32Wino4x4Pack)
PAKD_KERNEL_TABLE(f32_wino4x4_kernels, F32Wino4x4Fn, kF32Wino4x4)
PAKD_KERNEL_TABLE(f32_dwconv_kernels, F32DwconvFn, kF32Dwconv)
PAKD_KERNEL_TABLE(f32_sdconv_kernels, F32SparseDconvFn, kF32Sdconv)
PAKD_KERNEL_TABLE(f32_spmv_kernels, F32BlockSpmvFn, kF32Spmv)
PAKD_KERNEL_TABLE(f32_spmm_kernels, F32SpmmFn, kF32Spmm)
PAKD_KERNEL_TABLE(f32_cbspmm_kernels, F32CbSpmmFn, kF32CbSpmm)
PAKD_KERNEL_TABLE(qs8_gemm_kernels, Qs8GemmFn, kQs8Gemm)
#undef PAKD_KERNEL_TABLE

const KernelConfig& KernelConfig::best() {
  static const KernelConfig config = [] {
    KernelConfig c{};
    c.gemm = &f32_gemm_kernels().best();
    c.dconv_wide = &f32_dconv_wide_kernels().best();
    c.dconv_oc = &f32_dconv_oc_kernels().best();
    c.dconv_pad = &f32_dconv_pad_kernels().best();
    c.dconv_out = &f32_dconv_out_kernels().best();
    c.epilogue = &f32_epilogue_kernels().best();
    c.wino4x4_pack = &f32_wino4x4_pack_kernels().best();
    c.wino4x4 = &f32_wino4x4_kernels().best();
    c.dwconv = &f32_dwconv_kernels().best();
    c.sdconv = &f32_sdconv_kernels().best();
    // the blocked format pays only with a vector kernel (kernels/f32-spmv-list.inc)
    const KernelEntry<F32BlockSpmvFn>& spmv = f32_spmv_kernels().best();
    c.spmv = &spmv == &f32_spmv_kernels().reference() ? nullptr : &spmv;
    c.spmm = &f32_spmm_kernels().best();
    c.cbspmm = &f32_cbspmm_kernels().best();
    c.qs8_gemm = &qs8_gemm_kernels().best();
    return c;
  }();
  return config;
}

const KernelConfig& KernelConfig::reference() {
  static const KernelConfig config = [] {
    KernelConfig c{};
    c.gemm = &f32_gemm_kernels().reference();
    c.dconv_wide = &f32_dconv_wide_kernels().reference();
    c.dconv_oc = &f32_dconv_oc_kernels().reference();
    c.dconv_pad = &f32_dconv_pad_kernels().reference();
    c.dconv_out = &f32_dconv_out_kernels().reference();
    c.epilogue = &f32_epilogue_kernels().reference();
    c.wino4x4_pack = &f32_wino4x4_pack_kernels().reference();
    c.wino4x4 = &f32_wino4x4_kernels().reference();
    c.dwconv = &f32_dwconv_kernels().reference();
    c.sdconv = &f32_sdconv_kernels().reference();
    c.spmv = nullptr;  // the oracle runs sparse layers as dense references anyway
    c.spmm = &f32_spmm_kernels().reference();
    c.cbspmm = &f32_cbspmm_kernels().reference();
    c.qs8_gemm = &qs8_gemm_kernels().reference();
    return c;
  }();
  return config;
}

const KernelInfo& KernelFamily::best() const {
  const KernelInfo* chosen = &kernels.front();
  for (const KernelInfo& kernel : kernels) {
    if (kernel_supported(kernel.required)) chosen = &kernel;
  }
  return *chosen;
}

const std::vector<KernelFamily>& kernel_families() {
  static const std::vector<KernelFamily> families = {
      describe("f32-gemm", f32_gemm_kernels()),
      describe("f32-dconv-wide", f32_dconv_wide_kernels()),
      describe("f32-dconv-oc", f32_dconv_oc_kernels()),
      describe("f32-dconv-pad", f32_dconv_pad_kernels()),
      describe("f32-dconv-out", f32_dconv_out_kernels()),
      describe("f32-epilogue", f32_epilogue_kernels()),
      describe("f32-wino4x4-pack", f32_wino4x4_pack_kernels()),
      describe("f32-wino4x4", f32_wino4x4_kernels()),
      describe("f32-dwconv", f32_dwconv_kernels()),
      describe("f32-sdconv", f32_sdconv_kernels()),
      describe("f32-spmv", f32_spmv_kernels()),
      describe("f32-spmm", f32_spmm_kernels()),
      describe("f32-cbspmm", f32_cbspmm_kernels()),
      describe("qs8-gemm", qs8_gemm_kernels()),
  };
  return families;
}

const KernelFamily* find_kernel_family(const char* name) {
  for (const KernelFamily& family : kernel_families()) {
    if (std::strcmp(family.name, name) == 0) return &family;
  }
  return nullptr;
}

}  // namespace pakd::runtime
