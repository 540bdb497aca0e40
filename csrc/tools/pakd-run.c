/*
 * pakd-run - runs a .pakd model on a device through the public C API only.
 *
 *   pakd-run MODEL.pakd [--input FILE.f32] [--expect FILE.f32] [--atol X]
 *            [--threads N] [--save-output FILE.f32] [--json]
 *            [--bench] [--warmup N] [--repeats N] [--min-time SECONDS]
 *            [--iters N]
 *
 * Input, expected and saved output files are raw little-endian float32, one
 * sample (no header). Without --input the sample is a fixed pattern (see
 * fill_pattern) so that runs are reproducible across machines.
 *
 * --iters N loads the model, prepares the input, runs N inferences and exits
 * 0 printing nothing: for counting instructions under an emulator, where the
 * difference between --iters N+1 and --iters 1 is N inferences and nothing else.
 *
 * Exit status: 0 success, 1 output differs from --expect, 2 usage or input
 * error (bad arguments, unreadable files, wrong sizes, a model the library
 * refuses), 3 the library failed while running.
 *
 * Plain C99 + POSIX (clock_gettime, getrusage).
 */
#define _POSIX_C_SOURCE 200809L

#include "pakd/pakd.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define EXIT_MISMATCH 1
#define EXIT_USAGE 2
#define EXIT_RUNTIME 3
#define OUTPUT_PREVIEW 10

static const char* const kUsage =
    "usage: pakd-run MODEL.pakd [options]\n"
    "\n"
    "Runs MODEL.pakd once on one sample (or benchmarks it with --bench).\n"
    "\n"
    "  --input FILE        input sample: raw little-endian float32, exactly the\n"
    "                      model's input size (default: a fixed pattern,\n"
    "                      x[i] in [-1, 1) from an LCG seeded with 12345)\n"
    "  --expect FILE       expected output (raw float32); exit 1 when the max\n"
    "                      absolute difference exceeds --atol or the argmax\n"
    "                      differs\n"
    "  --atol X            tolerance for --expect (default 1e-4)\n"
    "  --threads N         worker threads (default 1)\n"
    "  --save-output FILE  write the whole output as raw float32\n"
    "  --json              print the result as one JSON object\n"
    "  --bench             time pakd_session_run and print JSON statistics\n"
    "  --warmup N          untimed runs before timing (default 10)\n"
    "  --repeats N         at least N timed runs (default 50)\n"
    "  --min-time SECONDS  and at least this long in total (default 1.0)\n"
    "  --winograd MODE     auto (default), on (every 3x3 stride-1 dense\n"
    "                      convolution through Winograd F(4x4,3x3)) or off\n"
    "  --sparse-max-density X  weights with at most this fraction of\n"
    "                      nonzeros may run sparse (default 0.35; -1: all dense)\n"
    "  --iters N           run N inferences (N >= 0), print nothing, exit 0:\n"
    "                      for instruction counts under an emulator\n"
    "                      (not with --bench/--expect/--save-output/--json)\n"
    "  --help              this text\n"
    "\n"
    "Exit status: 0 ok, 1 output mismatch, 2 usage/input error, 3 runtime error.\n";

typedef struct options {
  const char* model;
  const char* input;
  const char* expect;
  const char* save_output;
  double atol;
  int threads;
  int json;
  int bench;
  long warmup;
  long repeats;
  double min_time;
  long iters;   /* -1: not given */
  int winograd; /* pakd_session_options.winograd: 0 auto, 1 on, -1 off */
  int sparse_given;
  double sparse_max_density;
} options;

static void die(int code, const char* fmt, ...) {
  va_list args;
  fputs("pakd-run: ", stderr);
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fputc('\n', stderr);
  exit(code);
}

static long parse_long(const char* flag, const char* text, long min_value) {
  char* end = NULL;
  long v;
  errno = 0;
  v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min_value) {
    die(EXIT_USAGE, "%s needs an integer >= %ld, got '%s'", flag, min_value, text);
  }
  return v;
}

