// The public RAII wrapper (pakd/pakd.hpp, pakd::Session) and the internal
// runtime (src/runtime/session.h, pakd::runtime::Session) in one translation
// unit: distinct classes, no redefinition (an ODR clash when they shared a name).
#include <type_traits>

#include "pakd/pakd.hpp"
#include "runtime/session.h"

static_assert(!std::is_same<pakd::Session, pakd::runtime::Session>::value, "two distinct Session classes");

int main() { return 0; }
