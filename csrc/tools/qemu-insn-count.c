/*
 * qemu-insn-count - a QEMU TCG plugin counting the guest instructions a
 * program executes under qemu-user (qemu-aarch64, qemu-arm, ...).
 *
 *   gcc -shared -fPIC -O2 -o qemu-insn-count.so csrc/tools/qemu-insn-count.c
 *   qemu-aarch64 -L /usr/aarch64-linux-gnu \
 *       -plugin ./qemu-insn-count.so,outfile=count.txt -d plugin ./prog
 *
 * At exit it writes "insns: N\n" to `outfile` (or, without it, through
 * qemu_plugin_outs, which -d plugin sends to stderr).
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
#include <string.h>

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
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

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

static uint64_t insn_count;
static char outfile[4096];

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insn_count,
                                           (uint64_t)qemu_plugin_tb_n_insns(tb));
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
    } else {
      fprintf(stderr, "qemu-insn-count: unknown argument '%s' (known: outfile=PATH)\n", argv[i]);
      return -1;
    }
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
  qemu_plugin_register_atexit_cb(id, at_exit, NULL);
  return 0;
}
