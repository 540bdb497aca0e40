// Private declarations of the compiled kernels (generated from the one list,
// kernels/f32-gemm-list.inc).
#ifndef PAKD_SRC_KERNELS_KERNELS_H_
#define PAKD_SRC_KERNELS_KERNELS_H_

#include <cstddef>

// NOTE: this header is included by ISA-specific files (compiled with e.g.
// -mavx2). Keep it free of inline functions and templates: a shared inline
// function compiled with AVX2 in one file could be the copy the linker keeps
// for the whole program, and crash a CPU without AVX2.

#ifndef PAKD_ENABLE_X86_AVX2
#define PAKD_ENABLE_X86_AVX2 0
#endif

namespace pakd {

// C = A(m x k) * B(k x n), row-major, C overwritten. Arguments are already
// validated by the caller (runtime/c-api.cc): lda >= k, ldb >= n, ldc >= n,
// pointers valid for non-empty matrices. May throw std::bad_alloc (packing
// buffers); nothing else.
using F32GemmFn = void (*)(std::size_t m, std::size_t n, std::size_t k,
                           const float* a, std::size_t lda, const float* b,
                           std::size_t ldb, float* c, std::size_t ldc);

}  // namespace pakd

#define PAKD_F32_GEMM_KERNEL(fn, name, isa, required)                        \
  void fn(std::size_t m, std::size_t n, std::size_t k, const float* a,       \
          std::size_t lda, const float* b, std::size_t ldb, float* c,        \
          std::size_t ldc);
#include "kernels/f32-gemm-list.inc"
#undef PAKD_F32_GEMM_KERNEL

#endif  // PAKD_SRC_KERNELS_KERNELS_H_