static double parse_double(const char* flag, const char* text) {
  char* end = NULL;
  double v;
  errno = 0;
  v = strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !(v >= 0.0) || isinf(v)) {
    die(EXIT_USAGE, "%s needs a number >= 0, got '%s'", flag, text);
  }
  return v;
}

static void parse_args(int argc, char** argv, options* o) {
  int i;
  memset(o, 0, sizeof(*o));
  o->atol = 1e-4;
  o->threads = 1;
  o->warmup = 10;
  o->repeats = 50;
  o->min_time = 1.0;
  o->iters = -1;
  for (i = 1; i < argc; ++i) {
    const char* a = argv[i];
    /* Flags that take a value. */
    const char* const valued[] = {"--input",   "--expect",   "--atol",  "--threads",  "--save-output",       "--warmup",
                                  "--repeats", "--min-time", "--iters", "--winograd", "--sparse-max-density"};
    size_t k;
    int takes_value = 0;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(kUsage, stdout);
      exit(0);
    }
    for (k = 0; k < sizeof(valued) / sizeof(valued[0]); ++k) takes_value |= strcmp(a, valued[k]) == 0;
    if (takes_value && i + 1 >= argc) die(EXIT_USAGE, "%s needs a value (see --help)", a);
    if (strcmp(a, "--input") == 0) {
      o->input = argv[++i];
    } else if (strcmp(a, "--expect") == 0) {
      o->expect = argv[++i];
    } else if (strcmp(a, "--save-output") == 0) {
      o->save_output = argv[++i];
    } else if (strcmp(a, "--atol") == 0) {
      o->atol = parse_double(a, argv[++i]);
    } else if (strcmp(a, "--threads") == 0) {
      o->threads = (int)parse_long(a, argv[++i], 1);
      if (o->threads > 256) die(EXIT_USAGE, "--threads must be at most 256");
    } else if (strcmp(a, "--warmup") == 0) {
      o->warmup = parse_long(a, argv[++i], 0);
    } else if (strcmp(a, "--repeats") == 0) {
      o->repeats = parse_long(a, argv[++i], 1);
    } else if (strcmp(a, "--min-time") == 0) {
      o->min_time = parse_double(a, argv[++i]);
    } else if (strcmp(a, "--iters") == 0) {
      o->iters = parse_long(a, argv[++i], 0);
    } else if (strcmp(a, "--winograd") == 0) {
      const char* v = argv[++i];
      if (strcmp(v, "auto") == 0) {
        o->winograd = 0;
      } else if (strcmp(v, "on") == 0) {
        o->winograd = 1;
      } else if (strcmp(v, "off") == 0) {
        o->winograd = -1;
      } else {
        die(EXIT_USAGE, "--winograd must be auto, on or off, not '%s'", v);
      }
    } else if (strcmp(a, "--sparse-max-density") == 0) {
      const char* v = argv[++i];
      /* a negative value (all dense) is allowed: parse_double takes >= 0 only */
      o->sparse_max_density = v[0] == '-' ? -parse_double(a, v + 1) : parse_double(a, v);
      if (o->sparse_max_density > 1.0) die(EXIT_USAGE, "--sparse-max-density must be at most 1");
      o->sparse_given = 1;
    } else if (strcmp(a, "--json") == 0) {
      o->json = 1;
    } else if (strcmp(a, "--bench") == 0) {
      o->bench = 1;
    } else if (a[0] == '-' && a[1] != '\0') {
      die(EXIT_USAGE, "unknown option '%s' (see --help)", a);
    } else if (o->model == NULL) {
      o->model = a;
    } else {
      die(EXIT_USAGE, "more than one model given ('%s' and '%s')", o->model, a);
    }
  }
  if (o->model == NULL) die(EXIT_USAGE, "no model given (usage: pakd-run MODEL.pakd [options]; see --help)");
  if (o->iters >= 0 && (o->bench || o->expect || o->save_output || o->json)) {
    die(EXIT_USAGE, "--iters cannot be combined with --bench, --expect, --save-output or --json");
  }
}

