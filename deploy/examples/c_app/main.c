/*
 * c_app - classifies one Fashion-MNIST image with a .pakd model, in plain C99
 * through pakd.h (the static libpakd; no Python anywhere).
 *
 *   c_app MODEL.pakd IMAGE [--mean M --std S]
 *
 * IMAGE is 28x28 8-bit grayscale: a raw file of exactly 784 bytes (row-major,
 * as in the IDX dataset files) or a binary PGM ("P5", maxval 255). Pixels are
 * normalized as (pixel / 255 - mean) / std, with mean/std from the model's
 * metadata ("normalize": {"mean": .., "std": ..}), or --mean/--std, or the
 * Fashion-MNIST values 0.286/0.353 when neither gives them.
 *
 * Prints "class <index>: <name>" and the raw scores (one line each) and exits
 * 0; errors go to stderr, exit 1.
 */
#include "pakd/pakd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIDE 28
#define PIXELS (SIDE * SIDE)

static const char* const kClassNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static int fail(const char* fmt, const char* arg) {
  fputs("c_app: ", stderr);
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  return 1;
}

/* Skips whitespace and '#' comments of a PGM header. */
static const unsigned char* pgm_skip(const unsigned char* p, const unsigned char* end) {
  while (p < end) {
    if (*p == '#') {
      while (p < end && *p != '\n') ++p;
    } else if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
      ++p;
    } else {
      break;
    }
  }
  return p;
}

static const unsigned char* pgm_number(const unsigned char* p, const unsigned char* end, long* out) {
  long v = 0;
  int digits = 0;
  p = pgm_skip(p, end);
  while (p < end && *p >= '0' && *p <= '9' && digits < 9) v = v * 10 + (*p++ - '0'), ++digits;
  *out = digits ? v : -1;
  return p;
}

/* Reads a 28x28 8-bit image (raw 784 bytes or binary PGM) into pixels.
 * Returns 0 on success, or prints the reason and returns 1. */
static int read_image(const char* path, unsigned char pixels[PIXELS]) {
  unsigned char buf[PIXELS + 512];
  size_t n;
  FILE* f = fopen(path, "rb");
  if (f == NULL) return fail("cannot open image '%s'", path);
  n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  if (n == PIXELS && !(buf[0] == 'P' && buf[1] == '5')) {
    memcpy(pixels, buf, PIXELS);
    return 0;
  }
  if (n >= 2 && buf[0] == 'P' && buf[1] == '5') {
    const unsigned char* end = buf + n;
    const unsigned char* p = buf + 2;
    long w, h, maxval;
    p = pgm_number(p, end, &w);
    p = pgm_number(p, end, &h);
    p = pgm_number(p, end, &maxval);
    if (w != SIDE || h != SIDE || maxval != 255 || p >= end) {
      return fail("image '%s': need a 28x28 PGM with maxval 255", path);
    }
    ++p; /* the single whitespace byte before the raster */
    if ((size_t)(end - p) < PIXELS) return fail("image '%s': PGM raster is truncated", path);
    memcpy(pixels, p, PIXELS);
    return 0;
  }
  return fail("image '%s': expected 784 raw bytes (28x28) or a binary PGM", path);
}

/* The number after "key": inside the "normalize" object of the metadata
 * JSON (a one-element list [x] is accepted too). Returns 1 when found. */
static int meta_number(const char* json, const char* key, double* out) {
  char quoted[32];
  const char* p = strstr(json, "\"normalize\"");
  char* end;
  double v;
  if (p == NULL) return 0;
  sprintf(quoted, "\"%.20s\"", key);
  p = strstr(p, quoted);
  if (p == NULL) return 0;
  p += strlen(quoted);
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
  if (*p++ != ':') return 0;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '[') ++p;
  v = strtod(p, &end);
  if (end == p) return 0;
  *out = v;
  return 1;
}

static int parse_double(const char* flag, const char* text, double* out) {
  char* end;
  *out = strtod(text, &end);
  if (end == text || *end != '\0') return fail("bad number for %s", flag);
  return 0;
}

int main(int argc, char** argv) {
  const char *model = NULL, *image = NULL;
  double mean = 0.286, std = 0.353;
  int have_mean = 0, have_std = 0, i;
  unsigned char pixels[PIXELS];
  float input[PIXELS];
  float* scores;
  pakd_session* session = NULL;
  pakd_session_info info;
  pakd_status st;
  const char* meta = "{}";
  size_t best = 0, k;

  for (i = 1; i < argc; ++i) {
    if ((strcmp(argv[i], "--mean") == 0 || strcmp(argv[i], "--std") == 0) && i + 1 < argc) {
      const int is_mean = argv[i][2] == 'm';
      if (parse_double(argv[i], argv[i + 1], is_mean ? &mean : &std)) return 1;
      *(is_mean ? &have_mean : &have_std) = 1;
      ++i;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: c_app MODEL.pakd IMAGE [--mean M --std S]\n");
      return strcmp(argv[i], "--help") == 0 ? 0 : 1;
    } else if (model == NULL) {
      model = argv[i];
    } else if (image == NULL) {
      image = argv[i];
    }
  }
  if (model == NULL || image == NULL) {
    fprintf(stderr, "usage: c_app MODEL.pakd IMAGE [--mean M --std S]\n");
    return 1;
  }

  st = pakd_session_create_from_file(model, NULL, &session);
  if (st != PAKD_OK) {
    fprintf(stderr, "c_app: cannot load model: %s: %s\n", pakd_status_string(st), pakd_last_error());
    return 1;
  }
  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  if (pakd_session_get_info(session, &info) != PAKD_OK || info.input_size != PIXELS || info.output_size == 0) {
    fprintf(stderr, "c_app: the model must take one 28x28 image (it takes %lu values)\n",
            (unsigned long)info.input_size);
    pakd_session_destroy(session);
    return 1;
  }
  pakd_session_metadata(session, &meta);
  if (!have_mean && !meta_number(meta, "mean", &mean)) {
    fprintf(stderr, "c_app: no normalize.mean in the model metadata; using %.3f\n", mean);
  }
  if (!have_std && !meta_number(meta, "std", &std)) {
    fprintf(stderr, "c_app: no normalize.std in the model metadata; using %.3f\n", std);
  }
  if (!(std > 0.0)) {
    pakd_session_destroy(session);
    return fail("std must be positive%s", "");
  }

  if (read_image(image, pixels)) {
    pakd_session_destroy(session);
    return 1;
  }
  for (k = 0; k < PIXELS; ++k) input[k] = (float)(((double)pixels[k] / 255.0 - mean) / std);

  scores = (float*)malloc(info.output_size * sizeof(float));
  if (scores == NULL) {
    pakd_session_destroy(session);
    return fail("out of memory%s", "");
  }
  st = pakd_session_run(session, input, 1, scores, info.output_size);
  if (st != PAKD_OK) {
    fprintf(stderr, "c_app: inference failed: %s: %s\n", pakd_status_string(st), pakd_last_error());
    free(scores);
    pakd_session_destroy(session);
    return 1;
  }
  for (k = 1; k < info.output_size; ++k) {
    if (scores[k] > scores[best]) best = k;
  }
  printf("class %lu: %s\n", (unsigned long)best,
         info.output_size == 10 ? kClassNames[best] : "(not a 10-class model: no name)");
  printf("scores:");
  for (k = 0; k < info.output_size; ++k) printf(" %.9g", scores[k]);
  printf("\n");
  free(scores);
  pakd_session_destroy(session);
  return 0;
}
