// Winograd F(4x4, 3x3) convolution, portable C++: every inner loop runs over
// 8 channel lanes or 16 output channels, which the compiler vectorizes (SSE,
// NEON). Contract: F32Wino4x4Fn / F32Wino4x4PackFn in kernels/kernels.h.
#include <cstddef>
#include <cstring>

#include "kernels/kernels.h"

namespace {

constexpr std::size_t L = pakd::kWinoCinBlock;   // channel lanes of the transforms
constexpr std::size_t V = pakd::kWinoCoutBlock;  // output channels per GEMM block
constexpr std::size_t R = 6;                     // tiles per GEMM block
constexpr std::size_t P = pakd::kWinoPositions;

// t = B^T d along one axis, 8 lanes at a time (d[k] is lane array k).
void input_1d(const float* const d[6], float t[6][L]) {
  for (std::size_t l = 0; l < L; ++l) {
    const float d0 = d[0][l], d1 = d[1][l], d2 = d[2][l], d3 = d[3][l], d4 = d[4][l], d5 = d[5][l];
    t[0][l] = 4.0f * d0 - 5.0f * d2 + d4;
    t[1][l] = (d3 + d4) - 4.0f * (d1 + d2);
    t[2][l] = (d4 - d3) + 4.0f * (d1 - d2);
    t[3][l] = (d4 - d2) + 2.0f * (d3 - d1);
    t[4][l] = (d4 - d2) - 2.0f * (d3 - d1);
    t[5][l] = 4.0f * d1 - 5.0f * d3 + d5;
  }
}

// o = A^T m along one axis.
void output_1d(const float* const m[6], float o[4][L]) {
  for (std::size_t l = 0; l < L; ++l) {
    const float a = m[1][l] + m[2][l], b = m[1][l] - m[2][l];
    const float c = m[3][l] + m[4][l], d = m[3][l] - m[4][l];
    o[0][l] = m[0][l] + a + c;
    o[1][l] = b + 2.0f * d;
    o[2][l] = a + 4.0f * c;
    o[3][l] = b + 8.0f * d + m[5][l];
  }
}

}  // namespace

void pakd_f32_wino4x4_pack_ukernel_8x8__scalar(std::size_t cin, std::size_t h, std::size_t w, std::size_t ph,
                                               std::size_t pw, const float* x, float* xh, std::size_t hpp,
                                               std::size_t wpp) {
  const std::size_t blocks = (cin + L - 1) / L;
  std::memset(xh, 0, blocks * hpp * wpp * L * sizeof(float));
  for (std::size_t c = 0; c < cin; ++c) {
    for (std::size_t iy = 0; iy < h; ++iy) {
      const float* xr = x + (c * h + iy) * w;
      float* out = xh + ((c / L * hpp + iy + ph) * wpp + pw) * L + c % L;
      for (std::size_t ix = 0; ix < w; ++ix) out[ix * L] = xr[ix];
    }
  }
}

