// Winograd F(4x4, 3x3) convolution with AVX2/FMA. Per chunk of tiles:
//   1. input transform B^T d B, 8 input channels per vector (the packed input
//      interleaves 8 channels, so every load is one contiguous vector);
//   2. 36 GEMMs, 6 tiles x 16 output channels per micro-tile (the 6x16 GEMM
//      micro-kernel's shape: 12 accumulators, 2 weight loads and 6
//      broadcasts feeding 12 FMAs per input channel);
//   3. output transform A^T m A, 8 output channels per vector, + bias + ReLU,
//      8x8 transposes into the channel planes of y.
// Contract: F32Wino4x4Fn / F32Wino4x4PackFn in kernels/kernels.h.
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "kernels/kernels.h"

namespace {

constexpr std::size_t L = pakd::kWinoCinBlock;
constexpr std::size_t V = pakd::kWinoCoutBlock;
constexpr std::size_t P = pakd::kWinoPositions;

// In-place 8x8 transpose of r[0..7].
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// The first `cols` (1..4) floats of v to p / from p (the rest 0): partial rows
// of the edge tiles. Plain 4 / 8 / 12-byte moves: vmaskmovps is microcoded and
// slow on AMD CPUs (it made 14x14 outputs, 7 edge tiles in 16, ~20% slower).
inline void store_cols(float* p, __m128 v, std::size_t cols) {
  switch (cols) {
    case 4: _mm_storeu_ps(p, v); break;
    case 3:
      _mm_storel_pi(reinterpret_cast<__m64*>(p), v);
      _mm_store_ss(p + 2, _mm_movehl_ps(v, v));
      break;
    case 2: _mm_storel_pi(reinterpret_cast<__m64*>(p), v); break;
    default: _mm_store_ss(p, v); break;
  }
}
inline __m128 load_cols(const float* p, std::size_t cols) {
  switch (cols) {
    case 4: return _mm_loadu_ps(p);
    case 3: return _mm_movelh_ps(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p))), _mm_load_ss(p + 2));
    case 2: return _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p)));
    default: return _mm_load_ss(p);
  }
}

// t = B^T d along one axis.
inline void input_1d(__m256 d0, __m256 d1, __m256 d2, __m256 d3, __m256 d4, __m256 d5, __m256 t[6]) {
  const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
  t[0] = _mm256_fmadd_ps(four, d0, _mm256_fnmadd_ps(five, d2, d4));
  t[1] = _mm256_fnmadd_ps(four, _mm256_add_ps(d1, d2), _mm256_add_ps(d3, d4));
  t[2] = _mm256_fmadd_ps(four, _mm256_sub_ps(d1, d2), _mm256_sub_ps(d4, d3));
  const __m256 f = _mm256_sub_ps(d4, d2), g = _mm256_sub_ps(d3, d1);
  t[3] = _mm256_fmadd_ps(two, g, f);
  t[4] = _mm256_fnmadd_ps(two, g, f);
  t[5] = _mm256_fmadd_ps(four, d1, _mm256_fnmadd_ps(five, d3, d5));
}

// o = A^T m along one axis.
inline void output_1d(__m256 m0, __m256 m1, __m256 m2, __m256 m3, __m256 m4, __m256 m5, __m256 o[4]) {
  const __m256 a = _mm256_add_ps(m1, m2), b = _mm256_sub_ps(m1, m2);
  const __m256 c = _mm256_add_ps(m3, m4), d = _mm256_sub_ps(m3, m4);
  o[0] = _mm256_add_ps(_mm256_add_ps(m0, a), c);
  o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d, b);
  o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c, a);
  o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d, b), m5);
}

