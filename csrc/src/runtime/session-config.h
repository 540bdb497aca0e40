// The options of a Session (the C API's pakd_session_options, checked).
#ifndef PAKD_SRC_RUNTIME_SESSION_CONFIG_H_
#define PAKD_SRC_RUNTIME_SESSION_CONFIG_H_

#include <cstddef>

#include "runtime/kernel-config.h"

namespace pakd::runtime {

struct SessionConfig {
  int num_threads = 1;
  std::size_t max_batch = 1;
  // The kernels: nullptr for KernelConfig::best() (KernelConfig::reference()
  // when `reference`); `gemm` (nullptr: the config's) overrides the f32 GEMM.
  const KernelConfig* kernels = nullptr;
  const KernelEntry<F32GemmFn>* gemm = nullptr;
  // Weights whose density (nonzeros / elements) is at most this run on the
  // sparse kernels; denser ones are expanded to dense f32. < 0: never sparse.
  float sparse_max_density = 0.35f;
  bool reference = false;   // every op through its naive reference kernel
  int codebook_kernel = 0;  // 0 auto (by layer size), 1 always, -1 never
  // Dense 3x3 stride-1 convolutions through Winograd F(4x4, 3x3):
  // 0 auto (where its cost model beats the direct kernels), 1 every eligible
  // layer, -1 never.
  int winograd = 0;
};

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_SESSION_CONFIG_H_
