// Softmax over one vector, portable C++ (contract in kernels/kernels.h).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "kernels/kernels.h"

void pakd_f32_softmax_ukernel__reference(std::size_t n, const float* x, float* y) {
  float m = -std::numeric_limits<float>::infinity();
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) sum += (y[i] = std::exp(x[i] - m));
  for (std::size_t i = 0; i < n; ++i) y[i] /= sum;
}
