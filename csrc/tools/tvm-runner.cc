/*
 * tvm-runner - runs a TVM-compiled PaKD model (model.so from pakd.lower.tvm.compile_tvm) on a
 * device through the TVM runtime alone (libtvm_runtime.so + libtvm_ffi.so, no Python).
 *
 *   tvm-runner MODEL.so [--input FILE.f32] [--output FILE.f32] [--iters N] [--threads N]
 *              [--bench] [--warmup N] [--repeats N]
 *
 * Input and output files are raw little-endian float32, one sample (no header), as for pakd-run.
 * Without --input the sample is pakd-run's fixed pattern (LCG seeded with 12345). The input shape
 * is read from the model itself (compile_tvm adds a `pakd_input_shape` function beside `main`).
 *
 * --iters N runs N inferences after loading (0: load only), so that an instruction counter
 * (a qemu plugin) gets the cost of one inference as (count(N) - count(0)) / N.
 * --bench times `main` after --warmup runs for --repeats runs and prints JSON statistics.
 *
 * Exit status: 0 success, 2 usage or input error (bad arguments, unreadable files, wrong sizes,
 * a model the runtime refuses), 3 the runtime failed while running. (1, a mismatch in pakd-run,
 * is not used: comparing outputs is the caller's job.)
 *
 * C++17 against the tvm-ffi headers only (tvm_ffi/include + dlpack); link -ltvm_runtime -ltvm_ffi.
 */
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitRuntime = 3;
constexpr int kAllocPooled = 2;  // relax VM allocator kind: pooled

const char* const kUsage =
    "usage: tvm-runner MODEL.so [options]\n"
    "\n"
    "Runs a TVM-compiled model (model.so from `pakd build --backend tvm`) on one sample.\n"
    "\n"
    "  --input FILE     input sample: raw little-endian float32, exactly the model's\n"
    "                   input size (default: pakd-run's fixed pattern)\n"
    "  --output FILE    write the output as raw float32\n"
    "  --iters N        inferences to run (default 1; 0 loads the model only)\n"
    "  --threads N      TVM runtime threads (default 1; sets TVM_NUM_THREADS)\n"
    "  --bench          time inference and print JSON statistics (microseconds)\n"
    "  --warmup N       untimed runs before timing (default 10)\n"
    "  --repeats N      timed runs (default 50)\n"
    "  --help           this text\n"
    "\n"
    "Exit status: 0 ok, 2 usage/input/model error, 3 runtime error.\n";

struct Options {
  std::string model;
  std::string input;
  std::string output;
  long iters = 1;
  long threads = 1;
  bool bench = false;
  long warmup = 10;
  long repeats = 50;
};

[[noreturn]] void Die(int code, const std::string& message) {
  std::fprintf(stderr, "tvm-runner: %s\n", message.c_str());
  std::exit(code);
}

long ParseLong(const std::string& flag, const char* text, long min_value) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min_value) {
    Die(kExitUsage, flag + " needs an integer >= " + std::to_string(min_value) + ", got '" + text + "'");
  }
  return v;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool valued =
        a == "--input" || a == "--output" || a == "--iters" || a == "--threads" || a == "--warmup" || a == "--repeats";
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (valued && i + 1 >= argc) Die(kExitUsage, a + " needs a value (see --help)");
    if (a == "--input") {
      o.input = argv[++i];
    } else if (a == "--output") {
      o.output = argv[++i];
    } else if (a == "--iters") {
      o.iters = ParseLong(a, argv[++i], 0);
    } else if (a == "--threads") {
      o.threads = ParseLong(a, argv[++i], 1);
      if (o.threads > 256) Die(kExitUsage, "--threads must be at most 256");
    } else if (a == "--warmup") {
      o.warmup = ParseLong(a, argv[++i], 0);
    } else if (a == "--repeats") {
      o.repeats = ParseLong(a, argv[++i], 1);
    } else if (a == "--bench") {
      o.bench = true;
    } else if (a.size() > 1 && a[0] == '-') {
      Die(kExitUsage, "unknown option '" + a + "' (see --help)");
    } else if (o.model.empty()) {
      o.model = a;
    } else {
      Die(kExitUsage, "more than one model given ('" + o.model + "' and '" + a + "')");
    }
  }
  if (o.model.empty()) Die(kExitUsage, "no model given (usage: tvm-runner MODEL.so [options]; see --help)");
  return o;
}

