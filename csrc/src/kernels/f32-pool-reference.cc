// Pooling, portable C++: the 2x2 / stride-2 max pooling without bounds
// checks, the general max and average pooling (PyTorch's rules), and the
// global average pooling. Contracts in kernels/kernels.h.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "kernels/kernels.h"

void pakd_f32_maxpool2x2_ukernel__scalar(std::size_t planes, std::size_t h, std::size_t w, std::size_t ho,
                                         std::size_t wo, const float* x, float* y) {
  for (std::size_t p = 0; p < planes; ++p) {
    const float* xc = x + p * h * w;
    float* yc = y + p * ho * wo;
    for (std::size_t oy = 0; oy < ho; ++oy) {
      const float* r0 = xc + 2 * oy * w;
      const float* r1 = r0 + w;
      for (std::size_t ox = 0; ox < wo; ++ox) {
        yc[oy * wo + ox] = std::max(std::max(r0[2 * ox], r0[2 * ox + 1]), std::max(r1[2 * ox], r1[2 * ox + 1]));
      }
    }
  }
}

void pakd_f32_maxpool_ukernel__reference(std::size_t planes, const pakd::F32PoolParams& p, const float* x, float* y) {
  for (std::size_t c = 0; c < planes; ++c) {
    const float* xc = x + c * static_cast<std::size_t>(p.h * p.w);
    float* yc = y + c * static_cast<std::size_t>(p.ho * p.wo);
    for (std::int64_t oy = 0; oy < p.ho; ++oy) {
      for (std::int64_t ox = 0; ox < p.wo; ++ox) {
        float acc = -std::numeric_limits<float>::infinity();
        for (std::int64_t ky = 0; ky < p.kh; ++ky) {
          const std::int64_t iy = oy * p.sh - p.ph + ky * p.dh;
          if (iy < 0 || iy >= p.h) continue;
          for (std::int64_t kx = 0; kx < p.kw; ++kx) {
            const std::int64_t ix = ox * p.sw - p.pw + kx * p.dw;
            if (ix < 0 || ix >= p.w) continue;
            acc = std::max(acc, xc[iy * p.w + ix]);
          }
        }
        yc[oy * p.wo + ox] = acc;
      }
    }
  }
}

void pakd_f32_avgpool_ukernel__reference(std::size_t planes, const pakd::F32PoolParams& p, const float* x, float* y) {
  for (std::size_t c = 0; c < planes; ++c) {
    const float* xc = x + c * static_cast<std::size_t>(p.h * p.w);
    float* yc = y + c * static_cast<std::size_t>(p.ho * p.wo);
    for (std::int64_t oy = 0; oy < p.ho; ++oy) {
      for (std::int64_t ox = 0; ox < p.wo; ++ox) {
        float acc = 0.0f;
        // PyTorch's avg_pool2d divisor rules
        std::int64_t y0 = oy * p.sh - p.ph, x0 = ox * p.sw - p.pw;
        std::int64_t y1 = std::min(y0 + p.kh, p.h + p.ph), x1 = std::min(x0 + p.kw, p.w + p.pw);
        const std::int64_t pool = (y1 - y0) * (x1 - x0);
        y0 = std::max<std::int64_t>(y0, 0);
        x0 = std::max<std::int64_t>(x0, 0);
        y1 = std::min(y1, p.h);
        x1 = std::min(x1, p.w);
        for (std::int64_t iy = y0; iy < y1; ++iy) {
          for (std::int64_t ix = x0; ix < x1; ++ix) acc += xc[iy * p.w + ix];
        }
        const std::int64_t div = p.include_pad != 0 ? pool : (y1 - y0) * (x1 - x0);
        yc[oy * p.wo + ox] = div > 0 ? acc / static_cast<float>(div) : 0.0f;
      }
    }
  }
}

void pakd_f32_gavgpool_ukernel__scalar(std::size_t planes, std::size_t size, const float* x, float* y) {
  for (std::size_t c = 0; c < planes; ++c) {
    const float* xc = x + c * size;
    // 8 partial sums: independent chains the compiler keeps in one vector register
    // (MobileNetV3's 16 x 56 x 56 mean: 29 -> 5 us), and a shorter rounding path than one sum.
    float part[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      for (std::size_t k = 0; k < 8; ++k) part[k] += xc[i + k];
    }
    float acc = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
    for (; i < size; ++i) acc += xc[i];
    y[c] = acc / static_cast<float>(size);
  }
}
