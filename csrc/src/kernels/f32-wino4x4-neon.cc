// Winograd F(4x4, 3x3) convolution with NEON, and its input packing. Per
// chunk of tiles (as the AVX2 kernel):
//   1. input transform B^T d B, 8 input channels = 2 q-registers per value
//      (the packed input interleaves 8 channels: contiguous loads); a last
//      half of 4 padding channels, which the GEMMs skip, is not transformed;
//   2. 36 GEMMs over 16 output channels (a last block of fewer: 4, 8 or 12). AArch64: 4 tiles x 16 channels =
//      16 accumulators; per 4 input channels one q-load of each tile's 4
//      transformed values, 16 weight vectors, 64 FMAs by lane (97
//      instructions). 6 tiles x 16 (24 accumulators + 6 + 4) spilled: 196
//      instructions per 96 FMAs, 16% more for the whole kernel; 5 tiles: 5%
//      more. ARMv7 (16 q-registers, no FMA): 4 tiles x 8 channels, twice per
//      block;
//   3. output transform A^T m A over 8 output channels + bias (+ residual)
//      (+ ReLU), 4x4 transposes into the channel planes of y.
// Contract: F32Wino4x4Fn / F32Wino4x4PackFn in kernels/kernels.h.
#include <arm_neon.h>

#include <cstddef>
#include <cstring>

#include "kernels/kernels.h"

