// The f32 GEMM kernel table and the start-up choice of the default kernel.
#ifndef PAKD_SRC_RUNTIME_GEMM_CONFIG_H_
#define PAKD_SRC_RUNTIME_GEMM_CONFIG_H_

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace pakd {

struct F32GemmKernel {
  const char* name;
  const char* isa;
  std::uint32_t required;  // OR of CpuFeature bits
  F32GemmFn fn;
};

// All compiled-in kernels, in list order (slowest first).
const F32GemmKernel* f32_gemm_kernels();
std::size_t f32_gemm_kernel_count();

// Whether the running CPU can execute `kernel`.
bool f32_gemm_supported(const F32GemmKernel& kernel);

// The kernel named `name`, or nullptr if there is none.
const F32GemmKernel* f32_gemm_find(const char* name);

// The best kernel for the running CPU (chosen once, at first use).
const F32GemmKernel& f32_gemm_best();

}  // namespace pakd

#endif  // PAKD_SRC_RUNTIME_GEMM_CONFIG_H_
