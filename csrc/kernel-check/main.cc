// pakd-kernel-check [--family F] [--kernel K] [--list] [--verbose]
//
// Runs the check of every kernel family (or of F; of kernel K only) and
// prints one line per kernel:
//   ok   f32-gemm 6x16-avx2 (avx2+fma): 212 cases
//   skip f32-gemm 6x16-avx2 (avx2+fma): this CPU lacks it
//   FAIL f32-gemm 6x16-avx2 (avx2+fma): 3 of 212 cases; first: m=7 n=29 k=13: [5] got 1.25 want 1.5
// and a last line "cpu: <arch> features 0x..; N kernels ok, M failed, S
// skipped". Exit status: 0 when every supported kernel of every family was
// compared and matched, 1 when one did not (or a family has no check, or a
// supported kernel ran no case), 2 for a usage error.
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "kernel-check/kernel-check.h"
#include "runtime/cpu.h"

namespace pakd::check {

std::uint64_t Rng::next() {
  s_ ^= s_ >> 12;
  s_ ^= s_ << 25;
  s_ ^= s_ >> 27;
  return s_ * 0x2545F4914F6CDD1Dull;
}

float Rng::uniform(float lo, float hi) {
  const float u = static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);  // 24 bits in [0, 1)
  return lo + (hi - lo) * u;
}

std::size_t Rng::below(std::size_t n) { return static_cast<std::size_t>(next() % n); }

bool Rng::chance(double p) { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0) < p; }

std::vector<float> Rng::floats(std::size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (float& x : v) x = uniform(lo, hi);
  return v;
}

std::string format(const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

Checker::Tally& Checker::tally(const runtime::KernelInfo& kernel) {
  for (Tally& t : tallies_) {
    if (t.kernel == kernel.name) return t;
  }
  tallies_.push_back(Tally{kernel.name, 0, 0, {}});
  return tallies_.back();
}

bool Checker::use(const runtime::KernelInfo& kernel) {
  if (only_ != nullptr && std::strcmp(only_, kernel.name) != 0) return false;
  if (!runtime::kernel_supported(kernel.required)) return false;
  ++tally(kernel).cases;
  return true;
}

void Checker::fail(const runtime::KernelInfo& kernel, const std::string& message) {
  Tally& t = tally(kernel);
  if (t.failures++ == 0) t.first_failure = message;
  if (verbose_) std::printf("  %s %s: %s\n", family_, kernel.name, message.c_str());
}

bool Checker::expect_close(const runtime::KernelInfo& kernel, const std::string& what, const float* got,
                           const float* want, std::size_t n, float tol) {
  float scale = 1.0f;
  for (std::size_t i = 0; i < n; ++i) {
    const float a = want[i] < 0 ? -want[i] : want[i];
    if (a > scale) scale = a;  // NaN compares false: ignored
  }
  for (std::size_t i = 0; i < n; ++i) {
    const float g = got[i], w = want[i];
    bool ok;
    if (w != w) {
      ok = g != g;
    } else if (tol == 0.0f) {
      ok = std::memcmp(&g, &w, sizeof g) == 0;
    } else {
      const float d = g > w ? g - w : w - g;  // NaN g: false below
      ok = d <= tol * scale;
    }
    if (!ok) {
      fail(kernel,
           format("%s: [%zu] got %.9g want %.9g", what.c_str(), i, static_cast<double>(g), static_cast<double>(w)));
      return false;
    }
  }
  return true;
}

bool Checker::expect_equal(const runtime::KernelInfo& kernel, const std::string& what, const void* got,
                           const void* want, std::size_t bytes) {
  const auto* g = static_cast<const unsigned char*>(got);
  const auto* w = static_cast<const unsigned char*>(want);
  for (std::size_t i = 0; i < bytes; ++i) {
    if (g[i] != w[i]) {
      fail(kernel, format("%s: byte %zu differs (got 0x%02x want 0x%02x)", what.c_str(), i, g[i], w[i]));
      return false;
    }
  }
  return true;
}

std::vector<RegisteredCheck>& registered_checks() {
  static std::vector<RegisteredCheck> checks;
  return checks;
}

Registration::Registration(const char* family, CheckFn fn) { registered_checks().push_back({family, fn}); }

}  // namespace pakd::check

