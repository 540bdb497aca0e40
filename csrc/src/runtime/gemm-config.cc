// The f32 GEMM kernel table, generated from kernels/f32-gemm-list.inc, and
// the choice of the default kernel from the detected CPU features: a table
// lookup, not an if-chain, so a new kernel needs no code here.
#include "runtime/gemm-config.h"

#include <cstring>
#include <iterator>

#include "runtime/cpu.h"

namespace pakd {
namespace {

constexpr F32GemmKernel kKernels[] = {
#define PAKD_F32_GEMM_KERNEL(fn, name, isa, required) {name, isa, static_cast<std::uint32_t>(required), fn},
#include "kernels/f32-gemm-list.inc"
#undef PAKD_F32_GEMM_KERNEL
};

// The list is ordered slowest first: the last supported entry wins. The
// reference kernel needs nothing, so there is always one.
const F32GemmKernel& choose_best() {
  const F32GemmKernel* best = &kKernels[0];
  for (const F32GemmKernel& kernel : kKernels) {
    if (f32_gemm_supported(kernel)) best = &kernel;
  }
  return *best;
}

}  // namespace

const F32GemmKernel* f32_gemm_kernels() { return kKernels; }

std::size_t f32_gemm_kernel_count() { return std::size(kKernels); }

bool f32_gemm_supported(const F32GemmKernel& kernel) { return cpu_features().has(kernel.required); }

const F32GemmKernel* f32_gemm_find(const char* name) {
  for (const F32GemmKernel& kernel : kKernels) {
    if (std::strcmp(kernel.name, name) == 0) return &kernel;
  }
  return nullptr;
}

const F32GemmKernel& f32_gemm_best() {
  static const F32GemmKernel& best = choose_best();
  return best;
}

}  // namespace pakd