// mrow[r][0:16] = sum_ic v[r * ldv + ic] * w[ic][0:16] for ROWS rows.
template <int ROWS>
inline void gemm_rows(std::size_t cin, const float* v, std::size_t ldv, const float* w, float* m, std::size_t ldm) {
  __m256 acc0[ROWS], acc1[ROWS];
  for (int r = 0; r < ROWS; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  for (std::size_t ic = 0; ic < cin; ++ic, w += V) {
    const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
    for (int r = 0; r < ROWS; ++r) {
      const __m256 b = _mm256_broadcast_ss(v + r * ldv + ic);
      acc0[r] = _mm256_fmadd_ps(b, w0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(b, w1, acc1[r]);
    }
  }
  for (int r = 0; r < ROWS; ++r) {
    _mm256_store_ps(m + r * ldm, acc0[r]);
    _mm256_store_ps(m + r * ldm + 8, acc1[r]);
  }
}

// The same for the first 8 of the 16 columns (a last output block with <= 8
// channels: its other 8 lanes are never read).
template <int ROWS>
inline void gemm_rows8(std::size_t cin, const float* v, std::size_t ldv, const float* w, float* m, std::size_t ldm) {
  __m256 acc[ROWS];
  for (int r = 0; r < ROWS; ++r) acc[r] = _mm256_setzero_ps();
  for (std::size_t ic = 0; ic < cin; ++ic, w += V) {
    const __m256 w0 = _mm256_loadu_ps(w);
    for (int r = 0; r < ROWS; ++r) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(v + r * ldv + ic), w0, acc[r]);
  }
  for (int r = 0; r < ROWS; ++r) _mm256_store_ps(m + r * ldm, acc[r]);
}

// rows x 16 (or x 8 when half) output columns, in micro-tiles of 6 rows.
template <bool HALF>
inline void gemm_block(std::size_t nt, std::size_t cin, const float* v, std::size_t ldv, const float* w, float* m,
                       std::size_t ldm) {
  std::size_t r = 0;
#define PAKD_WINO_ROWS(n)                                           \
  (HALF ? gemm_rows8<n>(cin, v + r * ldv, ldv, w, m + r * ldm, ldm) \
        : gemm_rows<n>(cin, v + r * ldv, ldv, w, m + r * ldm, ldm))
  for (; r + 6 <= nt; r += 6) PAKD_WINO_ROWS(6);
  switch (nt - r) {
    case 5: PAKD_WINO_ROWS(5); break;
    case 4: PAKD_WINO_ROWS(4); break;
    case 3: PAKD_WINO_ROWS(3); break;
    case 2: PAKD_WINO_ROWS(2); break;
    case 1: PAKD_WINO_ROWS(1); break;
    default: break;
  }
#undef PAKD_WINO_ROWS
}

}  // namespace

void pakd_f32_wino4x4_pack_ukernel_8x8__avx2(std::size_t cin, std::size_t h, std::size_t w, std::size_t ph,
                                             std::size_t pw, const float* x, float* xh, std::size_t hpp,
                                             std::size_t wpp) {
  const std::size_t blocks = (cin + L - 1) / L;
  std::memset(xh, 0, blocks * hpp * wpp * L * sizeof(float));
  for (std::size_t cb = 0; cb < blocks; ++cb) {
    const std::size_t c0 = cb * L;
    const std::size_t nc = cin - c0 < L ? cin - c0 : L;  // channels of this block (the last may have fewer)
    for (std::size_t iy = 0; iy < h; ++iy) {
      const float* xr = x + (c0 * h + iy) * w;
      float* out = xh + ((cb * hpp + iy + ph) * wpp + pw) * L;
      std::size_t ix = 0;
      // missing channels of a partial block transpose as zero rows
      for (; ix + 8 <= w; ix += 8) {
        __m256 r[8];
        for (std::size_t k = 0; k < 8; ++k) r[k] = k < nc ? _mm256_loadu_ps(xr + k * h * w + ix) : _mm256_setzero_ps();
        transpose8(r);
        for (std::size_t k = 0; k < 8; ++k) _mm256_storeu_ps(out + (ix + k) * L, r[k]);
      }
      if (ix + 4 <= w) {  // 4 columns: the low halves of an 8x8 transpose
        __m256 r[8];
        for (std::size_t k = 0; k < 8; ++k) {
          r[k] = k < nc ? _mm256_insertf128_ps(_mm256_setzero_ps(), _mm_loadu_ps(xr + k * h * w + ix), 0)
                        : _mm256_setzero_ps();
        }
        transpose8(r);
        for (std::size_t k = 0; k < 4; ++k) _mm256_storeu_ps(out + (ix + k) * L, r[k]);
        ix += 4;
      }
      for (; ix < w; ++ix) {
        for (std::size_t k = 0; k < L && c0 + k < cin; ++k) out[ix * L + k] = xr[k * h * w + ix];
      }
    }
  }
}

