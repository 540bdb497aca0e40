/*
 * pakd.h - the public C API of the PaKD runtime (the only public header).
 *
 * Conventions (the same for every function):
 *   - Every call that can fail returns a pakd_status; PAKD_OK (0) is success.
 *     Results are written through out-pointers, and only on success.
 *   - Structs that may grow carry `struct_size` as their first member; the
 *     caller sets it to sizeof(the struct) it was compiled with, and the library
 *     never writes past it. This keeps old binaries working with new libraries.
 *   - No C++ exception ever leaves this API.
 *   - Matrices are row-major; a leading dimension (lda, ldb, ldc) is the
 *     distance in elements between the starts of two consecutive rows.
 *
 * The header is plain C99 (tests/c/test_header_c99.c compiles it as such).
 */
#ifndef PAKD_PAKD_H_
#define PAKD_PAKD_H_

#include <stddef.h>

/* Symbol visibility: the library is built with hidden visibility, so only
 * functions marked PAKD_API are exported from a shared libpakd. */
#if defined(_WIN32) && defined(PAKD_SHARED)
#if defined(PAKD_BUILDING_LIBRARY)
#define PAKD_API __declspec(dllexport)
#else
#define PAKD_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define PAKD_API __attribute__((visibility("default")))
#else
#define PAKD_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

typedef enum pakd_status {
  PAKD_OK = 0,
  PAKD_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, bad size, unknown name, ... */
  PAKD_ERR_UNSUPPORTED = 2,      /* valid request this build/CPU cannot run   */
  PAKD_ERR_OUT_OF_MEMORY = 3,
  PAKD_ERR_BAD_FORMAT = 4, /* malformed model file or buffer            */
  PAKD_ERR_INTERNAL = 5    /* a bug: please report it                   */
} pakd_status;

/* A static, human-readable description of `status` (never NULL; unknown codes
 * give "unknown status"). */
PAKD_API const char* pakd_status_string(pakd_status status);

/* The library version, e.g. "0.1.0" (static string, never NULL). */
PAKD_API const char* pakd_version(void);

/* ------------------------------------------------------------------------ */
/* CPU features                                                              */
/* ------------------------------------------------------------------------ */

typedef struct pakd_cpu_info {
  size_t struct_size; /* in: sizeof(pakd_cpu_info) */
  const char* arch;   /* "x86_64", "aarch64", "arm", or "unknown" */
  /* Non-zero when the running CPU (and OS) supports the extension. */
  int sse2;
  int avx;
  int avx2;
  int fma;
  int avx512f;
  int neon;
  int neon_dot; /* AArch64 dot product (SDOT/UDOT, ARMv8.2): Cortex-A55/A76 (Pi 5), not Cortex-A72 (Pi 4) */
  int i8mm;     /* AArch64 int8 matrix multiply (SMMLA, ARMv8.6) */
} pakd_cpu_info;

/* Features detected once, at first use, on the running CPU. */
PAKD_API pakd_status pakd_get_cpu_info(pakd_cpu_info* out);

/* ------------------------------------------------------------------------ */
/* Dense f32 GEMM                                                            */
/* ------------------------------------------------------------------------ */

typedef struct pakd_kernel_info {
  size_t struct_size; /* in: sizeof(pakd_kernel_info) */
  const char* name;   /* e.g. "6x16-avx2"; pass it to pakd_f32_gemm */
  const char* isa;    /* instruction set it needs, e.g. "scalar", "avx2+fma" */
  int supported;      /* non-zero when it can run on this CPU */
} pakd_kernel_info;

/*
 * C = A * B with A (m x k), B (k x n), C (m x n), all f32 and row-major.
 * C is overwritten (when k == 0 it is set to zero).
 *
 * kernel: a name from pakd_f32_gemm_kernel_info, or NULL for the best kernel
 *         supported by this CPU.
 * Requirements: lda >= k, ldb >= n, ldc >= n; a, b, c non-NULL unless the
 * matrix they point to is empty. C must not overlap A or B.
 *
 * Returns PAKD_ERR_INVALID_ARGUMENT for bad arguments or an unknown kernel
 * name, PAKD_ERR_UNSUPPORTED for a known kernel this CPU cannot run.
 */
PAKD_API pakd_status pakd_f32_gemm(const char* kernel, size_t m, size_t n, size_t k, const float* a, size_t lda,
                                   const float* b, size_t ldb, float* c, size_t ldc);

/* Number of f32 GEMM kernels compiled into this library (supported or not). */
PAKD_API size_t pakd_f32_gemm_kernel_count(void);

/* Describes kernel `index` (0 <= index < pakd_f32_gemm_kernel_count()).
 * out->struct_size must be set by the caller. */
PAKD_API pakd_status pakd_f32_gemm_kernel_info(size_t index, pakd_kernel_info* out);

/* Name of the kernel used when pakd_f32_gemm gets kernel == NULL (static
 * string, never NULL). */
