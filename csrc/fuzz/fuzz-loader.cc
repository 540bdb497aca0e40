// Fuzz target for the .pakd loader and session (through the public C API).
//
// LLVMFuzzerTestOneInput loads the bytes with pakd_session_create and, when
// the library accepts them, runs one inference on zeros and destroys the
// session. Any crash or sanitizer report is a finding; a refused file
// (PAKD_ERR_BAD_FORMAT, ...) is the expected outcome for most inputs.
//
// Driven by libFuzzer (clang, -fsanitize=fuzzer; PAKD_FUZZ_ENGINE=libfuzzer)
// or by the standalone driver in standalone-main.cc (any compiler).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include "pakd-header-fixup.h"
#include "pakd/pakd.h"

namespace {

// Inputs or outputs above this many floats are not run (the file may be
// valid, but one inference would take the fuzzer's time and memory).
constexpr std::size_t kMaxRunFloats = std::size_t{1} << 22;

[[noreturn]] void finding(const char* what) {
  // Aborting turns a broken API contract into a crash the engine reports.
  std::fprintf(stderr, "fuzz-loader: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pakd_session_options options;
  pakd_session_options_init(&options);
  pakd_session* session = nullptr;
  const pakd_status st = pakd_session_create(data, size, &options, &session);
  if (st != PAKD_OK) {
    if (session != nullptr) finding("a failed pakd_session_create wrote the session");
    if (st == PAKD_ERR_INTERNAL) finding(pakd_last_error());  // the library's own "this is a bug"
    return 0;
  }
  if (session == nullptr) finding("pakd_session_create returned PAKD_OK without a session");

  pakd_session_info info{};
  info.struct_size = sizeof(info);
  if (pakd_session_get_info(session, &info) != PAKD_OK) finding("pakd_session_get_info failed on a loaded session");
  const char* meta = nullptr;
  if (pakd_session_metadata(session, &meta) != PAKD_OK || meta == nullptr) finding("pakd_session_metadata failed");

  if (info.input_size <= kMaxRunFloats && info.output_size <= kMaxRunFloats) {
    try {
      std::vector<float> input(info.input_size == 0 ? 1 : info.input_size, 0.0f);
      std::vector<float> output(info.output_size == 0 ? 1 : info.output_size, 0.0f);
      const pakd_status run = pakd_session_run(session, input.data(), 1, output.data(), info.output_size);
      if (run == PAKD_ERR_INTERNAL) finding(pakd_last_error());
    } catch (const std::bad_alloc&) {
      // the fuzzer's own buffers; not a finding
    }
  }
  pakd_session_destroy(session);
  return 0;
}

#ifdef PAKD_FUZZ_LIBFUZZER
// libFuzzer's mutations would almost all stop at the checksum: after its own
// mutation, 9 inputs in 10 get a recomputed file size and CRC-32.
extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (seed % 10 != 0) pakd_fuzz::fix_header(data, size);
  return size;
}
#endif