bool HostIsLittleEndian() {
  const uint32_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

void SwapFloats(float* v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    unsigned char b[4];
    std::memcpy(b, &v[i], 4);
    std::swap(b[0], b[3]);
    std::swap(b[1], b[2]);
    std::memcpy(&v[i], b, 4);
  }
}

void ReadF32File(const std::string& path, float* out, size_t n) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) Die(kExitUsage, "cannot open input file '" + path + "': " + std::strerror(errno));
  long bytes = -1;
  if (std::fseek(f, 0, SEEK_END) == 0) bytes = std::ftell(f);
  if (bytes < 0 || std::fseek(f, 0, SEEK_SET) != 0) {
    std::fclose(f);
    Die(kExitUsage, "cannot read input file '" + path + "'");
  }
  if (static_cast<unsigned long>(bytes) != n * sizeof(float)) {
    std::fclose(f);
    Die(kExitUsage, "input file '" + path + "' has " + std::to_string(bytes) + " bytes, the model needs " +
                        std::to_string(n) + " float32 values (" + std::to_string(n * sizeof(float)) + " bytes)");
  }
  const size_t got = std::fread(out, sizeof(float), n, f);
  std::fclose(f);
  if (got != n) Die(kExitUsage, "cannot read input file '" + path + "'");
  if (!HostIsLittleEndian()) SwapFloats(out, n);
}

void WriteF32File(const std::string& path, const float* v, size_t n) {
  std::vector<float> copy(v, v + n);
  if (!HostIsLittleEndian()) SwapFloats(copy.data(), n);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) Die(kExitUsage, "cannot write '" + path + "': " + std::strerror(errno));
  const bool ok = std::fwrite(copy.data(), sizeof(float), n, f) == n;
  if (std::fclose(f) != 0 || !ok) Die(kExitUsage, "cannot write '" + path + "'");
}

