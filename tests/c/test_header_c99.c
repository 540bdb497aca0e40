/*
 * Compiles the public header as strict C99 and exercises the C API from C:
 * version and status strings, kernel enumeration, every supported GEMM kernel
 * against a naive loop written here, and argument validation.
 * Exit status 0 = all checks passed (run by ctest).
 */
#include "pakd/pakd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                            \
    }                                                                          \
  } while (0)

static void naive_gemm(size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b, size_t ldb,
                       double* c) {
  size_t i, j, p;
  for (i = 0; i < m; ++i) {
    for (j = 0; j < n; ++j) {
      double sum = 0.0;
      for (p = 0; p < k; ++p) sum += (double)a[i * lda + p] * b[p * ldb + j];
      c[i * n + j] = sum;
    }
  }
}

/* Values in [-1, 1) from a fixed LCG, so the test is deterministic. */
static float next_value(unsigned* state) {
  *state = *state * 1664525u + 1013904223u;
  return (float)((*state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* Runs `kernel` on an m x n x k problem with padded leading dimensions and
 * compares with the naive loop. Returns 1 on success. */
static int check_gemm(const char* kernel, size_t m, size_t n, size_t k) {
  const size_t lda = k + 3, ldb = n + 1, ldc = n + 2;
  float* a = (float*)malloc((m * lda + 1) * sizeof(float));
  float* b = (float*)malloc((k * ldb + 1) * sizeof(float));
  float* c = (float*)malloc((m * ldc + 1) * sizeof(float));
  double* expected = (double*)malloc((m * n + 1) * sizeof(double));
  unsigned state = 12345u;
  size_t i, j;
  int ok = 1;
  pakd_status status;

  if (!a || !b || !c || !expected) {
    fprintf(stderr, "malloc failed\n");
    ok = 0;
    goto done;
  }
  for (i = 0; i < m * lda; ++i) a[i] = next_value(&state);
  for (i = 0; i < k * ldb; ++i) b[i] = next_value(&state);
  for (i = 0; i < m * ldc; ++i) c[i] = 42.0f; /* must be overwritten */
  naive_gemm(m, n, k, a, lda, b, ldb, expected);

  status = pakd_f32_gemm(kernel, m, n, k, a, lda, b, ldb, c, ldc);
  if (status != PAKD_OK) {
    fprintf(stderr, "kernel %s %lux%lux%lu: status %s\n", kernel ? kernel : "(best)", (unsigned long)m,
            (unsigned long)n, (unsigned long)k, pakd_status_string(status));
    ok = 0;
    goto done;
  }
  for (i = 0; i < m; ++i) {
    for (j = 0; j < n; ++j) {
      const double want = expected[i * n + j];
      const double got = c[i * ldc + j];
      /* f32 accumulation error grows ~ k * eps * |a||b|; |a|,|b| <= 1. */
      if (fabs(got - want) > 1e-5 * (double)(k + 1)) {
        fprintf(stderr, "kernel %s %lux%lux%lu: c[%lu][%lu] = %g, want %g\n", kernel ? kernel : "(best)",
                (unsigned long)m, (unsigned long)n, (unsigned long)k, (unsigned long)i, (unsigned long)j, got, want);
        ok = 0;
        goto done;
      }
    }
    /* Padding between rows of C is not touched. */
    for (j = n; j < ldc && i + 1 < m; ++j) {
      if (c[i * ldc + j] != 42.0f) {
        fprintf(stderr, "kernel %s wrote into the padding of C\n", kernel ? kernel : "(best)");
        ok = 0;
        goto done;
      }
    }
  }
done:
  free(a);
  free(b);
  free(c);
  free(expected);
  return ok;
}

static void test_version_and_status_strings(void) {
  const char* version = pakd_version();
  CHECK(version != NULL && version[0] >= '0' && version[0] <= '9');
  CHECK(strcmp(pakd_status_string(PAKD_OK), "ok") == 0);
  CHECK(strcmp(pakd_status_string(PAKD_ERR_INVALID_ARGUMENT), "invalid argument") == 0);
  CHECK(strlen(pakd_status_string(PAKD_ERR_UNSUPPORTED)) > 0);
  CHECK(strlen(pakd_status_string(PAKD_ERR_OUT_OF_MEMORY)) > 0);
  CHECK(strlen(pakd_status_string(PAKD_ERR_BAD_FORMAT)) > 0);
  CHECK(strlen(pakd_status_string(PAKD_ERR_INTERNAL)) > 0);
  CHECK(strcmp(pakd_status_string((pakd_status)12345), "unknown status") == 0);
}

static void test_cpu_info(void) {
  pakd_cpu_info info;
  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  CHECK(pakd_get_cpu_info(&info) == PAKD_OK);
  CHECK(info.struct_size == sizeof(info));
  CHECK(info.arch != NULL);
  CHECK(pakd_get_cpu_info(NULL) == PAKD_ERR_INVALID_ARGUMENT);
  info.struct_size = 1; /* too small for any version of the struct */
  CHECK(pakd_get_cpu_info(&info) == PAKD_ERR_INVALID_ARGUMENT);
}

static void test_kernels(void) {
  static const size_t shapes[][3] = {
      {1, 1, 1}, {7, 13, 5}, {1, 800, 50}, {6, 16, 300}, {65, 33, 129}, {4, 8, 0}, {37, 1, 19}, {100, 100, 600},
  };
  const size_t count = pakd_f32_gemm_kernel_count();
  const char* best = pakd_f32_gemm_best_kernel();
  int best_listed = 0;
  size_t index, s;

  CHECK(count >= 1);
  CHECK(best != NULL);
  for (index = 0; index < count; ++index) {
    pakd_kernel_info info;
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    CHECK(pakd_f32_gemm_kernel_info(index, &info) == PAKD_OK);
    CHECK(info.name != NULL && info.isa != NULL);
    if (info.name == NULL) continue;
    if (best != NULL && strcmp(info.name, best) == 0) {
      best_listed = 1;
      CHECK(info.supported);
    }
    if (!info.supported) {
      float x = 1.0f, y = 1.0f, z = 0.0f;
      CHECK(pakd_f32_gemm(info.name, 1, 1, 1, &x, 1, &y, 1, &z, 1) == PAKD_ERR_UNSUPPORTED);
      continue;
    }
    for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); ++s) {
      CHECK(check_gemm(info.name, shapes[s][0], shapes[s][1], shapes[s][2]));
    }
  }
  CHECK(best_listed);
  CHECK(check_gemm(NULL, 9, 17, 33)); /* NULL = best kernel */
}

static void test_invalid_arguments(void) {
  float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {0};
  pakd_kernel_info info;

  /* NULL matrices that are not empty. */
  CHECK(pakd_f32_gemm(NULL, 2, 2, 2, NULL, 2, b, 2, c, 2) == PAKD_ERR_INVALID_ARGUMENT);
  CHECK(pakd_f32_gemm(NULL, 2, 2, 2, a, 2, NULL, 2, c, 2) == PAKD_ERR_INVALID_ARGUMENT);
  CHECK(pakd_f32_gemm(NULL, 2, 2, 2, a, 2, b, 2, NULL, 2) == PAKD_ERR_INVALID_ARGUMENT);
  /* Leading dimensions smaller than the rows they describe. */
  CHECK(pakd_f32_gemm(NULL, 2, 2, 2, a, 1, b, 2, c, 2) == PAKD_ERR_INVALID_ARGUMENT);
  CHECK(pakd_f32_gemm(NULL, 2, 2, 2, a, 2, b, 1, c, 2) == PAKD_ERR_INVALID_ARGUMENT);
  CHECK(pakd_f32_gemm(NULL, 2, 2, 2, a, 2, b, 2, c, 1) == PAKD_ERR_INVALID_ARGUMENT);
  /* Unknown kernel name. */
  CHECK(pakd_f32_gemm("no-such-kernel", 2, 2, 2, a, 2, b, 2, c, 2) == PAKD_ERR_INVALID_ARGUMENT);
  /* Sizes whose addressing would overflow. */
  CHECK(pakd_f32_gemm(NULL, (size_t)-1 / 2, 2, 2, a, 2, b, 2, c, 2) == PAKD_ERR_INVALID_ARGUMENT);
  /* Empty problems are fine, even with NULL pointers. */
  CHECK(pakd_f32_gemm(NULL, 0, 0, 0, NULL, 0, NULL, 0, NULL, 0) == PAKD_OK);
  CHECK(pakd_f32_gemm(NULL, 0, 2, 3, NULL, 3, b, 2, NULL, 2) == PAKD_OK);
  /* Identity: c = a. */
  CHECK(pakd_f32_gemm(NULL, 2, 2, 2, a, 2, b, 2, c, 2) == PAKD_OK);
  CHECK(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);

  /* Kernel enumeration. */
  CHECK(pakd_f32_gemm_kernel_info(pakd_f32_gemm_kernel_count(), &info) == PAKD_ERR_INVALID_ARGUMENT);
  CHECK(pakd_f32_gemm_kernel_info(0, NULL) == PAKD_ERR_INVALID_ARGUMENT);
  info.struct_size = 0;
  CHECK(pakd_f32_gemm_kernel_info(0, &info) == PAKD_ERR_INVALID_ARGUMENT);
}

int main(void) {
  test_version_and_status_strings();
  test_cpu_info();
  test_kernels();
  test_invalid_arguments();
  if (g_failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  printf("pakd %s: all C API checks passed (best f32 GEMM kernel: %s)\n", pakd_version(), pakd_f32_gemm_best_kernel());
  return 0;
}