/* ------------------------------------------------------------------------ */
/* Raw float32 files                                                         */
/* ------------------------------------------------------------------------ */

static int host_is_little_endian(void) {
  const unsigned one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

static void swap_floats(float* v, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) {
    unsigned char b[4], t;
    memcpy(b, &v[i], 4);
    t = b[0], b[0] = b[3], b[3] = t;
    t = b[1], b[1] = b[2], b[2] = t;
    memcpy(&v[i], b, 4);
  }
}

/* Reads exactly `n` little-endian floats from `path` into `out`; `what` names
 * the file in error messages. The file must hold exactly n floats. */
static void read_f32_file(const char* path, const char* what, float* out, size_t n) {
  FILE* f = fopen(path, "rb");
  long bytes;
  if (f == NULL) die(EXIT_USAGE, "cannot open %s file '%s': %s", what, path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0 || (bytes = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    die(EXIT_USAGE, "cannot read %s file '%s'", what, path);
  }
  if ((unsigned long)bytes != n * sizeof(float)) {
    fclose(f);
    die(EXIT_USAGE, "%s file '%s' has %ld bytes, the model needs %zu float32 values (%zu bytes)", what, path, bytes, n,
        n * sizeof(float));
  }
  if (fread(out, sizeof(float), n, f) != n) {
    fclose(f);
    die(EXIT_USAGE, "cannot read %s file '%s'", what, path);
  }
  fclose(f);
  if (!host_is_little_endian()) swap_floats(out, n);
}

static void write_f32_file(const char* path, const float* v, size_t n) {
  FILE* f = fopen(path, "wb");
  size_t i;
  int ok;
  if (f == NULL) die(EXIT_USAGE, "cannot write '%s': %s", path, strerror(errno));
  ok = 1;
  for (i = 0; i < n && ok; ++i) {
    float x = v[i];
    if (!host_is_little_endian()) swap_floats(&x, 1);
    ok = fwrite(&x, sizeof(float), 1, f) == 1;
  }
  if (fclose(f) != 0 || !ok) die(EXIT_USAGE, "cannot write '%s'", path);
}

/* The default sample: x[i] in [-1, 1) from a 32-bit LCG seeded with 12345
 * (state = state * 1664525 + 1013904223; x = ((state >> 8) & 0xFFFF) / 32768 - 1),
 * the same sequence tests/c/test_header_c99.c uses. */
static void fill_pattern(float* x, size_t n) {
  unsigned long state = 12345u;
  size_t i;
  for (i = 0; i < n; ++i) {
    state = (state * 1664525u + 1013904223u) & 0xFFFFFFFFu;
    x[i] = (float)((state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
  }
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

static size_t argmax(const float* v, size_t n) {
  size_t i, best = 0;
  for (i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

static void print_json_string(const char* s) {
  putchar('"');
  for (; *s; ++s) {
    const unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      printf("\\%c", c);
    } else if (c < 0x20) {
      printf("\\u%04x", c);
    } else {
      putchar(c);
    }
  }
  putchar('"');
}

/* JSON has no NaN/Infinity: print them as null. */
static void print_json_number(double v) {
  if (isnan(v) || isinf(v)) {
    fputs("null", stdout);
  } else {
    printf("%.9g", v);
  }
}

static void print_json_floats(const float* v, size_t n) {
  size_t i;
  putchar('[');
  for (i = 0; i < n; ++i) {
    if (i) fputs(", ", stdout);
    print_json_number(v[i]);
  }
  putchar(']');
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double* sorted, size_t n, double p) {
  size_t rank = (size_t)ceil(p / 100.0 * (double)n);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

static double median(const double* sorted, size_t n) {
  return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

static void run_once(pakd_session* session, const float* input, float* output, size_t output_size) {
  const pakd_status st = pakd_session_run(session, input, 1, output, output_size);
  if (st != PAKD_OK) die(EXIT_RUNTIME, "pakd_session_run failed: %s: %s", pakd_status_string(st), pakd_last_error());
}

typedef struct comparison {
  double max_abs_diff;
  size_t argmax, argmax_expected;
  int match;
} comparison;

static comparison compare(const float* out, const float* expected, size_t n, double atol) {
  comparison c;
  size_t i;
  c.max_abs_diff = 0.0;
  for (i = 0; i < n; ++i) {
    const double d = fabs((double)out[i] - (double)expected[i]);
    /* NaN anywhere (on one side only) counts as an infinite difference. */
    if (isnan(d) && !(isnan(out[i]) && isnan(expected[i]))) {
      c.max_abs_diff = INFINITY;
    } else if (d > c.max_abs_diff) {
      c.max_abs_diff = d;
    }
  }
  c.argmax = argmax(out, n);
  c.argmax_expected = argmax(expected, n);
  /* A different top class is a mismatch even when every value is within the
   * tolerance (a near-tie flipped): for a classifier that is what matters. */
  c.match = c.max_abs_diff <= atol && c.argmax == c.argmax_expected;
  return c;
}

int main(int argc, char** argv) {
  options o;
  pakd_session_options so;
  pakd_session* session = NULL;
  pakd_session_info info;
  pakd_status st;
  float *input, *output, *expected = NULL;
  comparison cmp;
  size_t i;

  parse_args(argc, argv, &o);

  pakd_session_options_init(&so);
  so.num_threads = o.threads;
  so.winograd = o.winograd;
  if (o.sparse_given) so.sparse_max_density = (float)o.sparse_max_density;
  st = pakd_session_create_from_file(o.model, &so, &session);
  if (st != PAKD_OK) die(EXIT_USAGE, "cannot load model: %s: %s", pakd_status_string(st), pakd_last_error());
  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  st = pakd_session_get_info(session, &info);
  if (st != PAKD_OK)
    die(EXIT_RUNTIME, "pakd_session_get_info failed: %s: %s", pakd_status_string(st), pakd_last_error());

  input = (float*)malloc((info.input_size ? info.input_size : 1) * sizeof(float));
  output = (float*)malloc((info.output_size ? info.output_size : 1) * sizeof(float));
  if (input == NULL || output == NULL) die(EXIT_RUNTIME, "out of memory");
  if (o.input) {
    read_f32_file(o.input, "input", input, info.input_size);
  } else {
    fill_pattern(input, info.input_size);
  }
  if (o.expect) {
    expected = (float*)malloc((info.output_size ? info.output_size : 1) * sizeof(float));
    if (expected == NULL) die(EXIT_RUNTIME, "out of memory");
    read_f32_file(o.expect, "expected output", expected, info.output_size);
  }

  if (o.iters >= 0) {
    long k;
    for (k = 0; k < o.iters; ++k) run_once(session, input, output, info.output_size);
    free(output);
    free(input);
    pakd_session_destroy(session);
    return 0;
  }

  run_once(session, input, output, info.output_size);
  if (o.save_output) write_f32_file(o.save_output, output, info.output_size);
  if (expected) {
    cmp = compare(output, expected, info.output_size, o.atol);
    if (!cmp.match) {
      fprintf(stderr,
              "pakd-run: MISMATCH: output differs from '%s': max abs diff %.9g (atol %.3g), argmax %zu, "
              "expected %zu\n",
              o.expect, cmp.max_abs_diff, o.atol, cmp.argmax, cmp.argmax_expected);
    }
  } else {
    memset(&cmp, 0, sizeof(cmp));
    cmp.match = 1;
  }

  if (o.bench) {
    size_t cap = (size_t)o.repeats, runs = 0;
    double* t = (double*)malloc(cap * sizeof(double));
    double start, sum = 0.0, sq = 0.0, mean, var;
    long w;
    struct rusage ru;
    if (t == NULL) die(EXIT_RUNTIME, "out of memory");
    for (w = 0; w < o.warmup; ++w) run_once(session, input, output, info.output_size);
    start = now_seconds();
    while (runs < (size_t)o.repeats || now_seconds() - start < o.min_time) {
      double t0, t1;
      if (runs == cap) {
        double* grown = (double*)realloc(t, 2 * cap * sizeof(double));
        if (grown == NULL) die(EXIT_RUNTIME, "out of memory");
        t = grown;
        cap *= 2;
      }
      t0 = now_seconds();
      run_once(session, input, output, info.output_size);
      t1 = now_seconds();
      t[runs++] = (t1 - t0) * 1e6;
    }
    for (i = 0; i < runs; ++i) sum += t[i];
    mean = sum / (double)runs;
    for (i = 0; i < runs; ++i) sq += (t[i] - mean) * (t[i] - mean);
    var = runs > 1 ? sq / (double)(runs - 1) : 0.0;
    qsort(t, runs, sizeof(double), compare_doubles);
    memset(&ru, 0, sizeof(ru));
    getrusage(RUSAGE_SELF, &ru);

    fputs("{\"model\": ", stdout);
    print_json_string(o.model);
    printf(", \"threads\": %d, \"batch\": 1, \"runs\": %zu", info.num_threads, runs);
    printf(", \"median_us\": %.3f, \"p90_us\": %.3f, \"min_us\": %.3f, \"max_us\": %.3f", median(t, runs),
           percentile(t, runs, 90.0), t[0], t[runs - 1]);
    printf(", \"mean_us\": %.3f, \"stdev_us\": %.3f, \"peak_rss_kb\": %ld", mean, sqrt(var), (long)ru.ru_maxrss);
    printf(", \"input_size\": %zu, \"output_size\": %zu, \"output\": ", info.input_size, info.output_size);
    print_json_floats(output, info.output_size < OUTPUT_PREVIEW ? info.output_size : OUTPUT_PREVIEW);
    if (expected) {
      fputs(", \"max_abs_diff\": ", stdout);
      print_json_number(cmp.max_abs_diff);
      printf(", \"match\": %s", cmp.match ? "true" : "false");
    }
    fputs("}\n", stdout);
    free(t);
  } else if (o.json) {
    fputs("{\"model\": ", stdout);
    print_json_string(o.model);
    printf(", \"threads\": %d, \"batch\": 1, \"input_size\": %zu, \"output_size\": %zu, \"argmax\": %zu",
           info.num_threads, info.input_size, info.output_size, argmax(output, info.output_size));
    fputs(", \"output\": ", stdout);
    print_json_floats(output, info.output_size);
    if (expected) {
      fputs(", \"max_abs_diff\": ", stdout);
      print_json_number(cmp.max_abs_diff);
      printf(", \"argmax_expected\": %zu, \"match\": %s", cmp.argmax_expected, cmp.match ? "true" : "false");
    }
    fputs("}\n", stdout);
  } else {
    printf("model: %s\n", o.model);
    printf("input: %zu floats, output: %zu floats, %zu ops, %d thread(s)\n", info.input_size, info.output_size,
           info.num_ops, info.num_threads);
    printf("argmax: %zu\n", argmax(output, info.output_size));
    printf("output:");
    for (i = 0; i < info.output_size && i < OUTPUT_PREVIEW; ++i) printf(" %.6g", output[i]);
    printf("%s\n", info.output_size > OUTPUT_PREVIEW ? " ..." : "");
    if (expected) {
      printf("expected: max abs diff %.3g (atol %.3g), argmax %zu vs %zu: %s\n", cmp.max_abs_diff, o.atol, cmp.argmax,
             cmp.argmax_expected, cmp.match ? "OK" : "MISMATCH");
    }
  }

  free(expected);
  free(output);
  free(input);
  pakd_session_destroy(session);
  return cmp.match ? 0 : EXIT_MISMATCH;
}