PAKD_API const char* pakd_f32_gemm_best_kernel(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* A message describing the last failure of a pakd_* call on the calling
 * thread (e.g. "tensor 'fc1.weight': value block runs past the end of the
 * section"), or "" when there is none. Valid until the next pakd_* call on the
 * same thread; never NULL. */
PAKD_API const char* pakd_last_error(void);

/* ------------------------------------------------------------------------ */
/* Sessions: a loaded .pakd model with its memory planned once               */
/* ------------------------------------------------------------------------ */

typedef struct pakd_session pakd_session; /* opaque */

typedef struct pakd_session_options {
  size_t struct_size;       /* in: sizeof(pakd_session_options) */
  int num_threads;          /* worker threads for one inference; <= 0 means 1 */
  size_t max_batch;         /* batch size memory is planned for; 0 means 1.
                               pakd_session_run accepts batch <= max_batch. */
  const char* gemm_kernel;  /* f32 GEMM kernel name, NULL = best for this CPU */
  float sparse_max_density; /* conv/linear weights with at most this fraction
                               of nonzeros run on the sparse kernels; denser
                               ones run dense. < 0: always dense. Default 0.35 */
  int reference;            /* non-zero: every op through its naive reference
                               kernel (the oracle for tests; slow) */
  int codebook_kernel;      /* sparse weight-shared layers: 0 = auto (codebook
                               kernel for layers of >= 2M nonzeros, where it
                               is faster; f32 values otherwise), 1 = always
                               the codebook kernel, -1 = never */
  int winograd;             /* dense 3x3 stride-1 convolutions through
                               Winograd F(4x4, 3x3): 0 = auto (layers where
                               it beats the direct kernels), 1 = every such
                               layer, -1 = never */
} pakd_session_options;

/* Fills `options` with the defaults (1 thread, max_batch 1, best kernels,
 * sparse_max_density 0.35) and sets struct_size. NULL is ignored. */
PAKD_API void pakd_session_options_init(pakd_session_options* options);

/* Loads a .pakd model (docs/format.md) and plans its memory. Every offset,
 * length and shape in the file is checked before use: a truncated, corrupted
 * or hostile file gives PAKD_ERR_BAD_FORMAT (see pakd_last_error()), never a
 * crash. `options` may be NULL for the defaults. On success *out owns the
 * session; release it with pakd_session_destroy. The bytes are copied, so
 * `data` may be freed after the call. */
PAKD_API pakd_status pakd_session_create(const void* data, size_t size, const pakd_session_options* options,
                                         pakd_session** out);

/* Same, reading the file at `path`. */
PAKD_API pakd_status pakd_session_create_from_file(const char* path, const pakd_session_options* options,
                                                   pakd_session** out);

/* Releases a session. NULL is ignored. */
PAKD_API void pakd_session_destroy(pakd_session* session);

typedef struct pakd_session_info {
  size_t struct_size;   /* in: sizeof(pakd_session_info) */
  size_t input_ndim;    /* dims of one sample, batch excluded */
  size_t input_dims[8]; /* e.g. {1, 28, 28} */
  size_t output_ndim;
  size_t output_dims[8]; /* e.g. {10} */
  size_t input_size;     /* elements of one input sample */
  size_t output_size;    /* elements of one output sample */
  size_t num_ops;        /* ops in the planned graph */
  size_t weight_bytes;   /* bytes of decoded weights held in memory */
  size_t arena_bytes;    /* bytes of the activation arena */
  int num_threads;
  size_t max_batch;
} pakd_session_info;

PAKD_API pakd_status pakd_session_get_info(const pakd_session* session, pakd_session_info* out);

/* The model's metadata (the META section: UTF-8 JSON), owned by the session;
 * "{}" when the file has none. */
PAKD_API pakd_status pakd_session_metadata(const pakd_session* session, const char** out);

/*
 * Runs the model on `batch` samples (1 <= batch <= max_batch).
 * input:  batch * info.input_size floats, sample after sample (NCHW).
 * output: room for batch * info.output_size floats (output_capacity floats).
 * Allocates nothing: all memory was planned at creation. A session runs one
 * inference at a time (calls on one session must not overlap); different
 * sessions are independent.
 */
PAKD_API pakd_status pakd_session_run(pakd_session* session, const float* input, size_t batch, float* output,
                                      size_t output_capacity);

/*
 * pakd_session_run, also adding each op's wall time in microseconds to
 * op_us[i] (op_count must equal info.num_ops). For profiling; the timing
 * itself costs a clock read per op.
 */
PAKD_API pakd_status pakd_session_run_profiled(pakd_session* session, const float* input, size_t batch, float* output,
                                               size_t output_capacity, double* op_us, size_t op_count);

/* A static-per-session description of op `index`, e.g.
 * "conv2d+relu dense 16x28x28" (valid while the session lives). */
PAKD_API pakd_status pakd_session_op_description(const pakd_session* session, size_t index, const char** out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PAKD_PAKD_H_ */
