// Standalone fuzz driver for LLVMFuzzerTestOneInput (fuzz-loader.cc), for
// compilers without libFuzzer (gcc). Build it with sanitizers
// (-DPAKD_SANITIZE=address,undefined, which also sets
// -fno-sanitize-recover=all) so that memory errors and undefined behaviour
// abort the run.
//
//   fuzz-loader [options] CORPUS_DIR_OR_FILE...
//     --seconds N     mutation phase length (default 0: run the corpus only)
//     --runs N        stop the mutation phase after N executions (default: no limit)
//     --seed S        PRNG seed (default 1); a run is reproducible from its seed
//     --max-len N     largest input produced by mutation (default 65536)
//     --timeout S     one execution taking longer is a finding (default 10)
//     --artifacts DIR where a crashing/hanging input is written (default .)
//
// Phase 1 runs every file given (directories: every regular file in them,
// sorted by name). Phase 2 mutates the corpus for --seconds: bit flips, byte
// sets, interesting integers (0, -1, 0x7f, 0x80, 0xffff, 0x7fffffff, ...),
// small additions, truncations, insertions, deletions, chunk copies and
// splices of two entries; in 9 of 10 inputs the .pakd header's file size
// (offset 16) and CRC-32 (offset 24, of every byte after the 32-byte header)
// are recomputed, so that mutants get past the checksum to the section,
// tensor and graph parsers.
//
// Feedback without coverage instrumentation: after each execution the driver
// reads pakd_last_error(); a mutant whose message (digits collapsed) was not
// seen before reaches a new refusal path and joins the corpus, and so do some
// mutants the library accepts. The pool is bounded.
//
// A finding (crash, sanitizer report, abort, timeout) writes the input to
// ARTIFACTS/crash-<hash> (or timeout-<hash>) and the process dies with a
// non-zero status. At the end one line of statistics is printed:
//   fuzz-loader: done: corpus=.. executions=.. seconds=.. exec_per_s=.. accepted=.. pool=.. distinct_errors=..
//   findings=0
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pakd-header-fixup.h"
#include "pakd/pakd.h"

// ASan reports memory errors and then calls a death callback (ours writes
// the input): gcc says __SANITIZE_ADDRESS__, clang __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define PAKD_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PAKD_FUZZ_ASAN 1
#endif
#endif
#ifdef PAKD_FUZZ_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

// Like libFuzzer: an allocation above 2 GiB from a small input is a finding
// (ASan reports it), not a reason to take the machine's memory.
extern "C" const char* __asan_default_options() { return "max_allocation_size_mb=2048:allocator_may_return_null=0"; }
// UBSan does not call the death callback: make it abort, so that the SIGABRT
// handler below writes the input.
extern "C" const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1:abort_on_error=1"; }

namespace {

// ---------------------------------------------------------------------------
// The input being executed, for the crash handlers (async-signal-safe writes)
// ---------------------------------------------------------------------------

const std::uint8_t* volatile g_current = nullptr;
volatile std::size_t g_current_size = 0;
char g_artifact_dir[4096] = ".";

std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Writes the current input to <dir>/<prefix>-<hash>; only async-signal-safe calls.
void dump_current(const char* prefix) {
  const std::uint8_t* data = g_current;
  const std::size_t size = g_current_size;
  if (data == nullptr && size != 0) return;
  char path[4200];
  std::size_t n = 0;
  for (const char* s = g_artifact_dir; *s && n < 4096; ++s) path[n++] = *s;
  path[n++] = '/';
  for (const char* s = prefix; *s; ++s) path[n++] = *s;
  path[n++] = '-';
  std::uint64_t h = fnv1a(data, size);
  for (int i = 15; i >= 0; --i) path[n++] = "0123456789abcdef"[(h >> (4 * i)) & 15];
  path[n] = '\0';
  const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    std::size_t off = 0;
    while (off < size) {
      const ssize_t w = write(fd, data + off, size - off);
      if (w <= 0) break;
      off += static_cast<std::size_t>(w);
    }
    close(fd);
  }
  const char* msg = "\nfuzz-loader: FINDING: input written to ";
  ssize_t ignored = write(2, msg, std::strlen(msg));
  ignored = write(2, path, n);
  ignored = write(2, "\n", 1);
  (void)ignored;
}

