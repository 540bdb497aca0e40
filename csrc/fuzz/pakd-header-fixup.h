// Recomputes the .pakd header's file size (u64 at offset 16) and CRC-32
// (u32 at offset 24, of every byte after the 32-byte header; docs/format.md),
// so that a mutated file gets past the checksum to the parsers behind it.
// Shared by the standalone driver and the libFuzzer custom mutator.
#ifndef PAKD_FUZZ_PAKD_HEADER_FIXUP_H_
#define PAKD_FUZZ_PAKD_HEADER_FIXUP_H_

#include <cstddef>
#include <cstdint>

namespace pakd_fuzz {

inline std::uint32_t crc32(const std::uint8_t* data, std::size_t n) {
  static const struct Table {
    std::uint32_t t[256];
    Table() {
      for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
      }
    }
  } table;
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) c = table.t[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// No-op for inputs shorter than the header.
inline void fix_header(std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kHeader = 32;
  if (size < kHeader) return;
  const std::uint64_t n = size;
  for (int i = 0; i < 8; ++i) data[16 + i] = static_cast<std::uint8_t>(n >> (8 * i));
  const std::uint32_t crc = crc32(data + kHeader, size - kHeader);
  for (int i = 0; i < 4; ++i) data[24 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
}

}  // namespace pakd_fuzz

#endif  // PAKD_FUZZ_PAKD_HEADER_FIXUP_H_