namespace {

constexpr std::size_t L = pakd::kWinoCinBlock;
constexpr std::size_t V = pakd::kWinoCoutBlock;
constexpr std::size_t P = pakd::kWinoPositions;

#if defined(__aarch64__)
constexpr int kRows = 4;  // tiles per GEMM micro-tile
constexpr int kNq = 4;    // q-registers of output channels per micro-tile (16)
#else
constexpr int kRows = 4;
constexpr int kNq = 2;  // 8 channels, run twice for a 16-channel block
#endif

// acc + b * s (fused on AArch64)
inline float32x4_t madd(float32x4_t acc, float32x4_t b, float s) {
#if defined(__aarch64__)
  return vfmaq_n_f32(acc, b, s);
#else
  return vmlaq_n_f32(acc, b, s);
#endif
}
inline float32x4_t msub(float32x4_t acc, float32x4_t b, float s) {
#if defined(__aarch64__)
  return vfmsq_f32(acc, b, vdupq_n_f32(s));
#else
  return vmlsq_n_f32(acc, b, s);
#endif
}

// acc + w * a[K]
template <int K>
inline float32x4_t fma_lane(float32x4_t acc, float32x4_t w, float32x4_t a) {
#if defined(__aarch64__)
  return vfmaq_laneq_f32(acc, w, a, K);
#else
  return K < 2 ? vmlaq_lane_f32(acc, w, vget_low_f32(a), K & 1) : vmlaq_lane_f32(acc, w, vget_high_f32(a), K & 1);
#endif
}

// Transposes 4 vectors in place: r[i][j] <- r[j][i].
inline void transpose4(float32x4_t& r0, float32x4_t& r1, float32x4_t& r2, float32x4_t& r3) {
#if defined(__aarch64__)
  const float32x4_t t0 = vtrn1q_f32(r0, r1), t1 = vtrn2q_f32(r0, r1);
  const float32x4_t t2 = vtrn1q_f32(r2, r3), t3 = vtrn2q_f32(r2, r3);
  r0 = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
  r1 = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
  r2 = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
  r3 = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
#else
  const float32x4x2_t p = vtrnq_f32(r0, r1), q = vtrnq_f32(r2, r3);
  r0 = vcombine_f32(vget_low_f32(p.val[0]), vget_low_f32(q.val[0]));
  r1 = vcombine_f32(vget_low_f32(p.val[1]), vget_low_f32(q.val[1]));
  r2 = vcombine_f32(vget_high_f32(p.val[0]), vget_high_f32(q.val[0]));
  r3 = vcombine_f32(vget_high_f32(p.val[1]), vget_high_f32(q.val[1]));
#endif
}

// The first `cols` (1..4) floats of v to p / from p (the rest 0).
inline void store_cols(float* p, float32x4_t v, std::size_t cols) {
  switch (cols) {
    case 4: vst1q_f32(p, v); break;
    case 3:
      vst1_f32(p, vget_low_f32(v));
      vst1q_lane_f32(p + 2, v, 2);
      break;
    case 2: vst1_f32(p, vget_low_f32(v)); break;
    default: vst1q_lane_f32(p, v, 0); break;
  }
}
inline float32x4_t load_cols(const float* p, std::size_t cols) {
  switch (cols) {
    case 4: return vld1q_f32(p);
    case 3: return vcombine_f32(vld1_f32(p), vld1_lane_f32(p + 2, vdup_n_f32(0.0f), 0));
    case 2: return vcombine_f32(vld1_f32(p), vdup_n_f32(0.0f));
    default: return vld1q_lane_f32(p, vdupq_n_f32(0.0f), 0);
  }
}

// t = B^T d along one axis.
inline void input_1d(float32x4_t d0, float32x4_t d1, float32x4_t d2, float32x4_t d3, float32x4_t d4, float32x4_t d5,
                     float32x4_t t[6]) {
  t[0] = madd(msub(d4, d2, 5.0f), d0, 4.0f);
  t[1] = msub(vaddq_f32(d3, d4), vaddq_f32(d1, d2), 4.0f);
  t[2] = madd(vsubq_f32(d4, d3), vsubq_f32(d1, d2), 4.0f);
  const float32x4_t f = vsubq_f32(d4, d2), g = vsubq_f32(d3, d1);
  t[3] = madd(f, g, 2.0f);
  t[4] = msub(f, g, 2.0f);
  t[5] = madd(msub(d5, d3, 5.0f), d1, 4.0f);
}

// o = A^T m along one axis.
inline void output_1d(float32x4_t m0, float32x4_t m1, float32x4_t m2, float32x4_t m3, float32x4_t m4, float32x4_t m5,
                      float32x4_t o[4]) {
  const float32x4_t a = vaddq_f32(m1, m2), b = vsubq_f32(m1, m2);
  const float32x4_t c = vaddq_f32(m3, m4), d = vsubq_f32(m3, m4);
  o[0] = vaddq_f32(vaddq_f32(m0, a), c);
  o[1] = madd(b, d, 2.0f);
  o[2] = madd(a, c, 4.0f);
  o[3] = vaddq_f32(madd(b, d, 8.0f), m5);
}

// One input channel step K (of 4) of the micro-tile: ROWS x NQ accumulators.
template <int ROWS, int NQ, int K>
inline void gemm_step(float32x4_t acc[][NQ], const float32x4_t a[], const float* w) {
  float32x4_t wq[NQ];
#pragma GCC unroll 4
  for (int q = 0; q < NQ; ++q) wq[q] = vld1q_f32(w + K * V + 4 * q);
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) acc[r][q] = fma_lane<K>(acc[r][q], wq[q], a[r]);
  }
}

// m[r * ldm + 0 : 4 NQ] = sum_{ic < cin4} v[r * ldv + ic] * w[ic * V + 0 : 4 NQ] for ROWS rows;
// cin4 is a multiple of 4 (the zero padding channels of v and w add nothing).
template <int ROWS, int NQ>
inline void gemm_rows(std::size_t cin4, const float* v, std::size_t ldv, const float* w, float* m, std::size_t ldm) {
  float32x4_t acc[ROWS][NQ];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) acc[r][q] = vdupq_n_f32(0.0f);
  }
  for (std::size_t ic = 0; ic < cin4; ic += 4, w += 4 * V) {
    float32x4_t a[ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) a[r] = vld1q_f32(v + r * ldv + ic);
    gemm_step<ROWS, NQ, 0>(acc, a, w);
    gemm_step<ROWS, NQ, 1>(acc, a, w);
    gemm_step<ROWS, NQ, 2>(acc, a, w);
    gemm_step<ROWS, NQ, 3>(acc, a, w);
  }
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) vst1q_f32(m + r * ldm + 4 * q, acc[r][q]);
  }
}

