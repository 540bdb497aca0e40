// Per-thread scratch memory for kernels (packing buffers). Compiled without
// ISA flags: the buffer management code must run on every CPU, and it
// instantiates library templates, which an ISA-specific file must not (the
// linker may keep that file's copy for the whole program).
#include <cstdint>
#include <memory>

#include "kernels/kernels.h"

namespace pakd {

void* kernel_workspace(std::size_t bytes) {
  constexpr std::size_t kAlign = 64;  // one cache line
  thread_local std::unique_ptr<unsigned char[]> storage;
  thread_local std::size_t capacity = 0;
  if (capacity < bytes) {
    storage.reset();  // free the old buffer before allocating the new one
    capacity = 0;
    storage.reset(new unsigned char[bytes + kAlign]);
    capacity = bytes;
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(storage.get());
  return storage.get() + (kAlign - addr % kAlign) % kAlign;
}

}  // namespace pakd
