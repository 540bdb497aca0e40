// The activations of the format (Act), applied element by element.
#ifndef PAKD_SRC_RUNTIME_ACTIVATION_H_
#define PAKD_SRC_RUNTIME_ACTIVATION_H_

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "runtime/model-file.h"

namespace pakd::runtime {

inline float activate(float v, Act act) {
  switch (act) {
    case Act::kNone: return v;
    case Act::kRelu: return v > 0.0f ? v : 0.0f;
    case Act::kRelu6: return std::min(std::max(v, 0.0f), 6.0f);
    case Act::kHardswish: return v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
    case Act::kSigmoid: return 1.0f / (1.0f + std::exp(-v));
    case Act::kHardsigmoid: return std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
    case Act::kSilu: return v / (1.0f + std::exp(-v));
    case Act::kGelu: return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
    case Act::kGeluTanh: {
      const float u = 0.79788456080286536f * (v + 0.044715f * v * v * v);
      return 0.5f * v * (1.0f + std::tanh(u));
    }
  }
  return v;
}

inline void activate_range(float* y, std::size_t n, Act act) {
  if (act == Act::kNone) return;
  if (act == Act::kRelu) {
    for (std::size_t i = 0; i < n; ++i) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    return;
  }
  if (act == Act::kRelu6) {
    for (std::size_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i], 0.0f), 6.0f);
    return;
  }
  if (act == Act::kHardswish) {  // branch-free: the compiler vectorizes it
    for (std::size_t i = 0; i < n; ++i) y[i] = y[i] * std::min(std::max(y[i] + 3.0f, 0.0f), 6.0f) / 6.0f;
    return;
  }
  if (act == Act::kHardsigmoid) {
    for (std::size_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i] + 3.0f, 0.0f), 6.0f) / 6.0f;
    return;
  }
  for (std::size_t i = 0; i < n; ++i) y[i] = activate(y[i], act);
}

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_ACTIVATION_H_