// nt rows x 4 NQ columns in micro-tiles of kRows rows.
template <int NQ>
inline void gemm_block(std::size_t nt, std::size_t cin4, const float* v, std::size_t ldv, const float* w, float* m,
                       std::size_t ldm) {
  std::size_t r = 0;
#if defined(__aarch64__)
  // fewer channels, more tiles per micro-tile (12 channels x 6 tiles, 8 x 8, 4 x 8: 18, 16, 8 accumulators)
  constexpr int kWide = NQ == 3 ? 6 : NQ < 3 ? 8 : kRows;
  for (; r + kWide <= nt; r += kWide) gemm_rows<kWide, NQ>(cin4, v + r * ldv, ldv, w, m + r * ldm, ldm);
#endif
  for (; r + kRows <= nt; r += kRows) gemm_rows<kRows, NQ>(cin4, v + r * ldv, ldv, w, m + r * ldm, ldm);
  const float* vr = v + r * ldv;
  float* mr = m + r * ldm;
  switch (nt - r) {
    case 3: gemm_rows<3, NQ>(cin4, vr, ldv, w, mr, ldm); break;
    case 2: gemm_rows<2, NQ>(cin4, vr, ldv, w, mr, ldm); break;
    case 1: gemm_rows<1, NQ>(cin4, vr, ldv, w, mr, ldm); break;
    default: break;
  }
}

// n (a multiple of 8) zero floats at p: a row's few padding columns in pairs
// of vector stores (cheaper than a call to memset; the empty asm keeps GCC
// from turning the loop back into one), longer runs by memset.
inline void zero_vectors(float* p, std::size_t n) {
  if (n > 32) {
    std::memset(p, 0, n * sizeof(float));
    return;
  }
  const float32x4_t z = vdupq_n_f32(0.0f);
  for (std::size_t i = 0; i < n; i += 8) {
    vst1q_f32(p + i, z);
    vst1q_f32(p + i + 4, z);
    __asm__ __volatile__("" ::: "memory");
  }
}

}  // namespace

void pakd_f32_wino4x4_pack_ukernel_8x8__neon(std::size_t cin, std::size_t h, std::size_t w, std::size_t ph,
                                             std::size_t pw, const float* x, float* xh, std::size_t hpp,
                                             std::size_t wpp) {
  const std::size_t blocks = (cin + L - 1) / L;
  const std::size_t row = wpp * L;
  for (std::size_t cb = 0; cb < blocks; ++cb) {
    const std::size_t c0 = cb * L;
    const std::size_t nc = cin - c0 < L ? cin - c0 : L;  // channels of this block (the last may have fewer)
    float* const xb = xh + cb * hpp * row;
    // the zero rows above and below the image, and the zero columns of each image row
    zero_vectors(xb, ph * row);
    zero_vectors(xb + (ph + h) * row, (hpp - ph - h) * row);
    const float* xc[L];
    for (std::size_t k = 0; k < L; ++k) xc[k] = x + (c0 + (k < nc ? k : 0)) * h * w;
    for (std::size_t iy = 0; iy < h; ++iy) {
      float* const out_row = xb + (iy + ph) * row;
      zero_vectors(out_row, pw * L);
      zero_vectors(out_row + (pw + w) * L, (wpp - pw - w) * L);
      float* out = out_row + pw * L;
      const std::size_t off = iy * w;
      std::size_t ix = 0;
      if (nc == L) {
        for (; ix + 4 <= w; ix += 4, out += 4 * L) {
          float32x4_t a0 = vld1q_f32(xc[0] + off + ix), a1 = vld1q_f32(xc[1] + off + ix);
          float32x4_t a2 = vld1q_f32(xc[2] + off + ix), a3 = vld1q_f32(xc[3] + off + ix);
          float32x4_t b0 = vld1q_f32(xc[4] + off + ix), b1 = vld1q_f32(xc[5] + off + ix);
          float32x4_t b2 = vld1q_f32(xc[6] + off + ix), b3 = vld1q_f32(xc[7] + off + ix);
          transpose4(a0, a1, a2, a3);  // a_j: channels 0..3 of column ix + j
          transpose4(b0, b1, b2, b3);
          vst1q_f32(out, a0);
          vst1q_f32(out + 4, b0);
          vst1q_f32(out + 8, a1);
          vst1q_f32(out + 12, b1);
          vst1q_f32(out + 16, a2);
          vst1q_f32(out + 20, b2);
          vst1q_f32(out + 24, a3);
          vst1q_f32(out + 28, b3);
        }
      }
      for (; ix < w; ++ix, out += L) {  // missing channels of a partial block are zero
        for (std::size_t k = 0; k < L; ++k) out[k] = k < nc ? xc[k][off + ix] : 0.0f;
      }
    }
  }
}

