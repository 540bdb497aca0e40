// Runtime CPU feature detection: one binary runs on every CPU of its
// architecture and picks kernels from what the running CPU supports.
#include "runtime/cpu.h"

#if (defined(__arm__) || defined(__aarch64__)) && defined(__linux__)
#include <sys/auxv.h>  // getauxval(AT_HWCAP), getauxval(AT_HWCAP2)
#endif

namespace pakd {
namespace {

CpuFeatures detect() {
  CpuFeatures f{"unknown", 0};
#if defined(__x86_64__) || defined(_M_X64)
  f.arch = "x86_64";
  f.bits |= kCpuSse2;  // part of the x86-64 baseline
#if defined(__GNUC__) || defined(__clang__)
  // libgcc / compiler-rt also check that the OS saves the AVX state (XCR0).
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx")) f.bits |= kCpuAvx;
  if (__builtin_cpu_supports("avx2")) f.bits |= kCpuAvx2;
  if (__builtin_cpu_supports("fma")) f.bits |= kCpuFma;
  if (__builtin_cpu_supports("avx512f")) f.bits |= kCpuAvx512f;
#endif
#elif defined(__aarch64__) || defined(_M_ARM64)
  f.arch = "aarch64";
  f.bits |= kCpuNeon;  // Advanced SIMD is mandatory on AArch64
#if defined(__linux__)
  // The kernel's view of the CPU (what qemu's -cpu model or the board
  // reports): one binary runs dot-product kernels on a Pi 5 and plain NEON on
  // a Pi 4. Bit numbers from the kernel's asm/hwcap.h (AArch64).
  constexpr unsigned long kHwcapAsimddp = 1ul << 20;  // HWCAP_ASIMDDP
  constexpr unsigned long kHwcap2I8mm = 1ul << 13;    // HWCAP2_I8MM
  if (getauxval(AT_HWCAP) & kHwcapAsimddp) f.bits |= kCpuNeonDot;
  if (getauxval(AT_HWCAP2) & kHwcap2I8mm) f.bits |= kCpuI8mm;
#endif
#elif defined(__arm__)
  f.arch = "arm";
#if defined(__linux__)
  constexpr unsigned long kHwcapNeon = 1ul << 12;  // HWCAP_NEON on 32-bit ARM
  if (getauxval(AT_HWCAP) & kHwcapNeon) f.bits |= kCpuNeon;
#elif defined(__ARM_NEON)
  f.bits |= kCpuNeon;  // compiled for NEON: the target must have it
#endif
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace pakd
