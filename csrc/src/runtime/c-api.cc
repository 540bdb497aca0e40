// Implementation of the public C API (include/pakd/pakd.h).
//
// Every entry point validates its arguments, runs the C++ core inside a
// try/catch, and reports through pakd_status: no exception crosses the C
// boundary.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <new>
#include <string>

#include "pakd/pakd.h"
#include "runtime/cpu.h"
#include "runtime/kernel-config.h"
#include "runtime/model-file.h"
#include "runtime/session.h"

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

struct pakd_session {
  std::unique_ptr<pakd::runtime::Session> impl;
  std::vector<std::string> op_descriptions;  // filled on first request
  std::vector<double> op_ns;                 // profiling accumulator
};

#ifndef PAKD_VERSION_STRING
#error "PAKD_VERSION_STRING must be defined by the build (CMakeLists.txt)"
#endif

namespace {

// pakd_last_error(): the message of the last failed call on this thread.
thread_local std::string g_last_error;

// Runs `body` (returning pakd_status) and maps any escaping exception to a
// status.
pakd_status set_error(pakd_status status, const std::string& message) {
  g_last_error = message;
  return status;
}

// Runs `body` (returning pakd_status) and maps any escaping exception to a
// status, keeping its message for pakd_last_error().
template <typename Body>
pakd_status guarded(Body&& body) noexcept {
  try {
    g_last_error.clear();
    return body();
  } catch (const pakd::runtime::FormatError& e) {
    return set_error(PAKD_ERR_BAD_FORMAT, e.what());
  } catch (const std::invalid_argument& e) {
    return set_error(PAKD_ERR_INVALID_ARGUMENT, e.what());
  } catch (const std::bad_alloc&) {
    return set_error(PAKD_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return set_error(PAKD_ERR_INTERNAL, e.what());
  } catch (...) {
    return set_error(PAKD_ERR_INTERNAL, "unknown exception");
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
    info.neon_dot = f.has(pakd::kCpuNeonDot);
    info.i8mm = f.has(pakd::kCpuI8mm);
    return write_versioned(info, out, sizeof(pakd_cpu_info));
  });
}

pakd_status pakd_f32_gemm(const char* kernel, size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b,
                          size_t ldb, float* c, size_t ldc) {
  return guarded([&] {
    if (lda < k || ldb < n || ldc < n) return PAKD_ERR_INVALID_ARGUMENT;
    if ((a == nullptr && m != 0 && k != 0) || (b == nullptr && k != 0 && n != 0) ||
        (c == nullptr && m != 0 && n != 0)) {
      return PAKD_ERR_INVALID_ARGUMENT;
    }
    if (!fits(m, k, lda) || !fits(k, n, ldb) || !fits(m, n, ldc)) {
      return PAKD_ERR_INVALID_ARGUMENT;
    }
    const auto& kernels = pakd::runtime::f32_gemm_kernels();
    const auto* chosen = &kernels.best();
    if (kernel != nullptr) {
      chosen = kernels.find(kernel);
      if (chosen == nullptr) return PAKD_ERR_INVALID_ARGUMENT;
      if (!pakd::runtime::kernel_supported(chosen->required)) return PAKD_ERR_UNSUPPORTED;
    }
    if (m == 0 || n == 0) return PAKD_OK;
    chosen->fn(m, n, k, a, lda, b, ldb, c, ldc);
    return PAKD_OK;
  });
}

size_t pakd_f32_gemm_kernel_count(void) { return pakd::runtime::f32_gemm_kernels().size(); }

pakd_status pakd_f32_gemm_kernel_info(size_t index, pakd_kernel_info* out) {
  return guarded([&] {
    if (index >= pakd::runtime::f32_gemm_kernels().size()) return PAKD_ERR_INVALID_ARGUMENT;
    const auto& kernel = pakd::runtime::f32_gemm_kernels().entries[index];
    pakd_kernel_info info{};
    info.struct_size = sizeof(info);
    info.name = kernel.name;
    info.isa = kernel.isa;
    info.supported = pakd::runtime::kernel_supported(kernel.required) ? 1 : 0;
    return write_versioned(info, out, sizeof(pakd_kernel_info));
  });
}

const char* pakd_f32_gemm_best_kernel(void) { return pakd::runtime::f32_gemm_kernels().best().name; }

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

void pakd_session_options_init(pakd_session_options* options) {
  if (options == nullptr) return;
  *options = pakd_session_options{};
  options->struct_size = sizeof(pakd_session_options);
  options->num_threads = 1;
  options->max_batch = 1;
  options->gemm_kernel = nullptr;
  options->sparse_max_density = 0.35f;
  options->reference = 0;
  options->codebook_kernel = 0;
  options->winograd = 0;
}

namespace {

pakd_status make_config(const pakd_session_options* options, pakd::runtime::SessionConfig* config) {
  if (options == nullptr) return PAKD_OK;
  if (options->struct_size < offsetof(pakd_session_options, gemm_kernel) + sizeof(const char*)) {
    return set_error(PAKD_ERR_INVALID_ARGUMENT,
                     "pakd_session_options.struct_size is too small (call pakd_session_options_init)");
  }
  pakd_session_options o;
  pakd_session_options_init(&o);
  std::memcpy(&o, options, std::min(options->struct_size, sizeof(o)));
  config->num_threads = o.num_threads < 1 ? 1 : o.num_threads;
  if (o.num_threads > 256) return set_error(PAKD_ERR_INVALID_ARGUMENT, "num_threads above 256");
  config->max_batch = o.max_batch == 0 ? 1 : o.max_batch;
  config->sparse_max_density = o.sparse_max_density;
  config->reference = o.reference != 0;
  config->codebook_kernel = o.codebook_kernel;
  config->winograd = o.winograd;
  if (o.gemm_kernel != nullptr) {
    config->gemm = pakd::runtime::f32_gemm_kernels().find(o.gemm_kernel);
    if (config->gemm == nullptr)
      return set_error(PAKD_ERR_INVALID_ARGUMENT, std::string("unknown GEMM kernel '") + o.gemm_kernel + "'");
    if (!pakd::runtime::kernel_supported(config->gemm->required))
      return set_error(PAKD_ERR_UNSUPPORTED, std::string("GEMM kernel '") + o.gemm_kernel + "' cannot run on this CPU");
  }
  return PAKD_OK;
}

}  // namespace

pakd_status pakd_session_create(const void* data, size_t size, const pakd_session_options* options,
                                pakd_session** out) {
  return guarded([&] {
    if (out == nullptr) return set_error(PAKD_ERR_INVALID_ARGUMENT, "out is NULL");
    if (data == nullptr && size != 0) return set_error(PAKD_ERR_INVALID_ARGUMENT, "data is NULL");
    pakd::runtime::SessionConfig config;
    const pakd_status st = make_config(options, &config);
    if (st != PAKD_OK) return st;
    auto session = std::make_unique<pakd_session>();
    session->impl = std::make_unique<pakd::runtime::Session>(static_cast<const std::uint8_t*>(data), size, config);
    *out = session.release();
    return PAKD_OK;
  });
}

pakd_status pakd_session_create_from_file(const char* path, const pakd_session_options* options, pakd_session** out) {
  return guarded([&] {
    if (path == nullptr || out == nullptr) return set_error(PAKD_ERR_INVALID_ARGUMENT, "path or out is NULL");
    std::FILE* f = std::fopen(path, "rb");
    if (f == nullptr) return set_error(PAKD_ERR_INVALID_ARGUMENT, std::string("cannot open '") + path + "'");
    std::vector<std::uint8_t> bytes;
    std::uint8_t buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) return set_error(PAKD_ERR_INVALID_ARGUMENT, std::string("cannot read '") + path + "'");
    const pakd_status st = pakd_session_create(bytes.data(), bytes.size(), options, out);
    if (st != PAKD_OK) g_last_error = std::string(path) + ": " + g_last_error;
    return st;
  });
}

