/*
 * et-runner - runs an ExecuTorch program (.pte, e.g. lowered to XNNPACK by pakd.deploy.peers) on a
 * device through ExecuTorch's low-level runtime API alone: the peer PaKD's ARM counts compare with.
 *
 *   et-runner MODEL.pte [--input FILE.f32] [--output FILE.f32] [--iters N]
 *
 * Input and output files are raw little-endian float32, one sample (no header), as for pakd-run.
 * Without --input the sample is pakd-run's fixed pattern (LCG seeded with 12345). The input shape
 * is the program's own (method "forward", input 0, a float32 tensor).
 *
 * --iters N runs N inferences after loading (default 1; 0: load only), so that an instruction
 * counter (a qemu plugin) gets the cost of one inference as (count(N) - count(0)) / N. XNNPACK runs
 * on the calling thread alone, with no thread pool (counts stay deterministic).
 *
 * Exit status: 0 success, 2 usage or input error (bad arguments, unreadable files, wrong sizes, a
 * program the runtime refuses), 3 the runtime failed while running.
 *
 * C++17 against the headers and shared libraries of the executorch wheel (the target's platform):
 * -DC10_USING_CUSTOM_GENERATED_MACROS -DET_EVENT_TRACER_ENABLED, -Wl,--no-as-needed -lexecutorch
 * -lexecutorch_backend_xnnpack -lexecutorch_threadpool (the backend registers itself statically).
 */
#include <executorch/extension/data_loader/file_data_loader.h>
#include <executorch/runtime/core/evalue.h>
#include <executorch/runtime/core/hierarchical_allocator.h>
#include <executorch/runtime/core/memory_allocator.h>
#include <executorch/runtime/core/portable_type/tensor_impl.h>
#include <executorch/runtime/executor/memory_manager.h>
#include <executorch/runtime/executor/method.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/platform/platform.h>
#include <executorch/runtime/platform/runtime.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

// The wheel ships libexecutorch_threadpool.so but not its header: the one symbol used here. With
// the guard on, XNNPACK gets no thread pool and runs on the calling thread; no pool is ever made
// (a pool made and then cut to one thread leaves spinning workers: counts that vary run to run).
namespace executorch::extension::threadpool {
class NoThreadPoolGuard {
 public:
  static void set_enabled(bool enabled);
};
}  // namespace executorch::extension::threadpool

namespace et = executorch::runtime;
using executorch::aten::ScalarType;
using executorch::runtime::etensor::TensorImpl;

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitRuntime = 3;
constexpr size_t kMethodPoolBytes = 16u << 20;  // the method's own allocations (not its tensors)

const char* const kUsage =
    "usage: et-runner MODEL.pte [--input FILE.f32] [--output FILE.f32] [--iters N]\n"
    "\n"
    "Runs method \"forward\" of an ExecuTorch program on one float32 sample, one thread.\n"
    "  --input FILE   raw little-endian float32 (default: pakd-run's fixed pattern)\n"
    "  --output FILE  write output 0 as raw float32\n"
    "  --iters N      inferences to run (default 1; 0 loads the program only)\n"
    "Exit status: 0 ok, 2 usage/input/program error, 3 runtime error.\n";

[[noreturn]] void Die(int code, const std::string& message) {
  std::fprintf(stderr, "et-runner: %s\n", message.c_str());
  std::exit(code);
}

void Check(et::Error e, int code, const std::string& what) {
  if (e != et::Error::Ok) Die(code, what + " failed (executorch error " + std::to_string(static_cast<int>(e)) + ")");
}

// ExecuTorch's default log sink prints every info line with a timestamp, whose digits change the
// instruction count from run to run: keep the errors only, without the timestamp.
void QuietLog(et_timestamp_t, et_pal_log_level_t level, const char* file, const char*, size_t line, const char* message,
              size_t) {
  if (level == kError || level == kFatal)
    std::fprintf(stderr, "et-runner: executorch %s:%zu: %s\n", file, line, message);
}

