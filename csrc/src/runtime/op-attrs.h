// The integer attributes of an op (OpDesc::attrs, as pakd/lower/native.py
// writes them) as named fields. model-file.cc validates the counts and
// ranges; these only name them.
#ifndef PAKD_SRC_RUNTIME_OP_ATTRS_H_
#define PAKD_SRC_RUNTIME_OP_ATTRS_H_

#include <cstddef>
#include <cstdint>

#include "runtime/model-file.h"

namespace pakd::runtime {

// conv2d: stride, padding, dilation (each height, width), groups.
struct ConvAttrs {
  std::int64_t sh, sw, ph, pw, dh, dw;
  std::size_t groups;

  static ConvAttrs of(const OpDesc& op) {
    const auto& a = op.attrs;
    return {a[0], a[1], a[2], a[3], a[4], a[5], static_cast<std::size_t>(a[6])};
  }
};

// maxpool / avgpool: window, stride, padding, dilation (each height, width),
// ceil mode (shapes only: model-file.cc), and avgpool's count_include_pad.
struct PoolAttrs {
  std::int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  bool ceil_mode, include_pad;

  static PoolAttrs of(const OpDesc& op) {
    const auto& a = op.attrs;
    return {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8] != 0, a[9] != 0};
  }
  // The common 2x2 / stride 2 window without padding or dilation.
  bool is_2x2_stride_2() const {
    return kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && dh == 1 && dw == 1;
  }
};

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_OP_ATTRS_H_
