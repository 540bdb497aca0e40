/*
 * ort-runner - runs an ONNX model on a device through ONNX Runtime's C API (the shared library of
 * the onnxruntime wheel for the device's platform): the second peer PaKD's ARM counts compare with.
 *
 *   ort-runner MODEL.onnx --input-shape 1,1,28,28 --output-shape 1,10
 *              [--input FILE.f32] [--output FILE.f32] [--iters N]
 *              [--input-name input] [--output-name logits]
 *
 * Input and output files are raw little-endian float32, one sample (no header), as for pakd-run.
 * Without --input the sample is pakd-run's fixed pattern (LCG seeded with 12345). The output tensor
 * is allocated here once and bound to every run, so a run allocates nothing of ours.
 *
 * --iters N runs N inferences after loading (default 1; 0: load only), so that an instruction
 * counter (a qemu plugin) gets the cost of one inference as (count(N) - count(0)) / N. One intra-op
 * and one inter-op thread: ONNX Runtime then runs every kernel on the calling thread (no pool, so
 * counts stay deterministic); graph optimizations at their highest level (what a user gets).
 *
 * The wheel ships libonnxruntime.so without its C header, so this file declares the little it uses
 * itself: OrtGetApiBase(), OrtApiBase's two entries, and the positions in the OrtApi function
 * table of the ten functions called below. The table is ONNX Runtime's stable ABI: new functions are
 * only ever appended, so these positions hold for every 1.x release (API version 13 is requested).
 * A wrong position could not pass PaKD's test: the output is compared with PyTorch's.
 *
 * Exit status: 0 success, 2 usage or input error (bad arguments, unreadable files, wrong sizes, a
 * model the runtime refuses), 3 the runtime failed while running.
 *
 * C99, linked with -lonnxruntime (the wheel's libonnxruntime.so.1, found through RUNPATH $ORIGIN).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kExitUsage = 2, kExitRuntime = 3, kMaxRank = 8 };

/* --- the part of ONNX Runtime's C API used here (our declarations, its ABI) ------------------- */
typedef struct OrtStatus OrtStatus; /* NULL means success */
typedef struct OrtEnv OrtEnv;
typedef struct OrtSession OrtSession;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtValue OrtValue;

typedef struct {
  const void* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)(void);
} OrtApiBaseView;
extern const OrtApiBaseView* OrtGetApiBase(void);

enum { kApiVersion = 13 };
enum { kLogError = 3, kOptimizeAll = 99, kArenaAllocator = 1, kMemTypeDefault = 0, kFloat = 1 };

/* positions in the OrtApi table */
enum {
  kGetErrorMessage = 2,
  kCreateEnv = 3,
  kCreateSession = 7,
  kRun = 9,
  kCreateSessionOptions = 10,
  kSetSessionGraphOptimizationLevel = 23,
  kSetIntraOpNumThreads = 24,
  kSetInterOpNumThreads = 25,
  kCreateTensorWithDataAsOrtValue = 49,
  kCreateCpuMemoryInfo = 69,
};

typedef void (*AnyFn)(void);
static const AnyFn* api;

typedef const char* (*GetErrorMessageFn)(const OrtStatus*);
typedef OrtStatus* (*CreateEnvFn)(int level, const char* logid, OrtEnv** out);
typedef OrtStatus* (*CreateSessionFn)(const OrtEnv*, const char* path, const OrtSessionOptions*, OrtSession** out);
typedef OrtStatus* (*RunFn)(OrtSession*, const void* run_options, const char* const* input_names,
                            const OrtValue* const* inputs, size_t n_inputs, const char* const* output_names,
                            size_t n_outputs, OrtValue** outputs);
typedef OrtStatus* (*CreateSessionOptionsFn)(OrtSessionOptions** out);
typedef OrtStatus* (*SetIntFn)(OrtSessionOptions*, int);
typedef OrtStatus* (*CreateTensorFn)(const OrtMemoryInfo*, void* data, size_t bytes, const int64_t* shape, size_t rank,
                                     int element_type, OrtValue** out);
typedef OrtStatus* (*CreateCpuMemoryInfoFn)(int allocator_type, int mem_type, OrtMemoryInfo** out);

#define ORT(index, type) ((type)api[index])

