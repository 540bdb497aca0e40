// Kernel entry points of pakd._core used by tests and benchmarks.
#include "bindings.h"

namespace pakd_python {

void bind_kernels(pybind11::module_& m) { (void)m; }

}  // namespace pakd_python