void on_death() { dump_current("crash"); }

void on_signal(int sig) {
  dump_current(sig == SIGALRM ? "timeout" : "crash");
  const char* msg = sig == SIGALRM ? "fuzz-loader: FINDING: timeout\n" : "fuzz-loader: FINDING: fatal signal\n";
  ssize_t ignored = write(2, msg, std::strlen(msg));
  (void)ignored;
  std::signal(sig, SIG_DFL);
  if (sig == SIGALRM) _exit(70);
  std::raise(sig);
}

void install_handlers() {
#ifdef PAKD_FUZZ_ASAN
  __sanitizer_set_death_callback(on_death);
#endif
  // With ASan, SEGV/BUS/FPE are ASan's (it calls on_death); these catch the
  // rest and cover builds without sanitizers.
  for (int sig : {SIGABRT, SIGALRM}) std::signal(sig, on_signal);
#ifndef PAKD_FUZZ_ASAN
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, on_signal);
#endif
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

using Bytes = std::vector<std::uint8_t>;

bool read_file(const std::string& path, Bytes* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

// Regular files of `path` (itself, or a directory's entries sorted by name).
std::vector<std::string> list_inputs(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "fuzz-loader: cannot open '%s': %s\n", path.c_str(), std::strerror(errno));
    std::exit(2);
  }
  if (!S_ISDIR(st.st_mode)) return {path};
  std::vector<std::string> files;
  if (DIR* d = opendir(path.c_str())) {
    while (const dirent* e = readdir(d)) {
      const std::string p = path + "/" + e->d_name;
      struct stat fs;
      if (e->d_name[0] != '.' && stat(p.c_str(), &fs) == 0 && S_ISREG(fs.st_mode)) files.push_back(p);
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  return files;
}

// ---------------------------------------------------------------------------
// Mutation
// ---------------------------------------------------------------------------

// xoshiro256** seeded through splitmix64: fast, and reproducible from --seed.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (auto& v : s_) {
      seed += 0x9E3779B97F4A7C15ull;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      v = z ^ (z >> 31);
    }
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n), n > 0.
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  bool chance(unsigned percent) { return below(100) < percent; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

void put_le(Bytes& b, std::size_t pos, std::uint64_t v, unsigned width) {
  for (unsigned i = 0; i < width && pos + i < b.size(); ++i) b[pos + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::uint64_t get_le(const Bytes& b, std::size_t pos, unsigned width) {
  std::uint64_t v = 0;
  for (unsigned i = 0; i < width && pos + i < b.size(); ++i) v |= std::uint64_t{b[pos + i]} << (8 * i);
  return v;
}

const std::uint64_t kInteresting[] = {0,          1,
                                      2,          3,
                                      4,          7,
                                      8,          16,
                                      31,         32,
                                      63,         64,
                                      127,        128,
                                      255,        256,
                                      0x7FFF,     0x8000,
                                      0xFFFF,     0x10000,
                                      0x7FFFFFFF, 0x80000000,
                                      0xFFFFFFFF, 0x100000000ull,
                                      ~0ull,      ~0ull - 1,
                                      1u << 20,   (1u << 20) + 1,
                                      1u << 28,   (1u << 28) + 1};

void mutate_once(Bytes& b, const std::vector<Bytes>& pool, Rng& rng, std::size_t max_len) {
  const unsigned widths[] = {1, 2, 4, 8};
  switch (rng.below(10)) {
    case 0:  // flip one bit
      if (!b.empty()) b[rng.below(b.size())] ^= static_cast<std::uint8_t>(1u << rng.below(8));
      break;
    case 1:  // set one byte
      if (!b.empty()) b[rng.below(b.size())] = static_cast<std::uint8_t>(rng.next());
      break;
    case 2:
    case 3: {  // an interesting integer, little-endian, 1/2/4/8 bytes wide
      if (b.empty()) break;
      const unsigned w = widths[rng.below(4)];
      std::uint64_t v = kInteresting[rng.below(sizeof(kInteresting) / sizeof(kInteresting[0]))];
      if (rng.chance(20)) v = ~v + 1;  // negative
      put_le(b, rng.below(b.size()), v, w);
      break;
    }
    case 4: {  // add or subtract a small number to a 1/2/4-byte field
      if (b.empty()) break;
      const unsigned w = widths[rng.below(3)];
      const std::size_t pos = rng.below(b.size());
      const std::int64_t delta = static_cast<std::int64_t>(rng.below(35)) - 17;
      put_le(b, pos, get_le(b, pos, w) + static_cast<std::uint64_t>(delta), w);
      break;
    }
    case 5:  // truncate
      if (!b.empty()) b.resize(rng.below(b.size()));
      break;
    case 6: {  // insert 1..16 bytes (random, or a repeated byte)
      const std::size_t n = 1 + rng.below(16);
      const std::size_t pos = rng.below(b.size() + 1);
      const std::uint8_t fill = static_cast<std::uint8_t>(rng.next());
      Bytes ins(n);
      for (auto& x : ins) x = rng.chance(50) ? fill : static_cast<std::uint8_t>(rng.next());
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(pos), ins.begin(), ins.end());
      break;
    }
    case 7: {  // delete a range
      if (b.empty()) break;
      const std::size_t pos = rng.below(b.size());
      const std::size_t n = 1 + rng.below(std::min<std::size_t>(64, b.size() - pos));
      b.erase(b.begin() + static_cast<std::ptrdiff_t>(pos), b.begin() + static_cast<std::ptrdiff_t>(pos + n));
      break;
    }
    case 8: {  // copy a chunk within the input (overwrite)
      if (b.size() < 2) break;
      const std::size_t from = rng.below(b.size()), to = rng.below(b.size());
      const std::size_t n = 1 + rng.below(std::min<std::size_t>({64, b.size() - from, b.size() - to}));
      std::memmove(b.data() + to, b.data() + from, n);
      break;
    }
    default: {  // splice with another entry: our prefix + its suffix, or a chunk of it pasted in
      const Bytes& other = pool[rng.below(pool.size())];
      if (other.empty()) break;
      if (rng.chance(50)) {
        const std::size_t cut = rng.below(b.size() + 1), from = rng.below(other.size());
        b.resize(cut);
        b.insert(b.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
      } else if (!b.empty()) {
        const std::size_t from = rng.below(other.size()), to = rng.below(b.size());
        const std::size_t n = 1 + rng.below(std::min<std::size_t>({256, other.size() - from, b.size() - to}));
        std::memcpy(b.data() + to, other.data() + from, n);
      }
      break;
    }
  }
  if (b.size() > max_len) b.resize(max_len);
}

// pakd_last_error() with numbers and quoted names collapsed: which refusal
// path was taken, not which values led there.
std::string error_signature() {
  std::string s;
  bool in_digits = false, in_quote = false;
  for (const char* p = pakd_last_error(); *p; ++p) {
    if (*p == '\'') {
      if (!in_quote) s += "'*'";
      in_quote = !in_quote;
      continue;
    }
    if (in_quote) continue;
    const bool digit = *p >= '0' && *p <= '9';
    if (!digit)
      s += *p;
    else if (!in_digits)
      s += '#';
    in_digits = digit;
  }
  return s;
}

struct Args {
  std::vector<std::string> inputs;
  double seconds = 0;
  std::uint64_t runs = 0;  // 0: unlimited
  std::uint64_t seed = 1;
  std::size_t max_len = 65536;
  unsigned timeout = 10;
  std::string artifacts = ".";
};

[[noreturn]] void usage_error(const char* msg, const char* arg) {
  std::fprintf(stderr, "fuzz-loader: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
  std::fprintf(stderr,
               "usage: fuzz-loader [--seconds N] [--runs N] [--seed S] [--max-len N] [--timeout S] "
               "[--artifacts DIR] CORPUS_DIR_OR_FILE...\n");
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error("missing value for", argv[i]);
      return argv[++i];
    };
    auto number = [&](const char* v) -> double {
      char* end = nullptr;
      const double d = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(d >= 0)) usage_error("bad number", v);
      return d;
    };
    if (k == "--seconds")
      a.seconds = number(value());
    else if (k == "--runs")
      a.runs = static_cast<std::uint64_t>(number(value()));
    else if (k == "--seed")
      a.seed = static_cast<std::uint64_t>(number(value()));
    else if (k == "--max-len")
      a.max_len = static_cast<std::size_t>(number(value()));
    else if (k == "--timeout")
      a.timeout = static_cast<unsigned>(number(value()));
    else if (k == "--artifacts")
      a.artifacts = value();
    else if (k == "--help" || k == "-h")
      usage_error("", nullptr);
    else if (!k.empty() && k[0] == '-')
      usage_error("unknown option", argv[i]);
    else
      a.inputs.push_back(k);
  }
  if (a.inputs.empty()) usage_error("no corpus given", nullptr);
  if (a.max_len < 32) a.max_len = 32;
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  std::snprintf(g_artifact_dir, sizeof(g_artifact_dir), "%s", args.artifacts.c_str());
  install_handlers();

  std::uint64_t executions = 0, accepted = 0;
  std::set<std::string> errors;
  double slowest = 0;
  std::string slowest_sig;
  auto execute = [&](const Bytes& input) -> bool {  // true when it found something new
    g_current = input.data();
    g_current_size = input.size();
    if (args.timeout) alarm(args.timeout);
    const auto t0 = std::chrono::steady_clock::now();
    LLVMFuzzerTestOneInput(input.data(), input.size());
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (args.timeout) alarm(0);
    ++executions;
    const std::string sig = error_signature();
    if (t > slowest) slowest = t, slowest_sig = sig.empty() ? "(accepted)" : sig;
    if (sig.empty()) {
      ++accepted;
      return false;
    }
    return errors.insert(sig).second;
  };

  // Phase 1: the corpus as given.
  std::vector<Bytes> pool;
  for (const std::string& in : args.inputs) {
    for (const std::string& path : list_inputs(in)) {
      Bytes b;
      if (!read_file(path, &b)) {
        std::fprintf(stderr, "fuzz-loader: cannot read '%s'\n", path.c_str());
        return 2;
      }
      execute(b);
      pool.push_back(std::move(b));
    }
  }
  const std::size_t corpus_size = pool.size();
  std::fprintf(stderr, "fuzz-loader: ran %zu corpus inputs (%llu accepted)\n", corpus_size,
               static_cast<unsigned long long>(accepted));

  // Phase 2: mutations for a bounded time.
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const std::size_t kMaxPool = 4096;
  if (pool.empty()) pool.push_back(Bytes());
  Rng rng(args.seed);
  std::uint64_t mutations = 0;
  while (args.seconds > 0 && (args.runs == 0 || mutations < args.runs)) {
    if ((mutations & 63) == 0 && elapsed() >= args.seconds) break;
    Bytes b = pool[rng.below(pool.size())];
    const std::size_t stack = 1 + rng.below(rng.chance(50) ? 2 : 8);
    for (std::size_t i = 0; i < stack; ++i) mutate_once(b, pool, rng, args.max_len);
    if (rng.chance(90)) pakd_fuzz::fix_header(b.data(), b.size());
    const bool is_new = execute(b);
    ++mutations;
    if (pool.size() < kMaxPool && (is_new || (pakd_last_error()[0] == '\0' && rng.chance(5)))) {
      pool.push_back(std::move(b));
    }
  }
  const double seconds = elapsed();
  std::printf(
      "fuzz-loader: done: corpus=%zu executions=%llu mutations=%llu seconds=%.1f exec_per_s=%.0f accepted=%llu "
      "pool=%zu distinct_errors=%zu slowest_ms=%.0f findings=0\n",
      corpus_size, static_cast<unsigned long long>(executions), static_cast<unsigned long long>(mutations), seconds,
      seconds > 0 ? static_cast<double>(mutations) / seconds : 0.0, static_cast<unsigned long long>(accepted),
      pool.size(), errors.size(), slowest * 1e3);
  std::fprintf(stderr, "fuzz-loader: slowest input: %s\n", slowest_sig.c_str());
  return 0;
}