void pakd_session_destroy(pakd_session* session) { delete session; }

pakd_status pakd_session_get_info(const pakd_session* session, pakd_session_info* out) {
  return guarded([&] {
    if (session == nullptr) return set_error(PAKD_ERR_INVALID_ARGUMENT, "session is NULL");
    const pakd::runtime::Session& s = *session->impl;
    pakd_session_info info{};
    info.struct_size = sizeof(info);
    info.input_ndim = s.input_dims().size();
    for (std::size_t i = 0; i < info.input_ndim; ++i) info.input_dims[i] = s.input_dims()[i];
    info.output_ndim = s.output_dims().size();
    for (std::size_t i = 0; i < info.output_ndim; ++i) info.output_dims[i] = s.output_dims()[i];
    info.input_size = s.input_size();
    info.output_size = s.output_size();
    info.num_ops = s.num_ops();
    info.weight_bytes = s.weight_bytes();
    info.arena_bytes = s.arena_bytes();
    info.num_threads = s.num_threads();
    info.max_batch = s.max_batch();
    const pakd_status st = write_versioned(info, out, offsetof(pakd_session_info, max_batch) + sizeof(size_t));
    if (st != PAKD_OK) return set_error(st, "out is NULL or its struct_size is too small");
    return st;
  });
}

