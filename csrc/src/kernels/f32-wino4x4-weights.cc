// Winograd F(4x4, 3x3) weight transform, done once when a session prepares
// its weights: u = G g G^T per (output, input) channel pair, in double, laid
// out for the F32Wino4x4Fn kernels (kernels/kernels.h).
#include <cstddef>

#include "kernels/kernels.h"

namespace pakd {

namespace {
// G of F(4x4, 3x3) with interpolation points 0, 1, -1, 2, -2 and infinity
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks").
constexpr double kG[6][3] = {
    {1.0 / 4, 0.0, 0.0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0.0, 0.0, 1.0},
};
}  // namespace

void pack_wino4x4_weights(std::size_t cout, std::size_t cin, const float* w, const float* scale, float* u) {
  const std::size_t cin_p = (cin + kWinoCinBlock - 1) / kWinoCinBlock * kWinoCinBlock;
  const std::size_t cout_p = (cout + kWinoCoutBlock - 1) / kWinoCoutBlock * kWinoCoutBlock;
  const std::size_t blocks = cout_p / kWinoCoutBlock;
  for (std::size_t i = 0; i < kWinoPositions * cout_p * cin_p; ++i) u[i] = 0.0f;
  for (std::size_t oc = 0; oc < cout; ++oc) {
    const double s = scale != nullptr ? scale[oc] : 1.0;
    for (std::size_t ic = 0; ic < cin; ++ic) {
      const float* g = w + (oc * cin + ic) * 9;
      double gg[6][3];  // G g
      for (std::size_t i = 0; i < 6; ++i) {
        for (std::size_t b = 0; b < 3; ++b) {
          gg[i][b] = kG[i][0] * g[b] + kG[i][1] * g[3 + b] + kG[i][2] * g[6 + b];
        }
      }
      for (std::size_t i = 0; i < 6; ++i) {
        for (std::size_t j = 0; j < 6; ++j) {
          const double v = (gg[i][0] * kG[j][0] + gg[i][1] * kG[j][1] + gg[i][2] * kG[j][2]) * s;
          const std::size_t t = i * 6 + j;
          u[((t * blocks + oc / kWinoCoutBlock) * cin_p + ic) * kWinoCoutBlock + oc % kWinoCoutBlock] =
              static_cast<float>(v);
        }
      }
    }
  }
}

}  // namespace pakd
