// The parts of pakd._core, one file each (csrc/python/*.cc), assembled by
// module.cc. check() is the one place where a pakd_status becomes a Python
// exception.
#ifndef PAKD_PYTHON_BINDINGS_H_
#define PAKD_PYTHON_BINDINGS_H_

#include <pybind11/pybind11.h>

#include <string>

#include "pakd/pakd.h"

namespace pakd_python {

// Raises the Python exception for `status` (ValueError for bad arguments and
// malformed models, NotImplementedError for unsupported, MemoryError, else
// RuntimeError), with `what` and the library's last error message. No-op for
// PAKD_OK.
void check(pakd_status status, const std::string& what);

// Kernel entry points for tests and benchmarks (sparse, int8): bind-kernels.cc.
void bind_kernels(pybind11::module_& m);

// pakd._core.Session: bind-session.cc.
void bind_session(pybind11::module_& m);

}  // namespace pakd_python

#endif  // PAKD_PYTHON_BINDINGS_H_