void pakd_f32_wino4x4_ukernel_4x16__neon(std::size_t tile_begin, std::size_t tile_end, std::size_t tiles_x,
                                         std::size_t cin, std::size_t cin_p, std::size_t cout, const float* u,
                                         const float* bias, int relu, const float* residual, const float* xh,
                                         std::size_t hpp, std::size_t wpp, float* y, std::size_t ho, std::size_t wo) {
  const std::size_t cout_p = (cout + V - 1) / V * V, oblocks = cout_p / V;
  const std::size_t cin4 = (cin + 3) / 4 * 4;  // <= cin_p (a multiple of 8)
  const std::size_t chunk = pakd::kWinoTileChunk;
  float* const vbuf = static_cast<float*>(pakd::kernel_workspace(P * chunk * (cin_p + cout_p) * sizeof(float)));
  float* const mbuf = vbuf + P * chunk * cin_p;
  const float32x4_t zero = vdupq_n_f32(0.0f);
  (void)hpp;
  for (std::size_t c0 = tile_begin; c0 < tile_end; c0 += chunk) {
    const std::size_t nt = tile_end - c0 < chunk ? tile_end - c0 : chunk;
    // 1. input transform: vbuf[pos][tile][cin_p]
    for (std::size_t tl = 0; tl < nt; ++tl) {
      const std::size_t ty = (c0 + tl) / tiles_x, tx = (c0 + tl) % tiles_x;
      for (std::size_t cb = 0; cb < cin_p / L; ++cb) {
        const float* base = xh + ((cb * hpp + 4 * ty) * wpp + 4 * tx) * L;
        float* const dst = vbuf + tl * cin_p + cb * L;
        for (std::size_t half = 0; half < 2; ++half) {
          if (cb * L + 4 * half >= cin4) break;  // 4 padding channels the GEMMs never read
          float32x4_t t[6][6];                   // t[column][i]
          for (std::size_t c = 0; c < 6; ++c) {
            const float* d = base + c * L + 4 * half;
            input_1d(vld1q_f32(d), vld1q_f32(d + wpp * L), vld1q_f32(d + 2 * wpp * L), vld1q_f32(d + 3 * wpp * L),
                     vld1q_f32(d + 4 * wpp * L), vld1q_f32(d + 5 * wpp * L), t[c]);
          }
          for (std::size_t i = 0; i < 6; ++i) {
            float32x4_t v[6];
            input_1d(t[0][i], t[1][i], t[2][i], t[3][i], t[4][i], t[5][i], v);
            for (std::size_t j = 0; j < 6; ++j) vst1q_f32(dst + (i * 6 + j) * nt * cin_p + 4 * half, v[j]);
          }
        }
      }
    }
    // 2. 36 GEMMs: mbuf[pos][tile][cout_p] = vbuf[pos][tile][:] x u[pos]
    for (std::size_t pos = 0; pos < P; ++pos) {
      const float* vp = vbuf + pos * nt * cin_p;
      float* mp = mbuf + pos * nt * cout_p;
      for (std::size_t ob = 0; ob < oblocks; ++ob) {
        const float* ub = u + (pos * oblocks + ob) * cin_p * V;
#if defined(__aarch64__)
        // a last block of 1..12 channels: only its vectors of 4 that hold real channels (the
        // output transform reads the channels in vectors of 4, never past them)
        switch (cout - ob * V < V ? (cout - ob * V + 3) / 4 : 4) {
          case 1: gemm_block<1>(nt, cin4, vp, cin_p, ub, mp + ob * V, cout_p); break;
          case 2: gemm_block<2>(nt, cin4, vp, cin_p, ub, mp + ob * V, cout_p); break;
          case 3: gemm_block<3>(nt, cin4, vp, cin_p, ub, mp + ob * V, cout_p); break;
          default: gemm_block<4>(nt, cin4, vp, cin_p, ub, mp + ob * V, cout_p); break;
        }
#else
        gemm_block<2>(nt, cin4, vp, cin_p, ub, mp + ob * V, cout_p);
        if (cout - ob * V > L) gemm_block<2>(nt, cin4, vp, cin_p, ub + L, mp + ob * V + L, cout_p);
#endif
      }
    }
    // 3. output transform + bias (+ residual) (+ ReLU), transposed into the channel planes
    const std::size_t plane = ho * wo, ldp = nt * cout_p;
    for (std::size_t tl = 0; tl < nt; ++tl) {
      const std::size_t ty = (c0 + tl) / tiles_x, tx = (c0 + tl) % tiles_x;
      const std::size_t rows = ho - 4 * ty < 4 ? ho - 4 * ty : 4, cols = wo - 4 * tx < 4 ? wo - 4 * tx : 4;
      const std::size_t at = 4 * ty * wo + 4 * tx;
      for (std::size_t o0 = 0; o0 < cout; o0 += 4) {  // 4 output channels per vector
        const float* m = mbuf + tl * cout_p + o0;
        float32x4_t s[6][4];  // s[j][a]
        for (std::size_t j = 0; j < 6; ++j) {
          output_1d(vld1q_f32(m + j * ldp), vld1q_f32(m + (6 + j) * ldp), vld1q_f32(m + (12 + j) * ldp),
                    vld1q_f32(m + (18 + j) * ldp), vld1q_f32(m + (24 + j) * ldp), vld1q_f32(m + (30 + j) * ldp), s[j]);
        }
        const std::size_t lanes = cout - o0 < 4 ? cout - o0 : 4;
        float32x4_t b = zero;
        if (bias != nullptr) b = lanes == 4 ? vld1q_f32(bias + o0) : load_cols(bias + o0, lanes);
        for (std::size_t a = 0; a < rows; ++a) {
          float32x4_t o[4];
          output_1d(s[0][a], s[1][a], s[2][a], s[3][a], s[4][a], s[5][a], o);
          o[0] = vaddq_f32(o[0], b);
          o[1] = vaddq_f32(o[1], b);
          o[2] = vaddq_f32(o[2], b);
          o[3] = vaddq_f32(o[3], b);
          transpose4(o[0], o[1], o[2], o[3]);  // o[k]: channel o0 + k, columns 0..3 of row a
          float* const yp = y + o0 * plane + at + a * wo;
          if (residual != nullptr) {
            const float* const rp = residual + o0 * plane + at + a * wo;
            for (std::size_t k = 0; k < lanes; ++k) {
              o[k] = vaddq_f32(o[k], cols == 4 ? vld1q_f32(rp + k * plane) : load_cols(rp + k * plane, cols));
            }
          }
          if (relu != 0) {  // max(v, 0): 0 for NaN, as Act::kRelu
            for (std::size_t k = 0; k < 4; ++k) {
              o[k] = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(o[k]), vcgtq_f32(o[k], zero)));
            }
          }
          if (cols == 4) {
            for (std::size_t k = 0; k < lanes; ++k) vst1q_f32(yp + k * plane, o[k]);
          } else {
            for (std::size_t k = 0; k < lanes; ++k) store_cols(yp + k * plane, o[k], cols);
          }
        }
      }
    }
  }
}