namespace {

int usage(const char* message) {
  std::fprintf(stderr,
               "pakd-kernel-check: %s\nusage: pakd-kernel-check [--family F] [--kernel K] [--list] [--verbose]\n",
               message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using pakd::check::Checker;
  const char* only_family = nullptr;
  const char* only_kernel = nullptr;
  bool list = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strcmp(a, "--family") == 0 && i + 1 < argc) {
      only_family = argv[++i];
    } else if (std::strcmp(a, "--kernel") == 0 && i + 1 < argc) {
      only_kernel = argv[++i];
    } else if (std::strcmp(a, "--list") == 0) {
      list = true;
    } else if (std::strcmp(a, "--verbose") == 0 || std::strcmp(a, "-v") == 0) {
      verbose = true;
    } else if (std::strcmp(a, "--help") == 0 || std::strcmp(a, "-h") == 0) {
      std::printf(
          "pakd-kernel-check [--family F] [--kernel K] [--list] [--verbose]\n"
          "Checks every kernel of every family against its family's reference; exit 1 on a mismatch.\n");
      return 0;
    } else {
      return usage((std::string("unknown or incomplete option ") + a).c_str());
    }
  }
  const pakd::CpuFeatures& cpu = pakd::cpu_features();
  if (only_family != nullptr && pakd::runtime::find_kernel_family(only_family) == nullptr) {
    return usage((std::string("unknown kernel family ") + only_family).c_str());
  }
  if (list) {
    for (const auto& family : pakd::runtime::kernel_families()) {
      for (const auto& k : family.kernels) {
        std::printf("%s %s (%s)%s\n", family.name, k.name, k.isa,
                    pakd::runtime::kernel_supported(k.required) ? "" : " unsupported");
      }
    }
    return 0;
  }
  int ok = 0, failed = 0, skipped = 0;
  for (const auto& family : pakd::runtime::kernel_families()) {
    if (only_family != nullptr && std::strcmp(only_family, family.name) != 0) continue;
    const pakd::check::RegisteredCheck* check = nullptr;
    for (const auto& r : pakd::check::registered_checks()) {
      if (std::strcmp(r.family, family.name) == 0) check = &r;
    }
    if (check == nullptr) {
      std::printf("FAIL %s: no check (add csrc/kernel-check/%s.cc)\n", family.name, family.name);
      ++failed;
      continue;
    }
    Checker checker(family.name, only_kernel, verbose);
    check->fn(checker);
    for (const auto& k : family.kernels) {
      if (only_kernel != nullptr && std::strcmp(only_kernel, k.name) != 0) continue;
      const Checker::Tally* t = nullptr;
      for (const auto& tally : checker.tallies()) {
        if (tally.kernel == k.name) t = &tally;
      }
      if (!pakd::runtime::kernel_supported(k.required)) {
        std::printf("skip %s %s (%s): this CPU lacks it\n", family.name, k.name, k.isa);
        ++skipped;
      } else if (t == nullptr || t->cases == 0) {
        std::printf("FAIL %s %s (%s): no case ran it\n", family.name, k.name, k.isa);
        ++failed;
      } else if (t->failures > 0) {
        std::printf("FAIL %s %s (%s): %zu of %zu cases; first: %s\n", family.name, k.name, k.isa, t->failures, t->cases,
                    t->first_failure.c_str());
        ++failed;
      } else {
        std::printf("ok   %s %s (%s): %zu cases\n", family.name, k.name, k.isa, t->cases);
        ++ok;
      }
    }
  }
  std::printf("cpu: %s features 0x%" PRIx32 "; %d kernels ok, %d failed, %d skipped\n", cpu.arch, cpu.bits, ok, failed,
              skipped);
  return failed == 0 ? 0 : 1;
}