// pakd-run's default sample: x[i] in [-1, 1) from a 32-bit LCG seeded with 12345.
void FillPattern(float* x, size_t n) {
  uint32_t state = 12345u;
  for (size_t i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    x[i] = static_cast<float>((state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
  }
}

// Host memory for the input tensor (ffi::Tensor::FromNDAlloc's allocator protocol).
struct CpuAlloc {
  void AllocData(DLTensor* t) {
    size_t bytes = (t->dtype.bits * t->dtype.lanes + 7) / 8;
    for (int i = 0; i < t->ndim; ++i) bytes *= static_cast<size_t>(t->shape[i]);
    t->data = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (t->data == nullptr) Die(kExitRuntime, "out of memory");
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

bool IsFloat32(DLDataType t) { return t.code == kDLFloat && t.bits == 32 && t.lanes == 1; }

double NowMicros() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::micro>(Clock::now().time_since_epoch()).count();
}

double Percentile(const std::vector<double>& sorted, double p) {  // nearest rank
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

int Run(const Options& o) {
  // The runtime's thread pool reads TVM_NUM_THREADS when it starts (at the first parallel op).
  setenv("TVM_NUM_THREADS", std::to_string(o.threads).c_str(), 1);

  // LoadFromFile needs a path with a directory part, or dlopen searches the library path.
  const std::string path = o.model.find('/') == std::string::npos ? "./" + o.model : o.model;
  ffi::Module lib = [&] {
    try {
      return ffi::Module::LoadFromFile(path);
    } catch (const ffi::Error& e) {
      Die(kExitUsage, "cannot load model '" + o.model + "': " + e.what());
    }
  }();
  ffi::Module vm = [&] {
    try {
      ffi::Optional<ffi::Function> load = lib->GetFunction("vm_load_executable");
      if (!load.has_value()) Die(kExitUsage, "'" + o.model + "' is not a TVM Relax executable");
      ffi::Module m = (*load)().cast<ffi::Module>();
      ffi::Function init = m->GetFunction("vm_initialization").value();
      init(static_cast<int>(kDLCPU), 0, kAllocPooled);  // the device, then the host (also the CPU)
      return m;
    } catch (const ffi::Error& e) {
      Die(kExitUsage, "cannot start the model's VM: " + std::string(e.what()));
    }
  }();
  ffi::Optional<ffi::Function> main_fn = vm->GetFunction("main");
  ffi::Optional<ffi::Function> shape_fn = vm->GetFunction("pakd_input_shape");
  if (!main_fn.has_value()) Die(kExitUsage, "'" + o.model + "' has no main function");
  if (!shape_fn.has_value()) {
    Die(kExitUsage, "'" + o.model + "' has no pakd_input_shape function (build it with pakd.lower.tvm)");
  }

  std::vector<int64_t> dims;
  try {
    ffi::Shape shape = (*shape_fn)().cast<ffi::Shape>();
    dims.assign(shape.begin(), shape.end());
  } catch (const ffi::Error& e) {
    Die(kExitUsage, "cannot read the model's input shape: " + std::string(e.what()));
  }
  size_t input_size = 1;
  for (int64_t d : dims) input_size *= static_cast<size_t>(d);

  DLDevice cpu{kDLCPU, 0};
  ffi::Tensor x = ffi::Tensor::FromNDAlloc(CpuAlloc(), ffi::Shape(dims), DLDataType{kDLFloat, 32, 1}, cpu);
  float* xdata = static_cast<float*>(x.data_ptr());
  if (!o.input.empty()) {
    ReadF32File(o.input, xdata, input_size);
  } else {
    FillPattern(xdata, input_size);
  }

  ffi::Function run = *main_fn;
  auto infer = [&]() -> ffi::Tensor {
    try {
      return run(x).cast<ffi::Tensor>();
    } catch (const ffi::Error& e) {
      Die(kExitRuntime, "inference failed: " + std::string(e.what()));
    }
  };

  ffi::Optional<ffi::Tensor> y;
  for (long i = 0; i < o.iters; ++i) y = infer();

  std::vector<double> times;
  if (o.bench) {
    for (long i = 0; i < o.warmup; ++i) y = infer();
    times.reserve(static_cast<size_t>(o.repeats));
    for (long i = 0; i < o.repeats; ++i) {
      const double t0 = NowMicros();
      y = infer();
      times.push_back(NowMicros() - t0);
    }
  }

  size_t output_size = 0;
  const float* ydata = nullptr;
  if (y.has_value()) {
    const ffi::Tensor& out = *y;
    if (!IsFloat32(out.dtype()) || out.device().device_type != kDLCPU || !out.IsContiguous()) {
      Die(kExitRuntime, "the model's output is not a contiguous float32 CPU tensor");
    }
    output_size = static_cast<size_t>(out.numel());
    ydata = reinterpret_cast<const float*>(static_cast<const char*>(out.data_ptr()) + out.byte_offset());
  }
  if (!o.output.empty()) {
    if (ydata == nullptr) Die(kExitUsage, "--output needs at least one inference (--iters >= 1 or --bench)");
    WriteF32File(o.output, ydata, output_size);
  }

  if (o.bench) {
    double sum = 0.0, sq = 0.0;
    for (double t : times) sum += t;
    const double mean = sum / static_cast<double>(times.size());
    for (double t : times) sq += (t - mean) * (t - mean);
    const double stdev = times.size() > 1 ? std::sqrt(sq / static_cast<double>(times.size() - 1)) : 0.0;
    std::sort(times.begin(), times.end());
    const size_t n = times.size();
    const double med = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
    std::printf(
        "{\"model\": \"%s\", \"backend\": \"tvm\", \"threads\": %ld, \"batch\": %lld, \"runs\": %zu, "
        "\"median_us\": %.3f, \"p90_us\": %.3f, \"min_us\": %.3f, \"max_us\": %.3f, \"mean_us\": %.3f, "
        "\"stdev_us\": %.3f, \"input_size\": %zu, \"output_size\": %zu}\n",
        o.model.c_str(), o.threads, static_cast<long long>(dims.empty() ? 1 : dims[0]), n, med, Percentile(times, 90.0),
        times.front(), times.back(), mean, stdev, input_size, output_size);
  } else if (ydata != nullptr && o.output.empty()) {
    size_t best = 0;
    for (size_t i = 1; i < output_size; ++i) best = ydata[i] > ydata[best] ? i : best;
    std::printf("model: %s\ninput: %zu floats, output: %zu floats, %ld thread(s)\nargmax: %zu\noutput:",
                o.model.c_str(), input_size, output_size, o.threads, best);
    for (size_t i = 0; i < output_size && i < 10; ++i) std::printf(" %.6g", ydata[i]);
    std::printf("%s\n", output_size > 10 ? " ..." : "");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseArgs(argc, argv);
  try {
    return Run(o);
  } catch (const std::exception& e) {
    Die(kExitRuntime, std::string("unexpected error: ") + e.what());
  }
}