pakd_status pakd_session_metadata(const pakd_session* session, const char** out) {
  return guarded([&] {
    if (session == nullptr || out == nullptr) return set_error(PAKD_ERR_INVALID_ARGUMENT, "session or out is NULL");
    *out = session->impl->meta().c_str();
    return PAKD_OK;
  });
}

pakd_status pakd_session_run_profiled(pakd_session* session, const float* input, size_t batch, float* output,
                                      size_t output_capacity, double* op_us, size_t op_count) {
  return guarded([&] {
    if (session == nullptr || input == nullptr || output == nullptr) {
      return set_error(PAKD_ERR_INVALID_ARGUMENT, "session, input or output is NULL");
    }
    pakd::runtime::Session& s = *session->impl;
    if (batch == 0 || batch > s.max_batch()) {
      return set_error(PAKD_ERR_INVALID_ARGUMENT, "batch " + std::to_string(batch) +
                                                      " outside [1, max_batch=" + std::to_string(s.max_batch()) + "]");
    }
    if (output_capacity < batch * s.output_size()) {
      return set_error(PAKD_ERR_INVALID_ARGUMENT, "output holds " + std::to_string(output_capacity) + " floats, " +
                                                      std::to_string(batch * s.output_size()) + " needed");
    }
    if (op_us == nullptr) {
      s.run(input, batch, output);
      return PAKD_OK;
    }
    if (op_count != s.num_ops()) {
      return set_error(PAKD_ERR_INVALID_ARGUMENT, "op_count " + std::to_string(op_count) + " but the model has " +
                                                      std::to_string(s.num_ops()) + " ops");
    }
    session->op_ns.assign(op_count, 0.0);  // sized once per model; profiling is not the hot path
    s.run_profiled(input, batch, output, session->op_ns.data());
    for (std::size_t i = 0; i < op_count; ++i) op_us[i] += session->op_ns[i] / 1000.0;
    return PAKD_OK;
  });
}

pakd_status pakd_session_run(pakd_session* session, const float* input, size_t batch, float* output,
                             size_t output_capacity) {
  return pakd_session_run_profiled(session, input, batch, output, output_capacity, nullptr, 0);
}

pakd_status pakd_session_op_description(const pakd_session* session, size_t index, const char** out) {
  return guarded([&] {
    if (session == nullptr || out == nullptr) return set_error(PAKD_ERR_INVALID_ARGUMENT, "session or out is NULL");
    if (index >= session->impl->num_ops()) return set_error(PAKD_ERR_INVALID_ARGUMENT, "op index out of range");
    auto* s = const_cast<pakd_session*>(session);
    if (s->op_descriptions.empty()) {
      for (std::size_t i = 0; i < s->impl->num_ops(); ++i) s->op_descriptions.push_back(s->impl->op_description(i));
    }
    *out = s->op_descriptions[index].c_str();
    return PAKD_OK;
  });
}

}  // extern "C"