std::vector<float> ReadF32(const std::string& path, size_t n) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) Die(kExitUsage, "cannot open input file '" + path + "': " + std::strerror(errno));
  std::vector<float> v(n + 1);
  const size_t got = std::fread(v.data(), sizeof(float), n + 1, f);
  std::fclose(f);
  if (got != n) {
    Die(kExitUsage, "input file '" + path + "' does not hold exactly " + std::to_string(n) + " float32 values");
  }
  v.resize(n);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, input, output;
  long iters = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    const bool valued = a == "--input" || a == "--output" || a == "--iters";
    if (valued && i + 1 >= argc) Die(kExitUsage, a + " needs a value (see --help)");
    if (a == "--input") {
      input = argv[++i];
    } else if (a == "--output") {
      output = argv[++i];
    } else if (a == "--iters") {
      char* end = nullptr;
      errno = 0;
      iters = std::strtol(argv[++i], &end, 10);
      if (errno != 0 || *end != '\0' || end == argv[i] || iters < 0) Die(kExitUsage, "--iters needs an integer >= 0");
    } else if (a.size() > 1 && a[0] == '-') {
      Die(kExitUsage, "unknown option '" + a + "' (see --help)");
    } else if (model.empty()) {
      model = a;
    } else {
      Die(kExitUsage, "more than one program given");
    }
  }
  if (model.empty()) Die(kExitUsage, "no program given (see --help)");

  et::register_pal(et::PalImpl::create(QuietLog, __FILE__));
  et::runtime_init();
  executorch::extension::threadpool::NoThreadPoolGuard::set_enabled(true);

  auto loader = executorch::extension::FileDataLoader::from(model.c_str());
  if (!loader.ok()) Die(kExitUsage, "cannot open program '" + model + "'");
  auto program = et::Program::load(&loader.get());
  if (!program.ok()) Die(kExitUsage, "'" + model + "' is not an ExecuTorch program");
  auto meta = program->method_meta("forward");
  if (!meta.ok()) Die(kExitUsage, "'" + model + "' has no method forward");

  std::vector<uint8_t> method_pool(kMethodPoolBytes);
  et::MemoryAllocator method_allocator(static_cast<uint32_t>(method_pool.size()), method_pool.data());
  std::vector<std::unique_ptr<uint8_t[]>> planned;
  std::vector<et::Span<uint8_t>> spans;
  for (size_t id = 0; id < meta->num_memory_planned_buffers(); ++id) {
    const size_t bytes = static_cast<size_t>(meta->memory_planned_buffer_size(id).get());
    planned.emplace_back(new uint8_t[bytes]);
    spans.emplace_back(planned.back().get(), bytes);
  }
  et::HierarchicalAllocator planned_memory({spans.data(), spans.size()});
  et::MemoryManager memory_manager(&method_allocator, &planned_memory);
  auto method = program->load_method("forward", &memory_manager);
  if (!method.ok()) Die(kExitUsage, "cannot load method forward (is the XNNPACK backend linked?)");

  auto in_meta = meta->input_tensor_meta(0);
  if (!in_meta.ok() || in_meta->scalar_type() != ScalarType::Float) Die(kExitUsage, "input 0 is not a float32 tensor");
  std::vector<TensorImpl::SizesType> sizes(in_meta->sizes().begin(), in_meta->sizes().end());
  std::vector<TensorImpl::DimOrderType> dim_order(in_meta->dim_order().begin(), in_meta->dim_order().end());
  std::vector<TensorImpl::StridesType> strides(sizes.size(), 1);
  size_t numel = 1;
  for (size_t d = sizes.size(); d-- > 0;) {
    strides[d] = static_cast<TensorImpl::StridesType>(numel);
    numel *= static_cast<size_t>(sizes[d]);
  }
  std::vector<float> x;
  if (!input.empty()) {
    x = ReadF32(input, numel);
  } else {  // pakd-run's default sample: x[i] in [-1, 1) from a 32-bit LCG seeded with 12345
    x.resize(numel);
    uint32_t state = 12345u;
    for (float& v : x) {
      state = state * 1664525u + 1013904223u;
      v = static_cast<float>((state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
  }
  TensorImpl impl(ScalarType::Float, static_cast<ssize_t>(sizes.size()), sizes.data(), x.data(), dim_order.data(),
                  strides.data());
  Check(method->set_input(et::EValue(executorch::aten::Tensor(&impl)), 0), kExitUsage, "setting input 0");

  for (long i = 0; i < iters; ++i) Check(method->execute(), kExitRuntime, "inference");

  if (!output.empty()) {
    if (iters < 1) Die(kExitUsage, "--output needs --iters >= 1");
    const et::EValue& y = method->get_output(0);
    if (!y.isTensor() || y.toTensor().scalar_type() != ScalarType::Float) Die(kExitRuntime, "output 0 is not float32");
    const auto t = y.toTensor();
    FILE* f = std::fopen(output.c_str(), "wb");
    if (f == nullptr) Die(kExitUsage, "cannot write '" + output + "': " + std::strerror(errno));
    const size_t n = static_cast<size_t>(t.numel());
    const bool ok = std::fwrite(t.const_data_ptr<float>(), sizeof(float), n, f) == n;
    if (std::fclose(f) != 0 || !ok) Die(kExitUsage, "cannot write '" + output + "'");
  }
  return 0;
}
