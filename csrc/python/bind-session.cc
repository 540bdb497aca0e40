// pakd._core.Session: a loaded .pakd model with its planned memory, through
// the C API (pakd_session_*).
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "bindings.h"

namespace py = pybind11;

namespace pakd_python {
namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

class Session {
 public:
  Session(const py::object& source, int num_threads, std::size_t max_batch, float sparse_max_density, bool reference,
          const std::optional<std::string>& gemm_kernel, int codebook_kernel, int winograd) {
    if (num_threads < 1) throw py::value_error("num_threads must be >= 1");
    if (max_batch < 1) throw py::value_error("max_batch must be >= 1");
    pakd_session_options options;
    pakd_session_options_init(&options);
    options.num_threads = num_threads;
    options.max_batch = max_batch;
    options.sparse_max_density = sparse_max_density;
    options.reference = reference ? 1 : 0;
    options.gemm_kernel = gemm_kernel ? gemm_kernel->c_str() : nullptr;
    options.codebook_kernel = codebook_kernel;
    options.winograd = winograd;
    pakd_status status;
    if (py::isinstance<py::bytes>(source) || py::isinstance<py::bytearray>(source) ||
        py::isinstance<py::memoryview>(source)) {
      const std::string data =
          py::isinstance<py::bytes>(source) ? source.cast<std::string>() : py::bytes(source).cast<std::string>();
      py::gil_scoped_release release;
      status = pakd_session_create(data.data(), data.size(), &options, &session_);
    } else {
      const std::string path = py::str(py::module_::import("os").attr("fspath")(source));
      py::gil_scoped_release release;
      status = pakd_session_create_from_file(path.c_str(), &options, &session_);
    }
    check(status, "Session");
    info_.struct_size = sizeof(info_);
    check(pakd_session_get_info(session_, &info_), "Session");
  }
  ~Session() { pakd_session_destroy(session_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::vector<std::size_t> input_shape() const { return {info_.input_dims, info_.input_dims + info_.input_ndim}; }
  std::vector<std::size_t> output_shape() const { return {info_.output_dims, info_.output_dims + info_.output_ndim}; }

  FloatArray run(const FloatArray& x) {
    const std::vector<std::size_t> sample = input_shape();
    const std::size_t nd = static_cast<std::size_t>(x.ndim());
    bool single = nd == sample.size();
    bool ok = single || nd == sample.size() + 1;
    for (std::size_t i = 0; ok && i < sample.size(); ++i) {
      ok = static_cast<std::size_t>(x.shape(static_cast<py::ssize_t>(nd - sample.size() + i))) == sample[i];
    }
    if (!ok) {
      std::string want = "(";
      for (std::size_t i = 0; i < sample.size(); ++i) want += (i ? ", " : "") + std::to_string(sample[i]);
      std::string got = "(";
      for (std::size_t i = 0; i < nd; ++i)
        got += (i ? ", " : "") + std::to_string(x.shape(static_cast<py::ssize_t>(i)));
      throw py::value_error("input shape " + got + ") does not match the model's (N, " + want.substr(1) + ") or " +
                            want + ")");
    }
    const std::size_t batch = single ? 1 : static_cast<std::size_t>(x.shape(0));
    std::vector<py::ssize_t> out_shape;
    if (!single) out_shape.push_back(static_cast<py::ssize_t>(batch));
    for (std::size_t d : output_shape()) out_shape.push_back(static_cast<py::ssize_t>(d));
    FloatArray y(out_shape);
    const float* in = x.data();
    float* out = y.mutable_data();
    pakd_status status = PAKD_OK;
    {
      py::gil_scoped_release release;
      for (std::size_t b = 0; b < batch && status == PAKD_OK; b += info_.max_batch) {
        const std::size_t n = std::min(info_.max_batch, batch - b);
        status = pakd_session_run(session_, in + b * info_.input_size, n, out + b * info_.output_size,
                                  n * info_.output_size);
      }
    }
    check(status, "Session.run");
    return y;
  }

  // [(op description, mean microseconds)] over `repeats` runs of x (one sample or a batch).
  py::list profile(const FloatArray& x, int repeats) {
    if (repeats < 1) throw py::value_error("repeats must be >= 1");
    run(x);  // validates the shape; also a warm-up
    const std::size_t batch =
        static_cast<std::size_t>(x.ndim()) == info_.input_ndim ? 1 : static_cast<std::size_t>(x.shape(0));
    if (batch > info_.max_batch) throw py::value_error("profile() takes at most max_batch samples");
    std::vector<double> us(info_.num_ops, 0.0);
    std::vector<float> out(batch * info_.output_size);
    pakd_status status = PAKD_OK;
    {
      py::gil_scoped_release release;
      for (int r = 0; r < repeats && status == PAKD_OK; ++r) {
        status = pakd_session_run_profiled(session_, x.data(), batch, out.data(), out.size(), us.data(), us.size());
      }
    }
    check(status, "Session.profile");
    py::list rows;
    for (std::size_t i = 0; i < us.size(); ++i) {
      const char* desc = nullptr;
      check(pakd_session_op_description(session_, i, &desc), "Session.profile");
      rows.append(py::make_tuple(std::string(desc), us[i] / repeats));
    }
    return rows;
  }

  py::dict metadata() const {
    const char* meta = nullptr;
    check(pakd_session_metadata(session_, &meta), "Session.metadata");
    return py::module_::import("json").attr("loads")(std::string(meta));
  }

  const pakd_session_info& info() const { return info_; }

 private:
  pakd_session* session_ = nullptr;
  pakd_session_info info_{};
};

}  // namespace

void bind_session(py::module_& m) {
  py::class_<Session>(m, "Session", R"doc(A .pakd model loaded by the native runtime.

Session(source, num_threads=1, max_batch=1, sparse_max_density=0.35,
        reference=False, gemm_kernel=None, codebook_kernel=0, winograd=0)

source is a path or the file's bytes. Every offset and shape in the file is
checked: a malformed file raises ValueError with the reason. Memory is planned
once for max_batch samples; run() never allocates inside the runtime.)doc")
      .def(py::init<const py::object&, int, std::size_t, float, bool, const std::optional<std::string>&, int, int>(),
           py::arg("source"), py::arg("num_threads") = 1, py::arg("max_batch") = 1,
           py::arg("sparse_max_density") = 0.35f, py::arg("reference") = false, py::arg("gemm_kernel") = py::none(),
           py::arg("codebook_kernel") = 0, py::arg("winograd") = 0)
      .def("run", &Session::run, py::arg("x"),
           "Runs one sample (C, H, W) or a batch (N, C, H, W) of float32; returns the outputs "
           "(batches larger than max_batch run in chunks). Releases the GIL.")
      .def("profile", &Session::profile, py::arg("x"), py::arg("repeats") = 100,
           "Per-op mean wall time: [(description, microseconds)] over `repeats` runs of x.")
      .def_property_readonly("input_shape", &Session::input_shape, "Shape of one input sample.")
      .def_property_readonly("output_shape", &Session::output_shape, "Shape of one output sample.")
      .def_property_readonly("metadata", &Session::metadata, "The file's META section (dict).")
      .def_property_readonly("num_ops", [](const Session& s) { return s.info().num_ops; })
      .def_property_readonly(
          "weight_bytes", [](const Session& s) { return s.info().weight_bytes; },
          "Bytes of prepared weights in memory.")
      .def_property_readonly(
          "arena_bytes", [](const Session& s) { return s.info().arena_bytes; },
          "Bytes of the planned activation arena and scratch.")
      .def_property_readonly("num_threads", [](const Session& s) { return s.info().num_threads; })
      .def_property_readonly("max_batch", [](const Session& s) { return s.info().max_batch; });
}

}  // namespace pakd_python
