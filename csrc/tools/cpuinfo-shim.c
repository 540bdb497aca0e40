/*
 * cpuinfo-shim - an LD_PRELOAD library for peer engines run under qemu-user: it shows the guest
 * the board's /proc/cpuinfo instead of the host's.
 *
 * qemu-user (Debian 12's 7.2) passes the host's /proc/cpuinfo through, so an ARM program under
 * emulation reads an x86 description there. The CPU detection that XNNPACK and ONNX Runtime share
 * (pytorch/cpuinfo) reads the cores' MIDR (implementer, part) from that file to pick the kernels
 * tuned for the core; with the host's text ONNX Runtime crashes at start-up and XNNPACK cannot
 * tell a Cortex-A72 from any other core. With PAKD_CPUINFO=FILE set, every open of
 * "/proc/cpuinfo" opens FILE instead (pakd.deploy.peers writes one for the board's CPU model,
 * as the board's kernel would print it). Features still come from getauxval(AT_HWCAP), which qemu
 * sets from its -cpu model. Everything else passes through.
 *
 * C99 + glibc's dlsym(RTLD_NEXT); built with the target's C compiler: -shared -fPIC -ldl.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static const char* redirect(const char* path) {
  if (path != NULL && strcmp(path, "/proc/cpuinfo") == 0) {
    const char* file = getenv("PAKD_CPUINFO");
    if (file != NULL && *file != '\0') return file;
  }
  return path;
}

static mode_t mode_of(int flags, va_list ap) { return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0; }

typedef int (*OpenFn)(const char*, int, ...);
typedef int (*OpenAtFn)(int, const char*, int, ...);
typedef FILE* (*FopenFn)(const char*, const char*);

int open(const char* path, int flags, ...) {
  static OpenFn real;
  if (!real) real = (OpenFn)dlsym(RTLD_NEXT, "open");
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_of(flags, ap);
  va_end(ap);
  return real(redirect(path), flags, mode);
}

int open64(const char* path, int flags, ...) {
  static OpenFn real;
  if (!real) real = (OpenFn)dlsym(RTLD_NEXT, "open64");
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_of(flags, ap);
  va_end(ap);
  return real(redirect(path), flags, mode);
}

int openat(int dir, const char* path, int flags, ...) {
  static OpenAtFn real;
  if (!real) real = (OpenAtFn)dlsym(RTLD_NEXT, "openat");
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_of(flags, ap);
  va_end(ap);
  return real(dir, redirect(path), flags, mode);
}

FILE* fopen(const char* path, const char* mode) {
  static FopenFn real;
  if (!real) real = (FopenFn)dlsym(RTLD_NEXT, "fopen");
  return real(redirect(path), mode);
}

FILE* fopen64(const char* path, const char* mode) {
  static FopenFn real;
  if (!real) real = (FopenFn)dlsym(RTLD_NEXT, "fopen64");
  return real(redirect(path), mode);
}
