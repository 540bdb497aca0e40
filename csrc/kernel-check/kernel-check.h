// pakd-kernel-check: every kernel of every family against its family's
// reference, in C++ alone, so it runs where Python cannot: cross-built for
// aarch64 and armv7 and run under qemu with the board's CPU model
// (tests/deploy/test_kernel_check.py), and natively on the host.
//
// One file per family (<family>.cc) registers a check with
// PAKD_KERNEL_CHECK("family") { ... }. The body draws random problems of
// awkward sizes (tails past every tile and vector width), runs the family's
// reference (the first entry of its list) and then every kernel the check
// selects (Checker::use: supported by this CPU and not filtered out), and
// compares. main.cc fails a run in which a family of kernel_families() has no
// check or a supported kernel was never compared, so a new kernel or family
// is checked without anyone remembering to.
#ifndef PAKD_KERNEL_CHECK_KERNEL_CHECK_H_
#define PAKD_KERNEL_CHECK_KERNEL_CHECK_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/kernel-config.h"

namespace pakd::check {

// A small deterministic generator (xorshift64*): the same cases on every
// machine and every run.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  std::uint64_t next();
  float uniform(float lo = -1.0f, float hi = 1.0f);  // in [lo, hi)
  std::size_t below(std::size_t n);                  // in [0, n), n > 0
  bool chance(double p);                             // true with probability p
  std::vector<float> floats(std::size_t n, float lo = -1.0f, float hi = 1.0f);

 private:
  std::uint64_t s_;
};

class Checker {
 public:
  Checker(const char* family, const char* only_kernel, bool verbose)
      : family_(family), only_(only_kernel), verbose_(verbose) {}

  Rng rng{7};

  // Whether to run `kernel` now (supported by this CPU and selected); also
  // records that the case is about to run for it.
  bool use(const runtime::KernelInfo& kernel);
  // Compares got with want (the reference's output) over n floats:
  // |got - want| <= tol * max(1, max |want|) everywhere, NaN only where want
  // is NaN; tol 0 means bit-exact. `what` describes the case (shapes). Returns
  // whether it held; the first failure per kernel is reported with its index.
  bool expect_close(const runtime::KernelInfo& kernel, const std::string& what, const float* got, const float* want,
                    std::size_t n, float tol);
  bool expect_equal(const runtime::KernelInfo& kernel, const std::string& what, const void* got, const void* want,
                    std::size_t bytes);

  struct Tally {
    std::string kernel;
    std::size_t cases = 0;
    std::size_t failures = 0;
    std::string first_failure;
  };
  const std::vector<Tally>& tallies() const { return tallies_; }
  const char* family() const { return family_; }

 private:
  Tally& tally(const runtime::KernelInfo& kernel);
  void fail(const runtime::KernelInfo& kernel, const std::string& message);

  const char* family_;
  const char* only_;
  bool verbose_;
  std::vector<Tally> tallies_;
};

// printf into a std::string (case descriptions).
std::string format(const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

using CheckFn = void (*)(Checker&);
struct Registration {
  Registration(const char* family, CheckFn fn);
};
struct RegisteredCheck {
  const char* family;
  CheckFn fn;
};
std::vector<RegisteredCheck>& registered_checks();

}  // namespace pakd::check

#define PAKD_KERNEL_CHECK_CAT2(a, b) a##b
#define PAKD_KERNEL_CHECK_CAT(a, b) PAKD_KERNEL_CHECK_CAT2(a, b)
// PAKD_KERNEL_CHECK("f32-gemm") { ... c.use(...) ... } : the body sees
// `pakd::check::Checker& c`.
#define PAKD_KERNEL_CHECK(family)                                                                   \
  static void PAKD_KERNEL_CHECK_CAT(pakd_kernel_check_, __LINE__)(::pakd::check::Checker & c);      \
  static const ::pakd::check::Registration PAKD_KERNEL_CHECK_CAT(pakd_kernel_check_reg_, __LINE__)( \
      family, &PAKD_KERNEL_CHECK_CAT(pakd_kernel_check_, __LINE__));                                \
  static void PAKD_KERNEL_CHECK_CAT(pakd_kernel_check_, __LINE__)(::pakd::check::Checker & c)

#endif  // PAKD_KERNEL_CHECK_KERNEL_CHECK_H_
