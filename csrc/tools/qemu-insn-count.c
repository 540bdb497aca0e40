/*
 * qemu-insn-count - a QEMU TCG plugin counting the guest instructions a
 * program executes under qemu-user (qemu-aarch64, qemu-arm, ...).
 *
 *   gcc -shared -fPIC -O2 -o qemu-insn-count.so csrc/tools/qemu-insn-count.c
 *   qemu-aarch64 -L /usr/aarch64-linux-gnu \
 *       -plugin ./qemu-insn-count.so,outfile=count.txt -d plugin ./prog
 *
 * At exit it writes "insns: N\n" to `outfile` (or, without it, through
 * qemu_plugin_outs, which -d plugin sends to stderr). With `symbols=on` it
 * also counts per function (the ELF symbol of each translation block's first
 * instruction, as qemu resolves it: where the instructions go) and writes a
 * line "sym: N NAME" per function after the total, most instructions first
 * ("?" for code without a symbol).
 *
 * Debian ships no qemu-plugin.h, so the few prototypes used are declared
 * here, from QEMU 7.2's include/qemu/qemu-plugin.h (plugin API version 1,
 * which later QEMUs still accept). Each translation block gets one inline
 * "add its instruction count" op, executed every time the block is entered:
 * cheap, and deterministic for a single-threaded guest with a fixed
 * environment (use env -i). The counter is not atomic: with several guest
 * threads the total is approximate.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb* tb, enum qemu_plugin_op op, void* ptr,
                                                     uint64_t imm);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void* userdata);
extern void qemu_plugin_outs(const char* string);
extern struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
extern const char* qemu_plugin_insn_symbol(const struct qemu_plugin_insn* insn);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

static uint64_t insn_count;
static char outfile[4096];
static int per_symbol;

/* Per-function counters: an open-addressing table keyed by the symbol's name
 * pointer (qemu returns the same pointer for the same symbol). Counters are
 * allocated once and never move (the inline ops point at them). */
struct sym_count {
  const char* name;
  uint64_t* count;
};
#define SYM_SLOTS 65536
static struct sym_count syms[SYM_SLOTS];
static size_t n_syms;
static uint64_t sym_overflow; /* blocks of functions past the table: counted together */

static uint64_t* counter_of(const char* name) {
  size_t h = ((uintptr_t)name >> 3) * 0x9E3779B97F4A7C15ull % SYM_SLOTS;
  size_t probe;
  for (probe = 0; probe < SYM_SLOTS; ++probe, h = (h + 1) % SYM_SLOTS) {
    if (syms[h].name == name) return syms[h].count;
    if (syms[h].name == NULL) {
      if (n_syms + 1 >= SYM_SLOTS / 2) return &sym_overflow;
      syms[h].name = name;
      syms[h].count = calloc(1, sizeof(uint64_t));
      if (syms[h].count == NULL) return &sym_overflow;
      ++n_syms;
      return syms[h].count;
    }
  }
  return &sym_overflow;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  uint64_t n = (uint64_t)qemu_plugin_tb_n_insns(tb);
  (void)id;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insn_count, n);
  if (per_symbol && n > 0) {
    const char* name = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, counter_of(name ? name : "?"), n);
  }
}

static int by_count(const void* a, const void* b) {
  const struct sym_count* x = a;
  const struct sym_count* y = b;
  if (*x->count != *y->count) return *x->count < *y->count ? 1 : -1;
  return strcmp(x->name, y->name);
}

static void write_symbols(FILE* f) {
  struct sym_count* list = calloc(n_syms ? n_syms : 1, sizeof *list);
  size_t i, k = 0;
  if (list == NULL) return;
  for (i = 0; i < SYM_SLOTS; ++i) {
    if (syms[i].name != NULL) list[k++] = syms[i];
  }
  qsort(list, k, sizeof *list, by_count);
  for (i = 0; i < k; ++i) {
    if (*list[i].count) fprintf(f, "sym: %" PRIu64 " %s\n", *list[i].count, list[i].name);
  }
  if (sym_overflow) fprintf(f, "sym: %" PRIu64 " (other functions)\n", sym_overflow);
  free(list);
}

static void at_exit(qemu_plugin_id_t id, void* userdata) {
  char line[64];
  (void)id;
  (void)userdata;
  snprintf(line, sizeof(line), "insns: %" PRIu64 "\n", insn_count);
  if (outfile[0]) {
    FILE* f = fopen(outfile, "w");
    if (f != NULL) {
      fputs(line, f);
      if (per_symbol) write_symbols(f);
      fclose(f);
      return;
    }
    qemu_plugin_outs("qemu-insn-count: cannot write outfile\n");
  }
  qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t* info, int argc, char** argv) {
  int i;
  (void)info;
  for (i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "outfile=", 8) == 0 && strlen(argv[i] + 8) < sizeof(outfile)) {
      strcpy(outfile, argv[i] + 8);
    } else if (strcmp(argv[i], "symbols=on") == 0) {
      per_symbol = 1;
    } else {
      fprintf(stderr, "qemu-insn-count: unknown argument '%s' (known: outfile=PATH, symbols=on)\n", argv[i]);
      return -1;
    }
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
  qemu_plugin_register_atexit_cb(id, at_exit, NULL);
  return 0;
}