void pakd_f32_wino4x4_ukernel_6x16__scalar(std::size_t tile_begin, std::size_t tile_end, std::size_t tiles_x,
                                           std::size_t cin, std::size_t cin_p, std::size_t cout, const float* u,
                                           const float* bias, int relu, const float* residual, const float* xh,
                                           std::size_t hpp, std::size_t wpp, float* y, std::size_t ho, std::size_t wo) {
  const std::size_t cout_p = (cout + V - 1) / V * V, oblocks = cout_p / V;
  const std::size_t chunk = pakd::kWinoTileChunk;
  float* const vbuf = static_cast<float*>(pakd::kernel_workspace(P * chunk * (cin_p + cout_p) * sizeof(float)));
  float* const mbuf = vbuf + P * chunk * cin_p;
  for (std::size_t c0 = tile_begin; c0 < tile_end; c0 += chunk) {
    const std::size_t nt = tile_end - c0 < chunk ? tile_end - c0 : chunk;
    // input transform: vbuf[pos][tile][cin_p]
    for (std::size_t tl = 0; tl < nt; ++tl) {
      const std::size_t ty = (c0 + tl) / tiles_x, tx = (c0 + tl) % tiles_x;
      for (std::size_t cb = 0; cb < cin_p / L; ++cb) {
        const float* base = xh + ((cb * hpp + 4 * ty) * wpp + 4 * tx) * L;
        float t[6][6][L];  // t[column][i]: B^T d down each column
        for (std::size_t c = 0; c < 6; ++c) {
          const float* const d[6] = {base + c * L,
                                     base + (wpp + c) * L,
                                     base + (2 * wpp + c) * L,
                                     base + (3 * wpp + c) * L,
                                     base + (4 * wpp + c) * L,
                                     base + (5 * wpp + c) * L};
          input_1d(d, t[c]);
        }
        for (std::size_t i = 0; i < 6; ++i) {
          const float* const d[6] = {t[0][i], t[1][i], t[2][i], t[3][i], t[4][i], t[5][i]};
          float v[6][L];
          input_1d(d, v);
          for (std::size_t j = 0; j < 6; ++j) {
            float* dst = vbuf + ((i * 6 + j) * nt + tl) * cin_p + cb * L;
            for (std::size_t l = 0; l < L; ++l) dst[l] = v[j][l];
          }
        }
      }
    }
    // 36 GEMMs: mbuf[pos][tile][cout_p] = vbuf[pos][tile][:] x u[pos]
    for (std::size_t pos = 0; pos < P; ++pos) {
      for (std::size_t ob = 0; ob < oblocks; ++ob) {
        const float* ub = u + (pos * oblocks + ob) * cin_p * V;
        for (std::size_t r0 = 0; r0 < nt; r0 += R) {
          const std::size_t rows = nt - r0 < R ? nt - r0 : R;
          float acc[R][V] = {};
          const float* vr = vbuf + (pos * nt + r0) * cin_p;
          for (std::size_t ic = 0; ic < cin; ++ic) {  // the padding channels are zero
            const float* wr = ub + ic * V;
            for (std::size_t r = 0; r < rows; ++r) {
              const float xv = vr[r * cin_p + ic];
              for (std::size_t o = 0; o < V; ++o) acc[r][o] += xv * wr[o];
            }
          }
          for (std::size_t r = 0; r < rows; ++r) {
            float* dst = mbuf + (pos * nt + r0 + r) * cout_p + ob * V;
            for (std::size_t o = 0; o < V; ++o) dst[o] = acc[r][o];
          }
        }
      }
    }
    // output transform + bias + ReLU into y
    for (std::size_t tl = 0; tl < nt; ++tl) {
      const std::size_t ty = (c0 + tl) / tiles_x, tx = (c0 + tl) % tiles_x;
      const std::size_t rows = ho - 4 * ty < 4 ? ho - 4 * ty : 4, cols = wo - 4 * tx < 4 ? wo - 4 * tx : 4;
      for (std::size_t o0 = 0; o0 < cout; o0 += L) {
        float s[6][4][L];  // s[j][a]: A^T m down each column j
        for (std::size_t j = 0; j < 6; ++j) {
          const float* m[6];
          for (std::size_t i = 0; i < 6; ++i) m[i] = mbuf + ((i * 6 + j) * nt + tl) * cout_p + o0;
          output_1d(m, s[j]);
        }
        float out[4][4][L];
        for (std::size_t a = 0; a < 4; ++a) {
          const float* const m[6] = {s[0][a], s[1][a], s[2][a], s[3][a], s[4][a], s[5][a]};
          output_1d(m, out[a]);
        }
        const std::size_t lanes = cout - o0 < L ? cout - o0 : L;
        for (std::size_t l = 0; l < lanes; ++l) {
          const float b = bias != nullptr ? bias[o0 + l] : 0.0f;
          const std::size_t at = ((o0 + l) * ho + 4 * ty) * wo + 4 * tx;
          float* yp = y + at;
          const float* rp = residual != nullptr ? residual + at : nullptr;
          for (std::size_t a = 0; a < rows; ++a) {
            for (std::size_t c = 0; c < cols; ++c) {
              const float v = out[a][c][l] + b + (rp != nullptr ? rp[a * wo + c] : 0.0f);
              yp[a * wo + c] = relu != 0 && !(v > 0.0f) ? 0.0f : v;  // as Act::kRelu
            }
          }
        }
      }
    }
  }
}
