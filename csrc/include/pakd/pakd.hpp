// pakd.hpp - a thin C++17 RAII layer over the C API in pakd.h.
//
// Header-only; it adds no symbols to the library and nothing to the C ABI.
// Every C call that fails becomes a pakd::Error carrying the pakd_status and
// pakd_last_error()'s message. Exceptions exist only on this (the caller's)
// side of the header: the library itself never throws across pakd.h.
//
//   pakd::Session s = pakd::Session::from_file("lenet5.pakd");
//   std::vector<float> y = s.run(x);           // x.size() == s.input_size()
//
// Sessions are move-only (unique ownership of the pakd_session handle), like
// std::unique_ptr; a moved-from Session is empty and only destructible,
// assignable or testable with `if (session)`.
#ifndef PAKD_PAKD_HPP_
#define PAKD_PAKD_HPP_

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pakd/pakd.h"

namespace pakd {

// A failed pakd_* call: status() is its pakd_status, what() reads
// "<status string>: <pakd_last_error()>".
class Error : public std::runtime_error {
 public:
  Error(pakd_status status, const std::string& message)
      : std::runtime_error(std::string(pakd_status_string(status)) + (message.empty() ? "" : ": " + message)),
        status_(status),
        message_(message) {}

  pakd_status status() const noexcept { return status_; }
  // The library's message alone (pakd_last_error() at the time of failure).
  const std::string& message() const noexcept { return message_; }

 private:
  pakd_status status_;
  std::string message_;
};

// Throws pakd::Error unless `status` is PAKD_OK.
inline void check(pakd_status status) {
  if (status != PAKD_OK) throw Error(status, pakd_last_error());
}

// Deleters and owning pointers for code that wants the raw handle with RAII
// only (as ggml-cpp.h does for ggml).
struct SessionDeleter {
  void operator()(pakd_session* s) const noexcept { pakd_session_destroy(s); }
};
using session_ptr = std::unique_ptr<pakd_session, SessionDeleter>;

// Default options (1 thread, max_batch 1, best kernels); change fields and
// pass them to Session::from_file / from_memory.
inline pakd_session_options default_options() noexcept {
  pakd_session_options o;
  pakd_session_options_init(&o);
  return o;
}

class Session {
 public:
  Session() noexcept = default;  // empty
  // Takes ownership of a handle from pakd_session_create*.
  explicit Session(pakd_session* handle) noexcept : handle_(handle) {}

  static Session from_file(const std::string& path, const pakd_session_options* options = nullptr) {
    pakd_session* s = nullptr;
    check(pakd_session_create_from_file(path.c_str(), options, &s));
    return Session(s);
  }
  static Session from_file(const std::string& path, const pakd_session_options& options) {
    return from_file(path, &options);
  }
  static Session from_memory(const void* data, std::size_t size, const pakd_session_options* options = nullptr) {
    pakd_session* s = nullptr;
    check(pakd_session_create(data, size, options, &s));
    return Session(s);
  }
  static Session from_memory(const void* data, std::size_t size, const pakd_session_options& options) {
    return from_memory(data, size, &options);
  }

  Session(Session&&) noexcept = default;
  Session& operator=(Session&&) noexcept = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  explicit operator bool() const noexcept { return handle_ != nullptr; }
  pakd_session* get() const noexcept { return handle_.get(); }
  // Gives up ownership; the caller destroys the handle.
  pakd_session* release() noexcept { return handle_.release(); }

  pakd_session_info info() const {
    pakd_session_info i{};
    i.struct_size = sizeof(i);
    check(pakd_session_get_info(handle(), &i));
    return i;
  }
  std::size_t input_size() const { return info().input_size; }
  std::size_t output_size() const { return info().output_size; }
  std::vector<std::size_t> input_dims() const {
    const pakd_session_info i = info();
    return std::vector<std::size_t>(i.input_dims, i.input_dims + i.input_ndim);
  }
  std::vector<std::size_t> output_dims() const {
    const pakd_session_info i = info();
    return std::vector<std::size_t>(i.output_dims, i.output_dims + i.output_ndim);
  }

  // The META section (UTF-8 JSON), copied.
  std::string metadata() const {
    const char* m = nullptr;
    check(pakd_session_metadata(handle(), &m));
    return m;
  }

  // Runs `batch` samples from `input` into `output` (room for
  // output_capacity floats); the same contract as pakd_session_run.
  void run(const float* input, std::size_t batch, float* output, std::size_t output_capacity) {
    check(pakd_session_run(handle(), input, batch, output, output_capacity));
  }

  // Runs input.size() / input_size() samples and returns their outputs;
  // input.size() must be a non-zero multiple of input_size().
  std::vector<float> run(const std::vector<float>& input) {
    const pakd_session_info i = info();
    if (i.input_size == 0 || input.empty() || input.size() % i.input_size != 0) {
      throw Error(PAKD_ERR_INVALID_ARGUMENT, "input holds " + std::to_string(input.size()) +
                                                 " floats, not a non-zero multiple of the input size " +
                                                 std::to_string(i.input_size));
    }
    const std::size_t batch = input.size() / i.input_size;
    std::vector<float> output(batch * i.output_size);
    run(input.data(), batch, output.data(), output.size());
    return output;
  }

 private:
  pakd_session* handle() const {
    if (!handle_) throw Error(PAKD_ERR_INVALID_ARGUMENT, "empty pakd::Session (moved from or default-constructed)");
    return handle_.get();
  }

  session_ptr handle_;
};

}  // namespace pakd

#endif  // PAKD_PAKD_HPP_
