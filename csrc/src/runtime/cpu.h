// CPU feature detection (private to the core library).
#ifndef PAKD_SRC_RUNTIME_CPU_H_
#define PAKD_SRC_RUNTIME_CPU_H_

#include <cstdint>

namespace pakd {

// One bit per instruction-set extension a kernel may require.
enum CpuFeature : std::uint32_t {
  kCpuSse2 = 1u << 0,
  kCpuAvx = 1u << 1,
  kCpuAvx2 = 1u << 2,
  kCpuFma = 1u << 3,
  kCpuAvx512f = 1u << 4,
  kCpuNeon = 1u << 5,     // Advanced SIMD (all of AArch64; armv7 with NEON)
  kCpuNeonDot = 1u << 6,  // AArch64 SDOT/UDOT (ARMv8.2 dot product: Cortex-A55/A76, Pi 5; not the Pi 4's A72)
  kCpuI8mm = 1u << 7,     // AArch64 SMMLA/UMMLA (ARMv8.6 int8 matrix multiply)
};

struct CpuFeatures {
  const char* arch;    // "x86_64", "aarch64", "arm", "unknown"
  std::uint32_t bits;  // OR of CpuFeature

  bool has(std::uint32_t required) const { return (bits & required) == required; }
};

// Features of the running CPU, detected once (thread-safe) on first call.
const CpuFeatures& cpu_features();

}  // namespace pakd

#endif  // PAKD_SRC_RUNTIME_CPU_H_
