// Implementation of the public C API (include/pakd/pakd.h).
//
// Every entry point validates its arguments, runs the C++ core inside a
// try/catch, and reports through pakd_status: no exception crosses the C
// boundary.
#include <cstring>
#include <limits>
#include <new>
#include <string>

#include "pakd/pakd.h"
#include "runtime/cpu.h"
#include "runtime/gemm-config.h"

#ifndef PAKD_VERSION_STRING
#error "PAKD_VERSION_STRING must be defined by the build (CMakeLists.txt)"
#endif

namespace {

// pakd_last_error(): the message of the last failed call on this thread.
thread_local std::string g_last_error;

// Runs `body` (returning pakd_status) and maps any escaping exception to a
// status.
template <typename Body>
pakd_status guarded(Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return PAKD_ERR_OUT_OF_MEMORY;
  } catch (...) {
    return PAKD_ERR_INTERNAL;
  }
}

// Copies `full` to the caller's struct, never writing past the struct_size
// the caller declared, which must cover at least the first version of the
// struct (`v1_size` bytes). Fields added later are simply not written for
// callers compiled against an older header.
template <typename T>
pakd_status write_versioned(const T& full, T* out, std::size_t v1_size) {
  if (out == nullptr || out->struct_size < v1_size) {
    return PAKD_ERR_INVALID_ARGUMENT;
  }
  const std::size_t caller_size = out->struct_size;
  const std::size_t n = caller_size < sizeof(T) ? caller_size : sizeof(T);
  std::memcpy(out, &full, n);
  out->struct_size = caller_size;
  return PAKD_OK;
}

// rows x cols matrix with row stride ld is addressable without overflow.
bool fits(std::size_t rows, std::size_t cols, std::size_t ld) {
  if (rows == 0 || cols == 0) return true;
  const std::size_t max_elems = std::numeric_limits<std::size_t>::max() / sizeof(float);
  return (rows - 1) <= (max_elems - cols) / ld;
}

}  // namespace

extern "C" {

const char* pakd_status_string(pakd_status status) {
  switch (status) {
    case PAKD_OK: return "ok";
    case PAKD_ERR_INVALID_ARGUMENT: return "invalid argument";
    case PAKD_ERR_UNSUPPORTED: return "unsupported";
    case PAKD_ERR_OUT_OF_MEMORY: return "out of memory";
    case PAKD_ERR_BAD_FORMAT: return "bad format";
    case PAKD_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* pakd_version(void) { return PAKD_VERSION_STRING; }

const char* pakd_last_error(void) { return g_last_error.c_str(); }

pakd_status pakd_get_cpu_info(pakd_cpu_info* out) {
  return guarded([&] {
    const pakd::CpuFeatures& f = pakd::cpu_features();
    pakd_cpu_info info{};
    info.struct_size = sizeof(info);
    info.arch = f.arch;
    info.sse2 = f.has(pakd::kCpuSse2);
    info.avx = f.has(pakd::kCpuAvx);
    info.avx2 = f.has(pakd::kCpuAvx2);
    info.fma = f.has(pakd::kCpuFma);
    info.avx512f = f.has(pakd::kCpuAvx512f);
    info.neon = f.has(pakd::kCpuNeon);
    return write_versioned(info, out, sizeof(pakd_cpu_info));
  });
}

pakd_status pakd_f32_gemm(const char* kernel, size_t m, size_t n, size_t k,
                          const float* a, size_t lda, const float* b,
                          size_t ldb, float* c, size_t ldc) {
  return guarded([&] {
    if (lda < k || ldb < n || ldc < n) return PAKD_ERR_INVALID_ARGUMENT;
    if ((a == nullptr && m != 0 && k != 0) ||
        (b == nullptr && k != 0 && n != 0) ||
        (c == nullptr && m != 0 && n != 0)) {
      return PAKD_ERR_INVALID_ARGUMENT;
    }
    if (!fits(m, k, lda) || !fits(k, n, ldb) || !fits(m, n, ldc)) {
      return PAKD_ERR_INVALID_ARGUMENT;
    }
    const pakd::F32GemmKernel* chosen = &pakd::f32_gemm_best();
    if (kernel != nullptr) {
      chosen = pakd::f32_gemm_find(kernel);
      if (chosen == nullptr) return PAKD_ERR_INVALID_ARGUMENT;
      if (!pakd::f32_gemm_supported(*chosen)) return PAKD_ERR_UNSUPPORTED;
    }
    if (m == 0 || n == 0) return PAKD_OK;
    chosen->fn(m, n, k, a, lda, b, ldb, c, ldc);
    return PAKD_OK;
  });
}

size_t pakd_f32_gemm_kernel_count(void) {
  return pakd::f32_gemm_kernel_count();
}

pakd_status pakd_f32_gemm_kernel_info(size_t index, pakd_kernel_info* out) {
  return guarded([&] {
    if (index >= pakd::f32_gemm_kernel_count()) return PAKD_ERR_INVALID_ARGUMENT;
    const pakd::F32GemmKernel& kernel = pakd::f32_gemm_kernels()[index];
    pakd_kernel_info info{};
    info.struct_size = sizeof(info);
    info.name = kernel.name;
    info.isa = kernel.isa;
    info.supported = pakd::f32_gemm_supported(kernel) ? 1 : 0;
    return write_versioned(info, out, sizeof(pakd_kernel_info));
  });
}

const char* pakd_f32_gemm_best_kernel(void) {
  return pakd::f32_gemm_best().name;
}

}  // extern "C"
