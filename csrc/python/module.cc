// pybind11 module pakd._core: a thin Python layer over the public C API
// (pakd/pakd.h) - it uses nothing else from the core, so Python exercises
// exactly what a device application links.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings.h"
#include "pakd/pakd.h"

namespace py = pybind11;

namespace {

using pakd_python::check;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

pakd_kernel_info kernel_info(size_t index) {
  pakd_kernel_info info{};
  info.struct_size = sizeof(info);
  check(pakd_f32_gemm_kernel_info(index, &info), "pakd_f32_gemm_kernel_info");
  return info;
}

py::list gemm_kernels() {
  py::list kernels;
  for (size_t i = 0; i < pakd_f32_gemm_kernel_count(); ++i) {
    const pakd_kernel_info info = kernel_info(i);
    py::dict d;
    d["name"] = info.name;
    d["isa"] = info.isa;
    d["supported"] = info.supported != 0;
    kernels.append(std::move(d));
  }
  return kernels;
}

std::string known_kernel_names() {
  std::string names;
  for (size_t i = 0; i < pakd_f32_gemm_kernel_count(); ++i) {
    names += (i ? ", " : "") + std::string(kernel_info(i).name);
  }
  return names;
}

std::string shape_string(const FloatArray& x) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < x.ndim(); ++d) {
    s += (d ? ", " : "") + std::to_string(x.shape(d));
  }
  return s + (x.ndim() == 1 ? ",)" : ")");
}

FloatArray gemm(const FloatArray& a, const FloatArray& b, const std::optional<std::string>& kernel) {
  if (a.ndim() != 2 || b.ndim() != 2) {
    throw py::value_error("gemm expects 2-D arrays, got a.shape=" + shape_string(a) +
                          " and b.shape=" + shape_string(b));
  }
  const size_t m = static_cast<size_t>(a.shape(0));
  const size_t k = static_cast<size_t>(a.shape(1));
  const size_t n = static_cast<size_t>(b.shape(1));
  if (static_cast<size_t>(b.shape(0)) != k) {
    throw py::value_error("gemm shape mismatch: a.shape=" + shape_string(a) + " and b.shape=" + shape_string(b) +
                          " (a.shape[1] must equal b.shape[0])");
  }
  // Give unknown names a helpful message before the C call reports it.
  if (kernel) {
    bool known = false;
    for (size_t i = 0; i < pakd_f32_gemm_kernel_count() && !known; ++i) {
      known = *kernel == kernel_info(i).name;
    }
    if (!known) {
      throw py::value_error("unknown GEMM kernel '" + *kernel + "' (known: " + known_kernel_names() + ")");
    }
  }

  FloatArray c({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(n)});
  const float* pa = a.data();
  const float* pb = b.data();
  float* pc = c.mutable_data();
  const char* name = kernel ? kernel->c_str() : nullptr;
  pakd_status status;
  {
    py::gil_scoped_release release;
    status = pakd_f32_gemm(name, m, n, k, pa, k, pb, n, pc, n);
  }
  check(status, "gemm(kernel=" + (kernel ? "'" + *kernel + "'" : std::string("None")) + ")");
  return c;
}

py::dict cpu_features() {
  pakd_cpu_info info{};
  info.struct_size = sizeof(info);
  check(pakd_get_cpu_info(&info), "pakd_get_cpu_info");
  py::dict d;
  d["arch"] = info.arch;
  d["sse2"] = info.sse2 != 0;
  d["avx"] = info.avx != 0;
  d["avx2"] = info.avx2 != 0;
  d["fma"] = info.fma != 0;
  d["avx512f"] = info.avx512f != 0;
  d["neon"] = info.neon != 0;
  d["neon_dot"] = info.neon_dot != 0;
  d["i8mm"] = info.i8mm != 0;
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "PaKD native core: kernels and runtime behind the C API pakd.h";
  m.attr("__version__") = pakd_version();

  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("kernel") = py::none(),
        R"doc(Matrix product a @ b of 2-D float32 arrays, shapes (m, k) and (k, n).

Inputs are converted to C-contiguous float32 if needed. ``kernel`` is a name
from gemm_kernels(), or None for best_gemm_kernel(). Raises ValueError for bad
shapes or an unknown kernel, NotImplementedError for a kernel this CPU cannot
run. The GIL is released during the computation.)doc");
  m.def("gemm_kernels", &gemm_kernels, "All compiled-in f32 GEMM kernels: list of {'name', 'isa', 'supported'}.");
  m.def(
      "best_gemm_kernel", [] { return std::string(pakd_f32_gemm_best_kernel()); },
      "Name of the kernel gemm() uses when kernel=None.");
  m.def("cpu_features", &cpu_features,
        "Features of the running CPU: {'arch', 'sse2', 'avx', 'avx2', 'fma', 'avx512f', 'neon', 'neon_dot', 'i8mm'}.");
  pakd_python::bind_kernels(m);
  pakd_python::bind_session(m);
}

namespace pakd_python {

void check(pakd_status status, const std::string& what) {
  if (status == PAKD_OK) return;
  PyObject* type = PyExc_RuntimeError;  // PAKD_ERR_INTERNAL and unknown codes
  switch (status) {
    case PAKD_ERR_INVALID_ARGUMENT:
    case PAKD_ERR_BAD_FORMAT: type = PyExc_ValueError; break;
    case PAKD_ERR_UNSUPPORTED: type = PyExc_NotImplementedError; break;
    case PAKD_ERR_OUT_OF_MEMORY: type = PyExc_MemoryError; break;
    default: break;
  }
  std::string message = what + ": " + pakd_status_string(status);
  const char* detail = pakd_last_error();
  if (detail != nullptr && detail[0] != '\0') message += ": " + std::string(detail);
  PyErr_SetString(type, message.c_str());
  throw pybind11::error_already_set();
}

}  // namespace pakd_python
