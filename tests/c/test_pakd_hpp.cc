// Tests the C++ RAII header pakd/pakd.hpp.
//
//   test_pakd_hpp                              checks that need no model
//   test_pakd_hpp MODEL INPUT.f32 EXPECTED.f32 also runs MODEL on INPUT and
//                                              compares with EXPECTED (1e-5)
//
// Exit status 0 = all checks passed (ctest runs the first form,
// tests/tools/test_pakd_hpp.py the second with a real exported model).
#include "pakd/pakd.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

namespace {

int g_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                                 \
    }                                                                               \
  } while (0)

// Runs `body`, which must throw pakd::Error with `status`.
template <typename Body>
void check_throws(pakd_status status, Body&& body, int line) {
  try {
    body();
    std::fprintf(stderr, "%s:%d: no pakd::Error thrown\n", __FILE__, line);
    ++g_failures;
  } catch (const pakd::Error& e) {
    if (e.status() != status) {
      std::fprintf(stderr, "%s:%d: pakd::Error with status %d, expected %d (%s)\n", __FILE__, line, e.status(), status,
                   e.what());
      ++g_failures;
    }
  }
}
#define CHECK_THROWS(status, ...) check_throws(status, [&] { __VA_ARGS__; }, __LINE__)

std::vector<unsigned char> read_bytes(const char* path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<float> read_floats(const char* path) {
  const std::vector<unsigned char> b = read_bytes(path);
  std::vector<float> v(b.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * sizeof(float));
  return v;
}

void test_without_model() {
  static_assert(!std::is_copy_constructible<pakd::Session>::value, "Session must be move-only");
  static_assert(std::is_nothrow_move_constructible<pakd::Session>::value, "Session moves must not throw");

  // Not a .pakd file: BAD_FORMAT with the loader's message.
  const unsigned char junk[64] = {'N', 'O', 'P', 'E'};
  try {
    pakd::Session::from_memory(junk, sizeof(junk));
    CHECK(!"from_memory accepted junk");
  } catch (const pakd::Error& e) {
    CHECK(e.status() == PAKD_ERR_BAD_FORMAT);
    CHECK(!e.message().empty());
    CHECK(std::string(e.what()).find(e.message()) != std::string::npos);
  }
  CHECK_THROWS(PAKD_ERR_INVALID_ARGUMENT, pakd::Session::from_file("/nonexistent/model.pakd"));

  // Bad options are reported as errors, not crashes.
  pakd_session_options bad = pakd::default_options();
  bad.struct_size = 1;
  CHECK_THROWS(PAKD_ERR_INVALID_ARGUMENT, pakd::Session::from_memory(junk, sizeof(junk), bad));

  // An empty session throws instead of passing NULL to the C API.
  pakd::Session empty;
  CHECK(!empty);
  CHECK(empty.get() == nullptr);
  CHECK_THROWS(PAKD_ERR_INVALID_ARGUMENT, empty.info());

  pakd::check(PAKD_OK);  // no throw
  CHECK_THROWS(PAKD_ERR_OUT_OF_MEMORY, pakd::check(PAKD_ERR_OUT_OF_MEMORY));
}

void test_with_model(const char* model, const char* input_path, const char* expected_path) {
  const std::vector<float> input = read_floats(input_path);
  const std::vector<float> expected = read_floats(expected_path);

  pakd_session_options options = pakd::default_options();
  options.max_batch = 2;
  pakd::Session s = pakd::Session::from_file(model, options);
  CHECK(s);
  const pakd_session_info info = s.info();
  CHECK(info.max_batch == 2);
  CHECK(s.input_size() == input.size());
  CHECK(s.output_size() == expected.size());
  CHECK(!s.input_dims().empty());
  CHECK(s.metadata().front() == '{');

  // run(vector) on one sample matches the reference output.
  const std::vector<float> y = s.run(input);
  CHECK(y.size() == expected.size());
  double max_diff = 0.0;
  for (std::size_t i = 0; i < y.size() && i < expected.size(); ++i) {
    max_diff = std::fmax(max_diff, std::fabs(static_cast<double>(y[i]) - expected[i]));
  }
  CHECK(max_diff <= 1e-5);

  // Two samples at once: each output equals the single-sample one.
  std::vector<float> two(input);
  two.insert(two.end(), input.begin(), input.end());
  const std::vector<float> y2 = s.run(two);
  CHECK(y2.size() == 2 * y.size());
  CHECK(std::vector<float>(y2.begin(), y2.begin() + y.size()) == y);
  CHECK(std::vector<float>(y2.begin() + y.size(), y2.end()) == y);

  // The pointer overload, and its errors from the C API.
  std::vector<float> out(info.output_size);
  s.run(input.data(), 1, out.data(), out.size());
  CHECK(out == y);
  CHECK_THROWS(PAKD_ERR_INVALID_ARGUMENT, s.run(input.data(), 1, out.data(), out.size() - 1));
  CHECK_THROWS(PAKD_ERR_INVALID_ARGUMENT, s.run(input.data(), 3, out.data(), 3 * out.size()));
  CHECK_THROWS(PAKD_ERR_INVALID_ARGUMENT, s.run(std::vector<float>(input.size() + 1)));
  CHECK_THROWS(PAKD_ERR_INVALID_ARGUMENT, s.run(std::vector<float>()));

  // Moving transfers ownership: the source is empty, the target runs.
  pakd_session* raw = s.get();
  pakd::Session moved(std::move(s));
  CHECK(!s);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  CHECK(moved.get() == raw);
  CHECK(moved.run(input) == y);
  pakd::Session assigned;
  assigned = std::move(moved);
  CHECK(assigned.get() == raw && !moved);

  // The same bytes through from_memory give the same result.
  const std::vector<unsigned char> bytes = read_bytes(model);
  pakd::Session from_bytes = pakd::Session::from_memory(bytes.data(), bytes.size());
  CHECK(from_bytes.run(input) == y);

  // release() hands the handle back to C; session_ptr owns it again.
  pakd::session_ptr owned(assigned.release());
  CHECK(owned.get() == raw && !assigned);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    test_without_model();
    if (argc == 4) {
      test_with_model(argv[1], argv[2], argv[3]);
    } else if (argc != 1) {
      std::fprintf(stderr, "usage: test_pakd_hpp [MODEL INPUT.f32 EXPECTED.f32]\n");
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 1;
  }
  if (g_failures) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("test_pakd_hpp: all checks passed%s\n", argc == 4 ? " (with model)" : "");
  return 0;
}
