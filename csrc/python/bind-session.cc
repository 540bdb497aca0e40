// pakd._core.Session: a loaded .pakd model with its planned memory.
#include "bindings.h"

namespace pakd_python {

void bind_session(pybind11::module_& m) { (void)m; }

}  // namespace pakd_python