/* --- the runner ---------------------------------------------------------------------------------- */
static void die(int code, const char* what, const char* detail) {
  fprintf(stderr, "ort-runner: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(code);
}

static void check(OrtStatus* status, int code, const char* what) {
  if (status != NULL) die(code, what, ORT(kGetErrorMessage, GetErrorMessageFn)(status));
}

static void usage(void) {
  fprintf(stderr,
          "usage: ort-runner MODEL.onnx --input-shape D0,D1,... --output-shape D0,D1,...\n"
          "                  [--input FILE.f32] [--output FILE.f32] [--iters N]\n"
          "                  [--input-name NAME] [--output-name NAME]\n"
          "  --iters N      inferences to run (default 1; 0 loads the model only)\n");
  exit(kExitUsage);
}

/* "1,3,224,224" -> dims; returns the rank, the element count in *count */
static size_t parse_shape(const char* text, int64_t* dims, size_t* count) {
  size_t rank = 0;
  *count = 1;
  const char* p = text;
  while (*p) {
    char* end;
    errno = 0;
    long long d = strtoll(p, &end, 10);
    if (errno != 0 || end == p || d < 1 || d > (1LL << 30) || rank == kMaxRank) die(kExitUsage, "bad shape", text);
    dims[rank++] = d;
    *count *= (size_t)d;
    if (*end == ',') {
      p = end + 1;
    } else if (*end == '\0') {
      p = end;
    } else {
      die(kExitUsage, "bad shape", text);
    }
  }
  if (rank == 0) die(kExitUsage, "bad shape", text);
  return rank;
}

static void read_floats(const char* path, float* x, size_t n) {
  FILE* f = fopen(path, "rb");
  if (!f) die(kExitUsage, "cannot open input", path);
  size_t got = fread(x, sizeof(float), n, f);
  int extra = fgetc(f);
  fclose(f);
  if (got != n || extra != EOF) die(kExitUsage, "input file does not hold exactly one sample of --input-shape", path);
}

int main(int argc, char** argv) {
  const char *model = NULL, *input = NULL, *output = NULL, *in_shape = NULL, *out_shape = NULL;
  const char *in_name = "input", *out_name = "logits";
  long iters = 1;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    int valued = !strcmp(a, "--input") || !strcmp(a, "--output") || !strcmp(a, "--iters") ||
                 !strcmp(a, "--input-shape") || !strcmp(a, "--output-shape") || !strcmp(a, "--input-name") ||
                 !strcmp(a, "--output-name");
    if (valued && i + 1 >= argc) usage();
    if (!strcmp(a, "--input")) {
      input = argv[++i];
    } else if (!strcmp(a, "--output")) {
      output = argv[++i];
    } else if (!strcmp(a, "--input-shape")) {
      in_shape = argv[++i];
    } else if (!strcmp(a, "--output-shape")) {
      out_shape = argv[++i];
    } else if (!strcmp(a, "--input-name")) {
      in_name = argv[++i];
    } else if (!strcmp(a, "--output-name")) {
      out_name = argv[++i];
    } else if (!strcmp(a, "--iters")) {
      char* end;
      errno = 0;
      iters = strtol(argv[++i], &end, 10);
      if (errno != 0 || *end != '\0' || end == argv[i] || iters < 0)
        die(kExitUsage, "--iters needs an integer >= 0", 0);
    } else if (a[0] == '-' || model) {
      usage();
    } else {
      model = a;
    }
  }
  if (!model || !in_shape || !out_shape) usage();
  if (output && iters < 1) die(kExitUsage, "--output needs --iters >= 1", 0);

  int64_t xdims[kMaxRank], ydims[kMaxRank];
  size_t nx, ny;
  size_t xrank = parse_shape(in_shape, xdims, &nx), yrank = parse_shape(out_shape, ydims, &ny);
  float *x = malloc(nx * sizeof(float)), *y = calloc(ny, sizeof(float));
  if (!x || !y) die(kExitRuntime, "out of memory", 0);
  if (input) {
    read_floats(input, x, nx);
  } else { /* pakd-run's fixed pattern */
    uint32_t s = 12345u;
    for (size_t i = 0; i < nx; ++i) {
      s = s * 1664525u + 1013904223u;
      x[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
  }

  const OrtApiBaseView* base = OrtGetApiBase();
  api = (const AnyFn*)base->GetApi(kApiVersion);
  if (!api) die(kExitRuntime, "this onnxruntime does not offer C API version 13", base->GetVersionString());

  OrtEnv* env;
  OrtSessionOptions* opts;
  OrtSession* session;
  OrtMemoryInfo* cpu;
  check(ORT(kCreateEnv, CreateEnvFn)(kLogError, "ort-runner", &env), kExitRuntime, "creating the environment");
  check(ORT(kCreateSessionOptions, CreateSessionOptionsFn)(&opts), kExitRuntime, "session options");
  check(ORT(kSetIntraOpNumThreads, SetIntFn)(opts, 1), kExitRuntime, "intra-op threads");
  check(ORT(kSetInterOpNumThreads, SetIntFn)(opts, 1), kExitRuntime, "inter-op threads");
  check(ORT(kSetSessionGraphOptimizationLevel, SetIntFn)(opts, kOptimizeAll), kExitRuntime, "optimization level");
  check(ORT(kCreateSession, CreateSessionFn)(env, model, opts, &session), kExitUsage, "loading the model");
  check(ORT(kCreateCpuMemoryInfo, CreateCpuMemoryInfoFn)(kArenaAllocator, kMemTypeDefault, &cpu), kExitRuntime,
        "memory info");

  OrtValue *xv, *yv;
  CreateTensorFn create = ORT(kCreateTensorWithDataAsOrtValue, CreateTensorFn);
  check(create(cpu, x, nx * sizeof(float), xdims, xrank, kFloat, &xv), kExitUsage, "input tensor");
  check(create(cpu, y, ny * sizeof(float), ydims, yrank, kFloat, &yv), kExitUsage, "output tensor");
  const char *const in_names[1] = {in_name}, *const out_names[1] = {out_name};
  const OrtValue* const inputs[1] = {xv};
  RunFn run = ORT(kRun, RunFn);
  for (long i = 0; i < iters; ++i) {
    OrtValue* outputs[1] = {yv};
    check(run(session, NULL, in_names, inputs, 1, out_names, 1, outputs), kExitRuntime, "inference");
    if (outputs[0] != yv) die(kExitRuntime, "inference", "the runtime did not write into the bound output");
  }
  if (output) {
    FILE* f = fopen(output, "wb");
    if (!f) die(kExitUsage, "cannot write output", output);
    int ok = fwrite(y, sizeof(float), ny, f) == ny;
    if (fclose(f) != 0 || !ok) die(kExitUsage, "cannot write output", output);
  }
  return 0; /* the process ends here: the runtime's objects go with it */
}