void pakd_f32_wino4x4_ukernel_6x16__avx2(std::size_t tile_begin, std::size_t tile_end, std::size_t tiles_x,
                                         std::size_t cin, std::size_t cin_p, std::size_t cout, const float* u,
                                         const float* bias, int relu, const float* residual, const float* xh,
                                         std::size_t hpp, std::size_t wpp, float* y, std::size_t ho, std::size_t wo) {
  const std::size_t cout_p = (cout + V - 1) / V * V, oblocks = cout_p / V;
  const std::size_t chunk = pakd::kWinoTileChunk;
  float* const vbuf = static_cast<float*>(pakd::kernel_workspace(P * chunk * (cin_p + cout_p) * sizeof(float)));
  float* const mbuf = vbuf + P * chunk * cin_p;
  for (std::size_t c0 = tile_begin; c0 < tile_end; c0 += chunk) {
    const std::size_t nt = tile_end - c0 < chunk ? tile_end - c0 : chunk;
    // 1. input transform: vbuf[pos][tile][cin_p]
    for (std::size_t tl = 0; tl < nt; ++tl) {
      const std::size_t ty = (c0 + tl) / tiles_x, tx = (c0 + tl) % tiles_x;
      for (std::size_t cb = 0; cb < cin_p / L; ++cb) {
        const float* base = xh + ((cb * hpp + 4 * ty) * wpp + 4 * tx) * L;
        __m256 t[6][6];  // t[column][i]
        for (std::size_t c = 0; c < 6; ++c) {
          const float* d = base + c * L;
          input_1d(_mm256_loadu_ps(d), _mm256_loadu_ps(d + wpp * L), _mm256_loadu_ps(d + 2 * wpp * L),
                   _mm256_loadu_ps(d + 3 * wpp * L), _mm256_loadu_ps(d + 4 * wpp * L), _mm256_loadu_ps(d + 5 * wpp * L),
                   t[c]);
        }
        float* dst = vbuf + tl * cin_p + cb * L;
        for (std::size_t i = 0; i < 6; ++i) {
          __m256 v[6];
          input_1d(t[0][i], t[1][i], t[2][i], t[3][i], t[4][i], t[5][i], v);
          for (std::size_t j = 0; j < 6; ++j) _mm256_store_ps(dst + (i * 6 + j) * nt * cin_p, v[j]);
        }
      }
    }
    // 2. 36 GEMMs: mbuf[pos][tile][cout_p] = vbuf[pos][tile][:] x u[pos]
    for (std::size_t pos = 0; pos < P; ++pos) {
      const float* vp = vbuf + pos * nt * cin_p;
      float* mp = mbuf + pos * nt * cout_p;
      for (std::size_t ob = 0; ob < oblocks; ++ob) {
        const float* ub = u + (pos * oblocks + ob) * cin_p * V;
        // the real input channels only (the packed padding ones are zero)
        if (cout - ob * V <= L) {
          gemm_block<true>(nt, cin, vp, cin_p, ub, mp + ob * V, cout_p);
        } else {
          gemm_block<false>(nt, cin, vp, cin_p, ub, mp + ob * V, cout_p);
        }
      }
    }
    // 3. output transform + bias + ReLU, transposed into the channel planes
    const std::size_t plane = ho * wo, ldp = nt * cout_p;
    for (std::size_t tl = 0; tl < nt; ++tl) {
      const std::size_t ty = (c0 + tl) / tiles_x, tx = (c0 + tl) % tiles_x;
      const std::size_t rows = ho - 4 * ty < 4 ? ho - 4 * ty : 4, cols = wo - 4 * tx < 4 ? wo - 4 * tx : 4;
      float* const yt = y + 4 * ty * wo + 4 * tx;
      for (std::size_t o0 = 0; o0 < cout; o0 += L) {
        const float* m = mbuf + tl * cout_p + o0;
        __m256 s[6][4];  // s[j][a]
        for (std::size_t j = 0; j < 6; ++j) {
          output_1d(_mm256_load_ps(m + j * ldp), _mm256_load_ps(m + (6 + j) * ldp), _mm256_load_ps(m + (12 + j) * ldp),
                    _mm256_load_ps(m + (18 + j) * ldp), _mm256_load_ps(m + (24 + j) * ldp),
                    _mm256_load_ps(m + (30 + j) * ldp), s[j]);
        }
        const __m256 b = bias != nullptr ? _mm256_loadu_ps(bias + o0) : _mm256_setzero_ps();
        __m256 out[2][8];  // rows a = 0, 1 | 2, 3: 8 positions x 8 channels each
        for (std::size_t a = 0; a < 4; ++a) {
          __m256 o[4];
          output_1d(s[0][a], s[1][a], s[2][a], s[3][a], s[4][a], s[5][a], o);
          for (std::size_t c = 0; c < 4; ++c) {
            __m256 v = _mm256_add_ps(o[c], b);
            // with a residual, ReLU after the transpose (once it is added)
            if (relu != 0 && residual == nullptr)
              v = _mm256_max_ps(v, _mm256_setzero_ps());  // max(v, 0): 0 for NaN, as Act::kRelu
            out[a / 2][(a % 2) * 4 + c] = v;
          }
        }
        transpose8(out[0]);  // out[h][k]: channel o0 + k, rows 2h, 2h + 1
        transpose8(out[1]);
        const std::size_t lanes = cout - o0 < L ? cout - o0 : L;
        if (residual != nullptr) {  // out[h][k] += the residual's rows 2h, 2h + 1 of channel o0 + k, then ReLU
          const float* const rt = residual + (yt - y);
          for (std::size_t k = 0; k < lanes; ++k) {
            const float* rp = rt + (o0 + k) * plane;
            __m128 q[4];
            for (std::size_t a = 0; a < 4; ++a) q[a] = a >= rows ? _mm_setzero_ps() : load_cols(rp + a * wo, cols);
            for (std::size_t h2 = 0; h2 < 2; ++h2) {
              __m256 v =
                  _mm256_add_ps(out[h2][k], _mm256_insertf128_ps(_mm256_castps128_ps256(q[2 * h2]), q[2 * h2 + 1], 1));
              if (relu != 0) v = _mm256_max_ps(v, _mm256_setzero_ps());
              out[h2][k] = v;
            }
          }
        }
        if (rows == 4 && cols == 4) {
          for (std::size_t k = 0; k < lanes; ++k) {
            float* yp = yt + (o0 + k) * plane;
            _mm_storeu_ps(yp, _mm256_castps256_ps128(out[0][k]));
            _mm_storeu_ps(yp + wo, _mm256_extractf128_ps(out[0][k], 1));
            _mm_storeu_ps(yp + 2 * wo, _mm256_castps256_ps128(out[1][k]));
            _mm_storeu_ps(yp + 3 * wo, _mm256_extractf128_ps(out[1][k], 1));
          }
        } else {  // a tile on the bottom / right edge: rows x cols of it
          for (std::size_t k = 0; k < lanes; ++k) {
            float* yp = yt + (o0 + k) * plane;
            const __m128 q[4] = {_mm256_castps256_ps128(out[0][k]), _mm256_extractf128_ps(out[0][k], 1),
                                 _mm256_castps256_ps128(out[1][k]), _mm256_extractf128_ps(out[1][k], 1)};
            for (std::size_t a = 0; a < rows; ++a) store_cols(yp + a * wo, q[a], cols);
          }
        }
      }
    }
  }
}
